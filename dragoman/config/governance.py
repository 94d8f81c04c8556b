"""The `governance:` block: where virtual keys, budgets and rate-limit counters live and what happens when the
shared state is unreachable. README, "Running a team", documents every key.

Sub-blocks belong to the part of dragoman.govern that acts on them: keys (the key store and its cache), budgets
(developer, team and global caps), limits (default rate limits, the counter backend: memory or Redis)."""

from __future__ import annotations

from typing import Annotated

import msgspec


class KeySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Virtual keys (govern/keys.py), kept in the audit store's database (audit.store, or the default store)."""

    enabled: bool = True  # false: no key store is opened and virtual keys are refused like any unknown key
    # Seconds between two reads of the keys changed on other instances: a revoke is refused everywhere within
    # it (plus one query). At most 1, so "refused within a second on every instance" holds.
    refresh_interval: Annotated[float, msgspec.Meta(ge=0.05, le=1.0)] = 0.5
    # Keys of a virtual key's shape found unknown, remembered so that repeating one costs no store query.
    unknown_cache_size: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 10_000


class BudgetSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Budgets per developer, team and globally (govern/budgets.py); a key's own budget is set on the key."""


class LimitSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Rate limits and their counters (govern/limits.py): in memory, or on Redis for many instances."""


class GovernanceSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: KeySettings = KeySettings()
    budgets: BudgetSettings = BudgetSettings()
    limits: LimitSettings = LimitSettings()
