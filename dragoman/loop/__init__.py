"""The closed correctness loop: a verdict for every translated call (verdict checks, next-turn attribution, an
optional judge), scores and failure clusters per route × model × turn shape, and the actions taken on them
(traffic shift between weighted candidates, system-prompt prefix variants, config versions with rollback).

Nothing here runs before a request's last byte is written but the weighted pick: a call's verdict is computed
once the client has its answer, from what the exchange hands over (loop/evidence.py); joins, scores and rollback
run in the audit writer's thread."""
