"""The closed correctness loop: a verdict for every translated call (verdict checks, next-turn attribution, an
optional judge), scores and failure clusters per route × model × turn shape, and the actions taken on them
(traffic shift between weighted candidates, system-prompt prefix variants, config versions with rollback).

Nothing here runs on a request's hot path but the weighted pick: verdicts are computed off the event loop, from
what the exchange hands over when a request is finished."""
