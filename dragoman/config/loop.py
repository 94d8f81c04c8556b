"""The `loop:` block: the correctness loop's settings, with safe defaults (on; traffic shift and rollback on with
conservative thresholds; the judge off). README, "The correctness loop", documents every key.

Each sub-block belongs to the part of dragoman.loop that acts on it: verdicts (checks, next-turn memory),
shift (scores, demotion, probes, prompt-prefix variants), rollback (config versions), judge."""

from __future__ import annotations

from typing import Annotated

import msgspec

_PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
_PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class VerdictSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Verdict checks and the next-turn join (loop/checks.py, loop/next_turn.py)."""

    memory: _PositiveInt = 100_000  # tool_use ids each process remembers for the next-turn join (an LRU)
    schema_cache: _PositiveInt = 512  # compiled input_schema validators kept (an LRU keyed by the schema)
    retention_hours: _PositiveFloat = 24.0  # how long the store's tool_calls table keeps an id for the join
    join_wait: _PositiveFloat = 30.0  # seconds a tool_result waits for another worker's id to reach the store


class ShiftSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Scores, demotion of a regressing weighted candidate, probes, prompt-prefix variants (loop/scores.py …)."""


class RollbackSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Config versions and automatic rollback of a version that scores clearly worse (loop/versions.py)."""


class JudgeSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The optional judge route (loop/judge.py): off unless a route is named."""


class LoopSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    verdicts: VerdictSettings = VerdictSettings()
    shift: ShiftSettings = ShiftSettings()
    rollback: RollbackSettings = RollbackSettings()
    judge: JudgeSettings = JudgeSettings()
