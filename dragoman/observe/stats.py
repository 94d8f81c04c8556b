"""Per-bucket aggregates over a time range for the dashboard's overview: requests, errors, cancellations, spend,
tokens and the gateway's overhead p50/p95, computed in SQL on both stores over the time index.

Percentiles: neither store has the same exact percentile function (PostgreSQL's percentile_cont; SQLite none),
so both group each bucket's overhead into a histogram and the percentile is read from it here: the answer is the
same on both stores and at most one bin too high — 0.01 ms below 10 ms, 1 ms from there to 10 s, capped above."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from dragoman.observe.stores import CANCELLED_SQL, FAILED_SQL

_FINE_BINS = 1000  # 0.01 ms each, up to 10 ms
_MAX_BIN = _FINE_BINS + 9990  # 1 ms each from 10 ms to 10 s; slower overheads land in the last bin
STAT_KEYS = ("requests", "errors", "cancelled", "input_tokens", "output_tokens", "cost_usd")


def stats_sql(ph: str, postgres: bool, first: float, since: float, until: float, bucket: float) -> tuple[str, list[Any]]:
    """One row per (time bucket, overhead bin): the aggregates of the rows from `since` to `until` in it. Buckets
    start at `first` (<= since: on round times), but only records from `since` count, so the first bucket holds
    no record from before the period asked for."""
    floor = "CAST(FLOOR({}) AS BIGINT)" if postgres else "CAST({} AS INTEGER)"  # SQLite truncates; values are >= 0 here
    least, greatest = ("LEAST", "GREATEST") if postgres else ("MIN", "MAX")
    slot = floor.format(f"(time - {ph}) / {ph}")
    # Bounded before the cast, not after: PostgreSQL refuses to cast an overhead beyond BIGINT (1e300, inf, -1e300),
    # which would fail every query over its range, where SQLite's cast saturates. Both stores put it in the top bin
    # (or, below 0, the first: FLOOR and SQLite's truncation would disagree there too).
    fine = floor.format(f"{greatest}(overhead_ms, 0) * 100")
    coarse = floor.format(f"{least}(overhead_ms, {_MAX_BIN - _FINE_BINS + 10})")
    # NULL first: PostgreSQL's LEAST skips NULLs, so a record without an overhead would land in the top bin.
    hist = (f"CASE WHEN overhead_ms IS NULL THEN NULL WHEN overhead_ms < 10 THEN {fine}"
            f" ELSE {_FINE_BINS - 10} + {coarse} END")
    sql = (
        f"SELECT {slot} AS slot, {hist} AS bin, CAST(COUNT(*) AS BIGINT),"
        f" CAST(SUM(CASE WHEN {FAILED_SQL} THEN 1 ELSE 0 END) AS BIGINT),"
        f" CAST(SUM(CASE WHEN {CANCELLED_SQL} THEN 1 ELSE 0 END) AS BIGINT),"
        " CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), SUM(cost_usd)"
        f" FROM requests WHERE time >= {ph} AND time < {ph} GROUP BY 1, 2"
    )
    return sql, [first, bucket, since, until]


def bin_upper_ms(bin_: int) -> float:
    """The upper edge of a histogram bin, in ms."""
    if bin_ < _FINE_BINS:
        return round((bin_ + 1) / 100, 2)
    return float(bin_ - _FINE_BINS + 10 + 1)


def stats_buckets(rows: Iterable[Sequence[Any]], since: float, until: float, bucket: float) -> list[dict[str, Any]]:
    """Every bucket from `since` to `until` (empty ones too, so a chart has no gaps), oldest first."""
    count = max(1, math.ceil((until - since) / bucket))
    out = [{"time": since + i * bucket, **{k: 0 for k in STAT_KEYS}, "cost_usd": None} for i in range(count)]
    hists: list[dict[int, int]] = [{} for _ in range(count)]
    for slot, bin_, requests, errors, cancelled, input_tokens, output_tokens, cost in rows:
        if not 0 <= slot < count:
            continue
        b = out[slot]
        b["requests"] += int(requests)
        b["errors"] += int(errors or 0)
        b["cancelled"] += int(cancelled or 0)
        b["input_tokens"] += int(input_tokens or 0)
        b["output_tokens"] += int(output_tokens or 0)
        if cost is not None:
            b["cost_usd"] = round((b["cost_usd"] or 0.0) + float(cost), 6)
        if bin_ is not None:
            hists[slot][int(bin_)] = hists[slot].get(int(bin_), 0) + int(requests)
    for b, hist in zip(out, hists):
        b["overhead_p50_ms"] = _percentile(hist, 0.50)
        b["overhead_p95_ms"] = _percentile(hist, 0.95)
    return out


def _percentile(hist: dict[int, int], q: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for bin_ in sorted(hist):
        seen += hist[bin_]
        if seen >= rank:
            return bin_upper_ms(bin_)
    return None  # not reached: seen ends at total >= rank
