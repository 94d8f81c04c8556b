"""Budgets in USD per key (its Grant's own, else a `key:` rule), developer, team and globally, per UTC day, week
(from Monday) or month, priced as the audit prices (observe/pricing.py).

- Admission reads what each of the caller's budgets has spent this period: at or past a hard cap, the request is
  refused before any upstream call (402 billing_error, naming the budget, its cap, the spend and the reset time);
  past the soft share, the answer carries `x-dragoman-budget-warning`.
- Spend is counted after each answer from its real usage (`settle`), into the period the request arrived in (the
  audit record's `time`), so a counter and `SUM(cost_usd)` over the same period agree. A request in flight is never
  cut: concurrent requests admitted under the cap may each overshoot it by at most their own cost.
- A counter that does not exist (a fresh process, a flushed Redis, a new period) is seeded from the audit store:
  the period's `SUM(cost_usd)` for the scope, before the request is admitted."""

from __future__ import annotations

from typing import NamedTuple

from dragoman.config.governance import BudgetRule
from dragoman.govern.grant import Grant
from dragoman.govern.periods import period_bounds, period_label, rfc3339

# A scope kind → the audit column its spend is summed over (observe.stores.SPEND_COLUMNS): the developer and team
# the request was charged to (its key's), never `developer`/`team`, which a client's headers may fill.
SCOPE_COLUMNS = {"key": "key_id", "developer": "budget_developer", "team": "budget_team"}


class BudgetRef(NamedTuple):
    """One budget that applies to a caller: its scope, cap and period (a rule, or a key's own Budget)."""

    scope: str  # key:<id> | developer:<name> | team:<name> | global
    limit: float
    period: str
    soft: float


class BudgetItem(NamedTuple):
    """A budget in one period: its counter's key and the period's bounds."""

    key: str
    ref: BudgetRef
    start: float
    end: float


class BudgetRules:
    """Which budgets apply to a caller: its key's own, else `key:<id>`, else `key:*`; `developer:<name>` else
    `developer:*`; `team:<name>` else `team:*`; `global`. Rules for explicit scopes come first in the order
    written. A key's own budget replaces the `key:` rules as its own rate limits replace theirs (LimitRules): both
    would count on the key's one counter."""

    def __init__(self, rules: tuple[BudgetRule, ...]) -> None:
        self._by_scope: dict[str, list[BudgetRef]] = {}
        for rule in rules:
            self._by_scope.setdefault(rule.scope, []).append(BudgetRef(rule.scope, rule.limit, rule.period, rule.soft))

    def __bool__(self) -> bool:
        return bool(self._by_scope)

    def refs(self) -> list[BudgetRef]:
        """Every configured budget (wildcard ones as written)."""
        return [ref for refs in self._by_scope.values() for ref in refs]

    def for_grant(self, grant: Grant | None) -> list[BudgetRef]:
        out: list[BudgetRef] = []
        if grant is not None:
            if grant.budget is not None:
                b = grant.budget
                out.append(BudgetRef(f"key:{grant.key_id}", b.limit_usd, b.period, b.soft_fraction))
            else:
                out += self._rules_for("key", grant.key_id)
            for kind, name in (("developer", grant.developer), ("team", grant.team)):
                if name:
                    out += self._rules_for(kind, name)
        out += self._by_scope.get("global", [])
        return out

    def _rules_for(self, kind: str, name: str) -> list[BudgetRef]:
        """`kind:name`'s rules, else `kind:*`'s, scoped to `name` so that each one counts on its own."""
        scope = f"{kind}:{name}"
        found = self._by_scope.get(scope) or self._by_scope.get(f"{kind}:*", [])
        return [ref._replace(scope=scope) for ref in found]


def budget_items(refs: list[BudgetRef], now: float) -> list[BudgetItem]:
    """The counters of `refs` in the periods containing `now`."""
    items = []
    for ref in refs:
        start, end = period_bounds(ref.period, now)
        items.append(BudgetItem(f"bg:{ref.scope}:{ref.period}:{period_label(ref.period, start)}", ref, start, end))
    return items


def seed_filter(scope: str) -> tuple[str | None, str | None]:
    """(audit column, value) whose spend is the scope's; column None: every record (global)."""
    if scope == "global":
        return None, None
    kind, _, name = scope.partition(":")
    return SCOPE_COLUMNS[kind], name


def exhausted_message(item: BudgetItem, spent: float) -> str:
    ref = item.ref
    return (f"budget {ref.scope} is exhausted: ${spent:.2f} spent of its ${ref.limit:.2f} per {ref.period}; "
            f"it resets at {rfc3339(item.end)}")


def warning(item: BudgetItem, spent: float) -> str | None:
    """The soft-threshold warning once `spent` is past the budget's soft share, else None."""
    ref = item.ref
    if spent < ref.soft * ref.limit:
        return None
    return f"{ref.scope} {int(spent * 100 // ref.limit)}% of ${ref.limit:.2f}/{ref.period}"
