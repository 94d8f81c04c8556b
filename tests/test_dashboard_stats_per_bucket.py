"""/api/stats' numbers: per time bucket, requests, errors, tokens, spend and the overhead's p50/p95, computed in
SQL on SQLite and on a real PostgreSQL, equal to the same numbers computed by hand from the records; the feed's
starting point (the newest id) on both stores."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from dragoman.observe.record import AuditRecord
from dragoman.observe.stats import bin_upper_ms
from dragoman.observe.stores import AuditStore, open_store
from dragoman.ui.api import stats
from dragoman.reports import ReportError
from tests.observe_pg import cluster

T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600  # on the hour
HOUR = 3600.0


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[AuditStore]:
    url = f"sqlite:///{tmp_path}/audit.db" if request.param == "sqlite" else cluster().new_database()
    opened = open_store(url)
    yield opened
    opened.close()


def _records() -> list[AuditRecord]:
    out = []
    for i in range(60):  # 3 hours, 20 records each; the overheads spread over both histogram ranges
        overhead = [0.21, 0.35, 0.5, 0.77, 1.9, 12.4, 250.0][i % 7] if i % 11 else None
        out.append(AuditRecord(time=T0 + i * 180, request_id=f"req_{i}", status=500 if i % 9 == 0 else 200,
                               input_tokens=100 + i, output_tokens=10 + i, cost_usd=None if i % 4 == 0 else 0.01 * i,
                               overhead_ms=overhead))
    return out


def _by_hand(records: list[AuditRecord], hour: int) -> dict:
    rows = [r for r in records if T0 + hour * HOUR <= r.time < T0 + (hour + 1) * HOUR]
    overheads = sorted(r.overhead_ms for r in rows if r.overhead_ms is not None)
    costs = [r.cost_usd for r in rows if r.cost_usd is not None]
    return {"requests": len(rows), "errors": sum(r.status >= 400 for r in rows),
            "input_tokens": sum(r.input_tokens for r in rows), "output_tokens": sum(r.output_tokens for r in rows),
            "cost_usd": round(sum(costs), 6) if costs else None,
            "p50": overheads[math.ceil(0.5 * len(overheads)) - 1], "p95": overheads[math.ceil(0.95 * len(overheads)) - 1]}


def test_each_bucket_sums_its_records_and_reads_percentiles_from_a_histogram(store: AuditStore) -> None:
    records = _records()
    store.write(records)
    buckets = store.query_stats(T0 - HOUR, T0 + 4 * HOUR, HOUR)
    assert [b["time"] for b in buckets] == [T0 + (h - 1) * HOUR for h in range(5)]
    assert buckets[0]["requests"] == buckets[4]["requests"] == 0 and buckets[0]["overhead_p50_ms"] is None
    for hour in range(3):
        got, want = buckets[hour + 1], _by_hand(records, hour)
        for key in ("requests", "errors", "input_tokens", "output_tokens"):
            assert got[key] == want[key], (hour, key)
        assert got["cost_usd"] == pytest.approx(want["cost_usd"])
        # The histogram answers with its bin's upper edge: at most one bin above the exact value.
        for name, exact in (("overhead_p50_ms", want["p50"]), ("overhead_p95_ms", want["p95"])):
            width = 0.01 if exact < 10 else 1.0
            assert exact <= got[name] <= exact + width + 1e-9, (hour, name, exact, got[name])


def test_sqlite_and_postgresql_give_the_same_buckets(tmp_path) -> None:
    answers = []
    for url in (f"sqlite:///{tmp_path}/a.db", cluster().new_database()):
        opened = open_store(url)
        try:
            opened.write(_records())
            answers.append(opened.query_stats(T0, T0 + 3 * HOUR, 1800.0))
        finally:
            opened.close()
    assert answers[0] == answers[1]


def test_the_histogram_bins_cover_fine_and_coarse_overheads() -> None:
    assert bin_upper_ms(0) == 0.01 and bin_upper_ms(41) == 0.42 and bin_upper_ms(999) == 10.0
    assert bin_upper_ms(1000) == 11.0 and bin_upper_ms(1002) == 13.0


def test_latest_id_is_where_a_new_feed_starts(store: AuditStore) -> None:
    assert store.latest_id() == 0
    store.write(_records()[:5])
    newest = store.latest_id()
    assert [r["id"] for r in store.query_requests(None, 10, after_id=newest)] == []
    store.write(_records()[5:7])
    assert [r["request_id"] for r in store.query_requests(None, 10, after_id=newest)] == ["req_5", "req_6"]


def test_the_stats_endpoint_aligns_buckets_and_refuses_bad_parameters(store: AuditStore) -> None:
    import msgspec

    store.write(_records())
    now = T0 + 3 * HOUR + 600
    body = msgspec.json.decode(stats(store, {"since": str(T0 + 60), "bucket": "1h"}, now))
    assert body["since"] == T0 + 60 and body["data"][0]["time"] == T0 and body["bucket"] == HOUR and len(body["data"]) == 4
    assert sum(b["requests"] for b in body["data"]) == 59  # req_0, at T0, is before since
    for params in ({"bucket": "0h"}, {"bucket": "1"}, {"bucket": "1s", "since": "30d"}, {"since": "later"},
                   {"until": str(T0 - 10), "since": str(T0)}, {"nope": "1"}):
        with pytest.raises(ReportError):
            stats(store, params, now)


def test_the_stats_count_only_the_period_asked_for_though_the_first_bucket_starts_on_the_hour(store: AuditStore) -> None:
    """The Overview's "last 24h" sums every bucket: a record 24.5 h old, in the first bucket's hour but before the
    period, must not count (Costs over the same 24h does not count it either)."""
    import msgspec

    now = T0 + 24 * HOUR + 1800  # half past: "24h" starts at T0 + 1800, its first bucket at T0
    store.write([AuditRecord(time=T0 + 60, request_id="req_too_old", status=200, cost_usd=5.0),
                 AuditRecord(time=now - 600, request_id="req_recent", status=200, cost_usd=1.0)])
    body = msgspec.json.decode(stats(store, {"since": str(now - 24 * HOUR), "bucket": "1h"}, now))
    assert body["data"][0]["time"] == T0 and body["since"] == now - 24 * HOUR
    assert sum(b["requests"] for b in body["data"]) == 1
    assert sum(b["cost_usd"] or 0 for b in body["data"]) == 1.0
    assert [row["requests"] for row in store.query_costs("developer", now - 24 * HOUR, None)] == [1]
