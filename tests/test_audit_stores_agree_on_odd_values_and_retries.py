"""Both audit stores, on what a client, an upstream or a failed commit can put in front of them: text holding a
literal backslash-u0000 (not a NUL) reads back as written; a batch written twice (retried after a commit whose
outcome was unknown) leaves one row per request, and an older store holding such copies is deduplicated when it is
migrated; an absurd overhead in one row leaves the dashboard's stats answering, the same on both stores."""

from __future__ import annotations

import pytest

from dragoman.observe import migrations
from dragoman.observe.record import AuditRecord, Candidate
from dragoman.observe.stores import AuditStore, open_store
from tests.observe_pg import store, store_url  # noqa: F401 (fixtures)

T0 = 1_795_000_000.0
ESCAPE_TEXT = "a\\u0000b"  # backslash, u, 0000: six ordinary characters, no NUL


def test_text_holding_a_literal_nul_escape_reads_back_unchanged(store: AuditStore) -> None:
    record = AuditRecord(
        time=T0, request_id="req_escape", developer=ESCAPE_TEXT, requested_model="gpt\\u0000",
        candidates=[Candidate(route="r", upstream="u", model=ESCAPE_TEXT)],
        notes=[ESCAPE_TEXT, "\\\\u0000 and \\\x00"],  # an escaped backslash then u0000; a backslash then a NUL
    )
    store.write([record])
    [row] = store.query_requests({"developer": ESCAPE_TEXT})  # the exact filter finds it
    assert row["developer"] == ESCAPE_TEXT and row["requested_model"] == "gpt\\u0000"
    assert row["candidates"][0]["model"] == ESCAPE_TEXT
    # A real NUL cannot be stored on PostgreSQL: U+FFFD there; SQLite keeps it.
    nul = "\ufffd" if store.dialect == migrations.POSTGRES else "\x00"
    assert row["notes"] == [ESCAPE_TEXT, "\\\\u0000 and \\" + nul]


def test_a_batch_written_twice_is_stored_once(store: AuditStore) -> None:
    batch = [AuditRecord(time=T0 + i, request_id=f"req_{i}", cost_usd=1.0) for i in range(3)]
    store.write(batch)
    store.write([*batch, AuditRecord(time=T0 + 3, request_id="req_3", cost_usd=1.0)])  # the retry, plus a new one
    assert sorted(r["request_id"] for r in store.query_requests()) == ["req_0", "req_1", "req_2", "req_3"]
    assert store.query_spend(None, None, T0, T0 + 10) == 4.0


def test_migrating_keeps_the_first_of_each_request_ids_copies(store_url: str) -> None:
    old = open_store(store_url, migrate=False)
    assert old.migrate(target=10) == 10
    ph = "?" if old.dialect == migrations.SQLITE else "%s"
    rows = [("req_a", 1.0), ("req_b", 2.0), ("req_a", 1.0), ("req_a", 1.0), ("req_c", 3.0), ("req_b", 2.0)]
    for request_id, cost in rows:  # as schema 10 let a retried batch insert its records again
        old.run(lambda conn: conn.execute(  # type: ignore[attr-defined]
            f"INSERT INTO requests (time, time_iso, request_id, status, cost_usd) VALUES ({ph}, {ph}, {ph}, 200, {ph})",
            (T0, "2026-11-18T00:00:00.000+00:00", request_id, cost),
        ))
    old.close()
    upgraded = open_store(store_url)
    try:
        kept = sorted((r["id"], r["request_id"]) for r in upgraded.query_requests())
        assert kept == [(1, "req_a"), (2, "req_b"), (5, "req_c")]
        assert upgraded.query_spend(None, None, T0 - 1, T0 + 1) == 6.0
        upgraded.write([AuditRecord(time=T0, request_id="req_a")])  # unique from now on: skipped
        assert len(upgraded.query_requests()) == 3
    finally:
        upgraded.close()


@pytest.mark.parametrize("absurd", [1e300, float("inf"), -1e300, float("-inf")])
def test_stats_answer_alike_with_an_absurd_overhead_in_range(store: AuditStore, absurd: float) -> None:
    store.write([
        AuditRecord(time=T0 + 1, request_id="req_ok", overhead_ms=2.5),
        AuditRecord(time=T0 + 2, request_id="req_absurd", overhead_ms=absurd),
    ])
    [bucket] = store.query_stats(T0, T0 + 60, 60)
    assert bucket["requests"] == 2
    # p50: the ordinary row (or, ranked below it, the absurd negative one in the first bin); p95: the other end.
    if absurd > 0:
        assert (bucket["overhead_p50_ms"], bucket["overhead_p95_ms"]) == (2.51, 10001.0)  # the top bin, capped
    else:
        assert (bucket["overhead_p50_ms"], bucket["overhead_p95_ms"]) == (0.01, 2.51)
