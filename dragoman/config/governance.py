"""The `governance:` block: where virtual keys, budgets and rate-limit counters live and what happens when the
shared state is unreachable. README, "Running a team", documents every key.

Sub-blocks belong to the part of dragoman.govern that acts on them: keys (the key store and its cache), budgets
(developer, team and global caps), limits (default rate limits, the counter backend: memory or Redis)."""

from __future__ import annotations

import msgspec


class KeySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Virtual keys (govern/keys.py): their store is the audit store unless set apart."""


class BudgetSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Budgets per developer, team and globally (govern/budgets.py); a key's own budget is set on the key."""


class LimitSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Rate limits and their counters (govern/limits.py): in memory, or on Redis for many instances."""


class GovernanceSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: KeySettings = KeySettings()
    budgets: BudgetSettings = BudgetSettings()
    limits: LimitSettings = LimitSettings()
