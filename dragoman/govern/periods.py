"""Calendar periods in UTC for budgets (`day`, `week` from Monday, `month`) and the RFC 3339 times headers and
messages show. Exact: a period is [start, end) in epoch seconds, its end the next period's start."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime, timedelta

_DAY = 86_400


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """The [start, end) of the `period` containing `now` (epoch seconds), in UTC."""
    day_start = now - now % _DAY
    if period == "day":
        return day_start, day_start + _DAY
    if period == "week":  # ISO weeks start on Monday; 1970-01-01 was a Thursday (weekday 3)
        weekday = (int(day_start // _DAY) + 3) % 7
        start = day_start - weekday * _DAY
        return start, start + 7 * _DAY
    if period == "month":
        t = time.gmtime(now)
        start = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
        year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
        return float(start), float(calendar.timegm((year, month, 1, 0, 0, 0)))
    raise ValueError(f"unknown budget period {period!r}")


def period_label(period: str, start: float) -> str:
    """A period's name in counter keys: 2026-12-05 (day), 2026-W49 (week), 2026-12 (month)."""
    t = datetime.fromtimestamp(start, UTC)
    if period == "day":
        return t.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = t.isocalendar()
        return f"{year}-W{week:02d}"
    return t.strftime("%Y-%m")


_rfc3339_cache: dict[int, str] = {}


def rfc3339(ts: float) -> str:
    """`ts` as RFC 3339 in UTC at whole seconds, rounded up (a reset is never announced early):
    2026-12-05T21:58:04Z. Cached per second: the hot path formats a few per request."""
    second = -int(-ts // 1)
    text = _rfc3339_cache.get(second)
    if text is None:
        if len(_rfc3339_cache) > 4096:
            _rfc3339_cache.clear()
        text = _rfc3339_cache[second] = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=second)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    return text
