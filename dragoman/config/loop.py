"""The `loop:` block: the correctness loop's settings, with safe defaults (on; traffic shift and rollback on with
conservative thresholds; the judge off). README, "The correctness loop", documents every key.

Each sub-block belongs to the part of dragoman.loop that acts on it: verdicts (checks, next-turn memory),
shift (scores, demotion, probes, prompt-prefix variants), rollback (config versions), judge."""

from __future__ import annotations

import msgspec


class VerdictSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Verdict checks and the next-turn join (loop/checks.py, loop/next_turn.py)."""


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
