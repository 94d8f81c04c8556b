"""The `governance:` block: where virtual keys, budgets and rate-limit counters live and what happens when the
shared state is unreachable. README, "Running a team", documents every key.

Sub-blocks belong to the part of dragoman.govern that acts on them: keys (the key store and its cache), budgets
(developer, team and global caps), limits (rate limits per scope, the counter backend: memory or Redis).

```yaml
governance:
  budgets:                                  # USD caps per UTC calendar period, one per scope and period
    - {scope: team:platform, limit: 500, period: month, soft: 0.8}
    - {scope: developer:*, limit: 50, period: week}   # each developer separately
    - {scope: global, limit: 5000, period: month}
  limits:
    backend: redis                          # or memory (the default; this process only, no redis_url or timeout)
    redis_url: redis://127.0.0.1:6379/0
    on_unreachable: open                    # Redis down: open admits (and counts), closed refuses with 529
    timeout: 0.05                           # seconds per Redis round trip
    window: 60                              # seconds a limit's rate is counted over ("per minute")
    rules:
      - {scope: developer:*, rpm: 60, input_tpm: 400000, output_tpm: 80000, concurrent_streams: 4}
      - {scope: team:platform, rpm: 600}
```
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

import msgspec

from dragoman.config.secrets import GatewayKey
from dragoman.config.yaml_source import Path, Source, parse_yaml

PERIODS = ("day", "week", "month")
SCOPE_KINDS = ("key", "developer", "team")  # "global" stands alone
_Positive = Annotated[float, msgspec.Meta(gt=0)]
_Count = Annotated[int, msgspec.Meta(ge=1)]
_Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]


class KeySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Virtual keys (govern/keys.py), kept in the audit store's database (audit.store, or the default store)."""

    enabled: bool = True  # false: no key store is opened and virtual keys are refused like any unknown key
    # Seconds between two reads of the keys changed on other instances: a revoke is refused everywhere within
    # it (plus one query). At most 1, so "refused within a second on every instance" holds.
    refresh_interval: Annotated[float, msgspec.Meta(ge=0.05, le=1.0)] = 0.5
    # Keys of a virtual key's shape found unknown, remembered so that repeating one costs no store query.
    unknown_cache_size: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 10_000


class BudgetRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A USD cap for one scope (`key:<id>`, `team:platform`, `developer:ana`, `developer:*` for each one, `global`)."""

    scope: str
    limit: _Positive
    period: str = "month"
    soft: _Fraction = 0.8  # past this share of the cap: a warning header and one log line per period


class LimitRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Rate limits for one scope (`key:<id>`, `developer:ana`, `team:*`, …); unset: unlimited."""

    scope: str
    rpm: _Count | None = None
    input_tpm: _Count | None = None
    output_tpm: _Count | None = None
    concurrent_streams: _Count | None = None


MAX_REDIS_TIMEOUT = 10.0  # seconds: `limits.timeout` above it is refused (_check_limits says why)


class LimitSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Rate limits and their counters (govern/limits.py): in memory, or on Redis for many instances."""

    backend: str = "memory"
    redis_url: str | None = None
    on_unreachable: str = "open"
    timeout: _Positive = 0.05
    window: _Positive = 60.0
    rules: tuple[LimitRule, ...] = ()


class GovernanceSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: KeySettings = KeySettings()
    budgets: tuple[BudgetRule, ...] = ()
    limits: LimitSettings = LimitSettings()


def check_governance(settings: GovernanceSettings, src: Source) -> None:
    """Refuse, at its line, a budget or limit the gateway could not act on as written."""
    _check_keys(settings.keys, src)
    _check_budgets(settings.budgets, src)
    _check_limits(settings.limits, src)


def _check_keys(keys: KeySettings, src: Source) -> None:
    # With virtual keys off no key cache is made: its settings would be accepted and never read.
    for name in ("refresh_interval", "unknown_cache_size"):
        if not keys.enabled and src.has(("governance", "keys", name)):
            raise src.error(("governance", "keys", name), "only read with enabled: true (virtual keys are off)")


def _check_budgets(budgets: tuple[BudgetRule, ...], src: Source) -> None:
    first: dict[tuple[str, str], int] = {}
    for i, budget in enumerate(budgets):
        path: Path = ("governance", "budgets", i)
        _check_scope(budget.scope, path + ("scope",), src, allow_global=True)
        src.choice(path + ("period",), budget.period, PERIODS)
        # Both caps would share one counter and each add every request's cost to it: the spend counted twice.
        seen = first.setdefault((budget.scope, budget.period), i)
        if seen != i:
            line = src.line(("governance", "budgets", seen))
            raise src.error(path + ("scope",), f"scope {budget.scope} already has a {budget.period} budget (entry "
                                               f"{seen}, line {line}); write one cap per scope and period")


def _check_limits(limits: LimitSettings, src: Source) -> None:
    src.choice(("governance", "limits", "backend"), limits.backend, ("memory", "redis"))
    src.choice(("governance", "limits", "on_unreachable"), limits.on_unreachable, ("open", "closed"))
    if limits.backend == "redis" and not (limits.redis_url or "").startswith(("redis://", "rediss://", "unix://")):
        raise src.error(("governance", "limits", "redis_url"),
                        "backend redis needs redis_url: redis://host:6379/0 (or rediss://, unix://)")
    # The memory backend keeps the counters in this process: no URL to reach, no round trip to time.
    for name in ("redis_url", "timeout"):
        if limits.backend == "memory" and src.has(("governance", "limits", name)):
            raise src.error(("governance", "limits", name),
                            "only read with backend: redis (the memory backend keeps the counters in this process)")
    # Every admission may wait this long for Redis, and a stream's lease (govern/counters.py LEASE, 60 s) is renewed
    # every 20 s by a call bounded by it: past MAX_REDIS_TIMEOUT a renewal could outlast its lease's remaining life.
    if limits.timeout > MAX_REDIS_TIMEOUT:
        raise src.error(("governance", "limits", "timeout"),
                        f"{limits.timeout:g} s per Redis round trip: at most {MAX_REDIS_TIMEOUT:g} (every admission "
                        "waits up to it; the default is 0.05)")
    seen: dict[str, int] = {}
    for i, rule in enumerate(limits.rules):
        path = ("governance", "limits", "rules", i)
        _check_scope(rule.scope, path + ("scope",), src, allow_global=False)
        if (rule.rpm, rule.input_tpm, rule.output_tpm, rule.concurrent_streams) == (None, None, None, None):
            raise src.error(path, f"scope {rule.scope} sets no limit: give rpm, input_tpm, output_tpm or "
                                  "concurrent_streams")
        if rule.scope in seen:
            raise src.error(path + ("scope",), f"scope {rule.scope} already has rules (entry {seen[rule.scope]})")
        seen[rule.scope] = i


def _check_scope(scope: str, path: Path, src: Source, *, allow_global: bool) -> None:
    if allow_global and scope == "global":
        return
    kind, sep, name = scope.partition(":")
    if not sep or kind not in SCOPE_KINDS or not name.strip() or len(scope) > 200 or not scope.isprintable():
        kinds = ", ".join(f"{k}:<name>" for k in SCOPE_KINDS)
        extra = ", or global" if allow_global else ""
        raise src.error(path, f'"{scope}" is not a scope: write {kinds} (<name> * for each one separately){extra}')


def ungoverned_keys_warning(
    settings: GovernanceSettings, keys: Collection[GatewayKey], source: str, text: str | None
) -> str | None:
    """`dragoman check`'s warning for budgets and limits that apply to none of the file's own keys (auth.keys,
    DRAGOMAN_API_KEYS): a `developer:*` rule never sees a key that carries no developer. Virtual keys live in the
    store, which check does not open, so the warning says what it can see and names what would reach those keys."""
    scopes = [rule.scope for rule in (*settings.limits.rules, *settings.budgets)]
    if not keys or not scopes or any(_reaches(scope, key) for scope in scopes for key in keys):
        return None
    line = 1
    if text is not None:
        line = Source(source, parse_yaml(text, source)[0], {}).line(("governance",), key=True)
    names = ", ".join(dict.fromkeys(scopes))
    virtual = ("only virtual keys made with --developer or --team are governed" if settings.keys.enabled
               else "and virtual keys are off, so nothing is governed")
    return (f"{source}:{line}: governance: no budget or limit applies to the {len(keys)} configured key(s) "
            f"(auth.keys, DRAGOMAN_API_KEYS): {names} match none of them (they carry no such developer, team or id); "
            f"{virtual}. A key:* rule or a global budget governs every key")


def _reaches(scope: str, key: GatewayKey) -> bool:
    """Whether a budget or limit rule written for `scope` applies to requests made with `key`."""
    if scope == "global":
        return True
    kind, _, name = scope.partition(":")
    value = {"key": key.id, "developer": key.developer, "team": key.team}[kind]
    return value is not None and name in ("*", value)
