"""The `loop:` block: the correctness loop's settings, with safe defaults (on; traffic shift and rollback on with
conservative thresholds; the judge off). README, "The correctness loop", documents every key.

Each sub-block belongs to the part of dragoman.loop that acts on it: verdicts (checks, next-turn memory),
shift (scores, demotion, probes, prompt-prefix variants), rollback (config versions), judge."""

from __future__ import annotations

from typing import Annotated

import msgspec

_Share = Annotated[float, msgspec.Meta(ge=0, le=1)]
_Calls = Annotated[int, msgspec.Meta(ge=1)]


class VerdictSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Verdict checks and the next-turn join (loop/checks.py, loop/next_turn.py)."""


class ShiftSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Scores, demotion of a regressing weighted candidate, probes, prompt-prefix variants (loop/scores.py …)."""


class RollbackSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Config versions and automatic rollback of a version that scores clearly worse (loop/rollback.py).

    A newly applied version is rolled back when, over its first `watch_calls` calls, it has at least `min_calls`
    assessed calls, the version before it has at least `baseline_calls`, its failure rate is at least
    `min_increase` higher, and a one-sided two-proportion z-test says so with z >= `z` (README)."""

    enabled: bool = True
    min_calls: _Calls = 50
    baseline_calls: _Calls = 50
    watch_calls: _Calls = 500
    min_increase: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.15
    z: Annotated[float, msgspec.Meta(gt=0)] = 3.0


class JudgeSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The optional judge route (loop/judge.py): off unless a route is named. A `sample` share of finished calls
    is sent to it, at most `max_calls_per_hour` calls and `max_usd_per_day` (UTC day) of its cost, `concurrency`
    at a time, `queue` waiting; beyond those a call is not judged (counted as dropped)."""

    route: str | None = None
    sample: _Share = 0.05
    max_calls_per_hour: Annotated[int, msgspec.Meta(ge=0)] = 60
    max_usd_per_day: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    queue: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 64


class LoopSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    verdicts: VerdictSettings = VerdictSettings()
    shift: ShiftSettings = ShiftSettings()
    rollback: RollbackSettings = RollbackSettings()
    judge: JudgeSettings = JudgeSettings()
