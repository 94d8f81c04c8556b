"""The audit stores: the same tests on SQLite and on a real PostgreSQL (tests/observe_pg.py starts one).

Migrations create and upgrade the schema; records come back field by field; filters, time windows and
follow-mode ids select the right rows; costs group and sum to hand-computed values; both stores agree.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from dragoman.observe import migrations
from dragoman.observe.record import AuditRecord, Candidate
from dragoman.observe.stores import AuditStore, StoreError, open_store, sqlite_path
from tests.observe_pg import cluster, store, store_url  # noqa: F401 (fixtures)

T0 = 1_795_000_000.0  # 2026-11-18T…Z



def _record(i: int, **fields) -> AuditRecord:
    base = {
        "time": T0 + i, "request_id": f"req_{i:04d}", "key_id": "key_team1", "developer": "alice", "team": "web", "repo": "shop",
        "session": "s-1", "requested_model": "claude-sonnet-4-5", "route": "gpt-5-via-gateway", "upstream_model": "gpt-5",
        "provider": "openai", "status": 200, "input_tokens": 1000, "output_tokens": 100, "cache_read_tokens": 0, "cost_usd": 0.00225,
    }
    base.update(fields)
    return AuditRecord(**base)


def _fleet() -> list[AuditRecord]:
    """Six requests: alice ×3 (one 529), bob ×2 on another repo and model, one unpriced local model."""
    return [
        _record(0),
        _record(1, input_tokens=2000, output_tokens=300, cache_read_tokens=8000, cost_usd=0.0065),
        _record(2, status=529, error_type="overloaded_error", input_tokens=0, output_tokens=0, cost_usd=None),
        _record(3, developer="bob", repo="api", upstream_model="gpt-5-mini", route="mini", cost_usd=0.00045),
        _record(4, developer="bob", repo="api", team="platform", upstream_model="gpt-5-mini", route="mini",
                status=429, error_type="rate_limit_error", input_tokens=0, output_tokens=0, cost_usd=None),
        _record(5, developer="carol", repo=None, upstream_model="qwen3", route="local", cost_usd=None),
    ]


def test_migrations_create_the_schema(store: AuditStore) -> None:
    assert store.schema_version() == migrations.LATEST
    assert store.query_requests() == []
    assert store.migrate() == migrations.LATEST  # idempotent


def test_migrations_upgrade_an_old_schema_keeping_rows(store_url: str) -> None:
    old = open_store(store_url, migrate=False)
    assert old.migrate(target=1) == 1
    # Written as a release with schema 1 wrote it: only the columns that schema had.
    ph = "?" if old.dialect == migrations.SQLITE else "%s"
    old.run(lambda conn: conn.execute(  # type: ignore[attr-defined]
        f"INSERT INTO requests (time, time_iso, request_id, status) VALUES ({ph}, {ph}, {ph}, {ph})",
        (1.0, "1970-01-01T00:00:01.000+00:00", "req_0000", 200),
    ))
    assert old.schema_version() == 1
    old.close()
    upgraded = open_store(store_url)
    try:
        assert upgraded.schema_version() == migrations.LATEST
        assert [r["request_id"] for r in upgraded.query_requests({"request_id": "req_0000"})] == ["req_0000"]
    finally:
        upgraded.close()


def test_a_newer_schema_is_refused(store_url: str) -> None:
    store = open_store(store_url)
    try:
        ph = "?" if store.dialect == migrations.SQLITE else "%s"
        store.run(lambda conn: conn.execute(  # type: ignore[attr-defined]
            f"INSERT INTO schema_version (version, description, applied_at) VALUES ({ph}, {ph}, {ph})",
            (migrations.LATEST + 1, "from the future", time.time()),
        ))
        with pytest.raises(RuntimeError, match="upgrade Dragoman"):
            store.migrate()
    finally:
        store.close()


def test_a_record_comes_back_field_by_field(store: AuditStore) -> None:
    record = _record(
        7, policy="cheap-for-haiku", branch="long-context", input_estimate=12345, stream=True, error_type=None,
        candidates=[Candidate(route="primary", upstream="openai", model="gpt-5", outcome="error", status=503,
                              error_type="overloaded_error", latency_ms=12.5),
                    Candidate(route="gpt-5-via-gateway", upstream="azure", model="gpt-5", latency_ms=800.0)],
        latency_total_ms=1500.5, ttfb_ms=420.25, upstream_ms=1490.0, overhead_ms=10.5, reasoning_tokens=64,
        notes=["cache_control dropped", "thinking.display dropped"], stream_events=42,
        budget_developer="alice", budget_team="web",
    )
    store.write([record])
    [row] = store.query_requests()
    assert isinstance(row.pop("id"), int)
    expected = {name: getattr(record, name) for name in AuditRecord.__struct_fields__}
    expected["candidates"] = [
        {"route": "primary", "upstream": "openai", "model": "gpt-5", "outcome": "error", "status": 503,
         "error_type": "overloaded_error", "latency_ms": 12.5},
        {"route": "gpt-5-via-gateway", "upstream": "azure", "model": "gpt-5", "outcome": "ok", "status": None,
         "error_type": None, "latency_ms": 800.0},
    ]
    expected["time_iso"] = record.time_iso
    assert row == expected


def test_filters_select_rows(store: AuditStore) -> None:
    store.write(_fleet())
    ids = lambda rows: sorted(r["request_id"] for r in rows)
    assert ids(store.query_requests({"developer": "bob"})) == ["req_0003", "req_0004"]
    assert ids(store.query_requests({"repo": "shop", "status": "ok"})) == ["req_0000", "req_0001"]
    assert ids(store.query_requests({"status": "5xx"})) == ["req_0002"]
    assert ids(store.query_requests({"status": "error"})) == ["req_0002", "req_0004"]
    assert ids(store.query_requests({"status": 429})) == ["req_0004"]
    assert ids(store.query_requests({"route": "local", "developer": None})) == ["req_0005"]
    assert ids(store.query_requests({"team": "platform"})) == ["req_0004"]
    with pytest.raises(StoreError, match="unknown filter"):
        store.query_requests({"password": "x"})
    with pytest.raises(StoreError, match="status filter"):
        store.query_requests({"status": "bad"})


def test_time_window_limit_and_order(store: AuditStore) -> None:
    store.write(_fleet())
    rows = store.query_requests(None, 100, since=T0 + 1, until=T0 + 4)
    assert [r["request_id"] for r in rows] == ["req_0003", "req_0002", "req_0001"]  # newest first
    assert [r["request_id"] for r in store.query_requests(limit=2)] == ["req_0005", "req_0004"]


def test_after_id_returns_newer_rows_oldest_first(store: AuditStore) -> None:
    store.write(_fleet()[:3])
    last = max(r["id"] for r in store.query_requests())
    store.write(_fleet()[3:])
    fresh = store.query_requests(after_id=last)
    assert [r["request_id"] for r in fresh] == ["req_0003", "req_0004", "req_0005"]


def test_costs_by_developer_sum_by_hand(store: AuditStore) -> None:
    store.write(_fleet())
    rows = store.query_costs("developer", since=T0)
    assert rows == [
        {"developer": "alice", "requests": 3, "errors": 1, "cancelled": 0, "input_tokens": 3000, "output_tokens": 400,
         "cache_read_tokens": 8000, "reasoning_tokens": 0, "cost_usd": 0.00875, "unpriced": 0},
        {"developer": "bob", "requests": 2, "errors": 1, "cancelled": 0, "input_tokens": 1000, "output_tokens": 100,
         "cache_read_tokens": 0, "reasoning_tokens": 0, "cost_usd": 0.00045, "unpriced": 0},
        {"developer": "carol", "requests": 1, "errors": 0, "cancelled": 0, "input_tokens": 1000, "output_tokens": 100,
         "cache_read_tokens": 0, "reasoning_tokens": 0, "cost_usd": None, "unpriced": 1},
    ]


def test_costs_by_every_grouping(store: AuditStore) -> None:
    store.write(_fleet())
    by_model = {r["model"]: r["cost_usd"] for r in store.query_costs("model")}
    assert by_model == {"gpt-5": 0.00875, "gpt-5-mini": 0.00045, "qwen3": None}
    by_repo = {r["repo"]: r["requests"] for r in store.query_costs("repo")}
    assert by_repo == {"shop": 3, "api": 2, None: 1}
    assert [r["route"] for r in store.query_costs("route")] == ["gpt-5-via-gateway", "mini", "local"]
    assert {r["team"] for r in store.query_costs("team")} == {"web", "platform"}
    assert store.query_costs("developer", since=T0 + 3, until=T0 + 5)[0]["developer"] == "bob"
    with pytest.raises(StoreError, match="choose one of"):
        store.query_costs("password")


def test_both_stores_return_identical_rows(tmp_path) -> None:
    lite = open_store(f"sqlite:///{tmp_path}/same.db")
    pg = open_store(cluster().new_database())
    try:
        for s in (lite, pg):
            s.write(_fleet())
        assert lite.query_requests() == pg.query_requests()
        for by in ("developer", "repo", "team", "model", "route", "key"):
            assert lite.query_costs(by) == pg.query_costs(by), by
    finally:
        lite.close()
        pg.close()


def test_sqlite_store_is_wal_and_batches_in_one_transaction(tmp_path) -> None:
    store = open_store(str(tmp_path / "plain-path.db"))
    store.write([_record(i) for i in range(500)])
    conn = sqlite3.connect(tmp_path / "plain-path.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 500
    store.close()


def test_store_urls() -> None:
    assert sqlite_path("sqlite:///./dragoman.db") == "./dragoman.db"
    assert sqlite_path("sqlite:////var/lib/x.db") == "/var/lib/x.db"
    with pytest.raises(StoreError):
        open_store("mysql://x")
    with pytest.raises(StoreError, match="does not exist"):
        open_store("sqlite:////no/such/dir/x.db")
