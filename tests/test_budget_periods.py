"""Budget arithmetic: UTC periods and their exact ends (month ends, leap years, weeks from Monday), which budgets
apply to a caller, the soft warning and the hard-cap message."""

from __future__ import annotations

import calendar

import pytest

from dragoman.config.governance import BudgetRule
from dragoman.govern.budgets import BudgetRules, budget_items, exhausted_message, warning
from dragoman.govern.grant import Budget, Grant
from dragoman.govern.periods import period_bounds, period_label, rfc3339


def _t(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: float = 0) -> float:
    return calendar.timegm((y, mo, d, h, mi, 0)) + s


@pytest.mark.parametrize(("now", "start", "end"), [
    (_t(2026, 1, 31, 23, 59, 59.9), _t(2026, 1, 1), _t(2026, 2, 1)),
    (_t(2026, 2, 1), _t(2026, 2, 1), _t(2026, 3, 1)),
    (_t(2028, 2, 29, 12), _t(2028, 2, 1), _t(2028, 3, 1)),  # leap year
    (_t(2026, 12, 31, 23, 59, 59.999), _t(2026, 12, 1), _t(2027, 1, 1)),  # year end
])
def test_a_month_runs_from_the_first_to_the_next_first_utc(now, start, end):
    assert period_bounds("month", now) == (start, end)


def test_a_day_ends_at_the_next_utc_midnight():
    assert period_bounds("day", _t(2026, 3, 31, 23, 59, 59.5)) == (_t(2026, 3, 31), _t(2026, 4, 1))
    assert period_bounds("day", _t(2026, 4, 1)) == (_t(2026, 4, 1), _t(2026, 4, 2))


def test_a_week_starts_on_monday():
    # 2026-12-05 is a Saturday; its week runs Monday 2026-11-30 to Monday 2026-12-07, across the month end
    assert period_bounds("week", _t(2026, 12, 5, 21, 58)) == (_t(2026, 11, 30), _t(2026, 12, 7))
    assert period_bounds("week", _t(2026, 12, 7)) == (_t(2026, 12, 7), _t(2026, 12, 14))
    assert period_bounds("week", _t(2026, 12, 6, 23, 59, 59.9)) == (_t(2026, 11, 30), _t(2026, 12, 7))
    assert period_label("week", _t(2026, 11, 30)) == "2026-W49"


def test_period_labels_name_the_period():
    assert period_label("day", _t(2026, 12, 5)) == "2026-12-05"
    assert period_label("month", _t(2026, 12, 1)) == "2026-12"


def test_reset_times_are_rfc3339_rounded_up_to_the_second():
    assert rfc3339(_t(2027, 1, 1)) == "2027-01-01T00:00:00Z"
    assert rfc3339(_t(2027, 1, 1) + 0.2) == "2027-01-01T00:00:01Z"


RULES = (
    BudgetRule(scope="team:platform", limit=500, period="month", soft=0.8),
    BudgetRule(scope="developer:*", limit=50, period="week"),
    BudgetRule(scope="developer:boss", limit=1000, period="day"),
    BudgetRule(scope="global", limit=5000, period="month"),
)


def test_a_caller_meets_its_key_developer_team_and_global_budgets():
    grant = Grant(key_id="k1", developer="ana", team="platform", budget=Budget(limit_usd=20, period="day"))
    refs = BudgetRules(RULES).for_grant(grant)
    assert [(r.scope, r.limit, r.period) for r in refs] == [
        ("key:k1", 20, "day"), ("developer:ana", 50, "week"), ("team:platform", 500, "month"),
        ("global", 5000, "month"),
    ]


def test_an_explicit_developer_rule_replaces_the_wildcard():
    refs = BudgetRules(RULES).for_grant(Grant(key_id="k2", developer="boss"))
    assert [(r.scope, r.limit) for r in refs] == [("developer:boss", 1000), ("global", 5000)]


def test_without_a_grant_only_the_global_budget_applies():
    assert [r.scope for r in BudgetRules(RULES).for_grant(None)] == ["global"]


def test_soft_warning_from_the_soft_share_and_hard_message_with_reset():
    now = _t(2026, 12, 5, 21, 58)
    [item] = budget_items(BudgetRules(RULES[:1]).for_grant(Grant(key_id="k", team="platform")), now)
    assert warning(item, 399.99) is None
    assert warning(item, 410.0) == "team:platform 82% of $500.00/month"
    message = exhausted_message(item, 501.2)
    assert message == ("budget team:platform is exhausted: $501.20 spent of its $500.00 per month; "
                       "it resets at 2027-01-01T00:00:00Z")
