"""The `loop:` block: the correctness loop's settings, with safe defaults (on; traffic shift and rollback on with
conservative thresholds; the judge off). README, "The correctness loop", documents every key.

Each sub-block belongs to the part of dragoman.loop that acts on it: verdicts (checks, next-turn memory),
shift (scores, demotion, probes, prompt-prefix variants), rollback (config versions), judge."""

from __future__ import annotations

from typing import Annotated

import msgspec

_PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
_PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
_Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
_Share = Annotated[float, msgspec.Meta(ge=0, le=0.5)]  # of traffic: probes, exploration
_Calls = Annotated[int, msgspec.Meta(ge=1, le=100_000)]


class VerdictSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Verdict checks and the next-turn join (loop/checks.py, loop/next_turn.py)."""

    memory: _PositiveInt = 100_000  # answers with tool calls each process remembers for the next-turn join (an LRU)
    schema_cache: _PositiveInt = 512  # compiled input_schema validators kept (an LRU keyed by the schema)
    retention_hours: _PositiveFloat = 24.0  # how long the store's tool_calls table keeps an id for the join
    join_wait: _PositiveFloat = 30.0  # seconds a tool_result waits for another worker's id to reach the store


class ShiftSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Scores, demotion of a regressing weighted candidate, probes, prompt-prefix variants (loop/scores.py,
    loop/shift.py). A score is the mean of the last `window` calls' values (1 passed, 0 failed or refused by the
    client, 1 - execution_failed_weight when the client ran the call and it failed). With every call failing, a
    candidate is demoted within max(min_calls, floor(window × (1 - demote_below)) + 1) of its calls for a shape
    (41 with these defaults; min_calls, 20, for one with no history). Thresholds that could never act are refused
    at load (config/shift.py): demote_below 0, restore_above 1, probe_share 0 with shifting on."""

    enabled: bool = True  # off: scores and clusters are still kept and shown, traffic is never shifted
    window: Annotated[int, msgspec.Meta(ge=2, le=10_000)] = 100  # calls per route × model × shape × variant
    min_calls: _Calls = 20  # no demotion, restoration or variant choice on fewer calls than this
    demote_below: _Fraction = 0.6  # a candidate's score for a shape under this: demoted for that shape (> 0)
    restore_above: _Fraction = 0.85  # its probes' score over at least min_calls above this: restored (< 1)
    probe_share: _Share = 0.05  # of a weighted route's traffic for a shape sent to its demoted candidates (probes)
    execution_failed_weight: _Fraction = 0.25  # what a call the client ran and saw fail costs (a refusal costs 1)
    variant_min_calls: _Calls = 50  # each prompt-prefix variant needs this many calls before one is kept
    exploration: _Share = 0.05  # of a route's traffic still split across the variants not kept


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
    is sent to it, at most `max_calls_per_hour` calls and `max_usd_per_day` (UTC day) of its cost in each process,
    `concurrency` at a time, `queue` waiting; beyond those a call is not judged (counted as dropped)."""

    route: str | None = None
    sample: _Fraction = 0.05
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
