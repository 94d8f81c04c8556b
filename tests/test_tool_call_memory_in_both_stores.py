"""The tool-call memory table (migration 5) and late-signal updates on SQLite and on PostgreSQL: rows written in
the batch's transaction come back by id, a signal updates the earlier record, a weaker one never overwrites a
stronger one, and old rows are pruned."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, Followups, SignalUpdate, ToolCallRow, open_store
from tests.observe_pg import cluster

T0 = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[AuditStore]:
    url = f"sqlite:///{tmp_path}/audit.db" if request.param == "sqlite" else cluster().new_database()
    opened = open_store(url)
    yield opened
    opened.close()


def _row(i: int, time: float = T0) -> ToolCallRow:
    return ToolCallRow(f"toolu_{i}", f"req_{i}", time, "r1", "gpt-x", "tools|8k|json|nothink", None, "v1", "Read")


def test_rows_written_with_the_batch_come_back_by_id(store: AuditStore) -> None:
    records = [AuditRecord(time=T0, request_id=f"req_{i}") for i in range(3)]
    store.write(records, Followups(tool_calls=[_row(0), _row(1), _row(1)]))  # a repeated id is kept once
    assert sorted(store.find_tool_calls(["toolu_1", "toolu_0", "toolu_9"]), key=lambda r: r.tool_use_id) == [
        _row(0), _row(1)]
    assert store.find_tool_calls([]) == []


def test_a_signal_updates_the_earlier_record_and_a_weaker_one_never_overwrites_it(store: AuditStore) -> None:
    store.write([AuditRecord(time=T0, request_id="req_1"), AuditRecord(time=T0, request_id="req_2")])
    store.update_signal(SignalUpdate("req_1", "next_turn", "execution_failed", ("ok",)))
    store.update_signal(SignalUpdate("req_1", "next_turn", "ok"))
    store.update_signal(SignalUpdate("req_2", "judge", "pass"))
    rows = {r["request_id"]: r for r in store.query_requests()}
    assert (rows["req_1"]["next_turn"], rows["req_1"]["judge"]) == ("execution_failed", None)
    assert (rows["req_2"]["next_turn"], rows["req_2"]["judge"]) == (None, "pass")
    store.update_signal(SignalUpdate("req_1", "next_turn", "client_refused", ("ok", "execution_failed")))
    assert store.query_requests({"request_id": "req_1"})[0]["next_turn"] == "client_refused"


def test_the_update_in_a_batch_sees_the_record_inserted_in_the_same_batch(store: AuditStore) -> None:
    store.write([AuditRecord(time=T0, request_id="req_1")],
                Followups(signals=[SignalUpdate("req_1", "next_turn", "ok")]))
    assert store.query_requests({"request_id": "req_1"})[0]["next_turn"] == "ok"


def test_a_batch_of_signals_lands_as_if_each_were_applied_alone(store: AuditStore) -> None:
    """A batch's signals are written a statement per kind over many records (observe/stores.py): every record gets
    its own value, a stronger one wins whichever comes first in the batch, and more records than one statement
    takes (250 > 200) all land."""
    from dragoman.observe import stores

    ids = [f"req_{i}" for i in range(250)]
    store.write([AuditRecord(time=T0, request_id=i) for i in ids])
    signals = [SignalUpdate(i, "next_turn", "ok") for i in ids]
    signals[3:3] = [SignalUpdate("req_7", "next_turn", "client_refused", ("ok", "execution_failed"))]
    signals += [SignalUpdate("req_8", "next_turn", "execution_failed", ("ok",)),
                SignalUpdate("req_7", "next_turn", "execution_failed", ("ok",)), SignalUpdate("req_9", "judge", "fail")]
    statements = stores.followup_statements("?", Followups(signals=signals))
    assert len(statements) == 5  # ok (two statements: 200 + 50 ids), client_refused, execution_failed, judge
    store.write([], Followups(signals=signals))
    rows = {r["request_id"]: r for r in store.query_requests(limit=1000)}
    assert len(rows) == 250
    assert {i: rows[i]["next_turn"] for i in ("req_0", "req_7", "req_8", "req_249")} == {
        "req_0": "ok", "req_7": "client_refused", "req_8": "execution_failed", "req_249": "ok"}
    assert [rows[i]["judge"] for i in ("req_8", "req_9")] == [None, "fail"]


def test_old_tool_calls_are_pruned(store: AuditStore) -> None:
    store.write([], Followups(tool_calls=[_row(0, T0 - 100_000), _row(1, T0)]))
    store.write([], Followups(prune_before=T0 - 1))
    assert [r.tool_use_id for r in store.find_tool_calls(["toolu_0", "toolu_1"])] == ["toolu_1"]


def test_a_signal_for_an_unknown_column_is_refused(store: AuditStore) -> None:
    from dragoman.observe.stores import StoreError

    with pytest.raises(StoreError):
        store.update_signal(SignalUpdate("req_1", "status", "500"))


def test_a_rows_client_key_comes_back_with_it(store: AuditStore) -> None:
    keyed = ToolCallRow("toolu_k", "req_k", T0, "r1", None, None, None, None, "Read", "key_a")  # migration 10
    store.write([AuditRecord(time=T0, request_id="req_k")], Followups(tool_calls=[keyed]))
    assert store.find_tool_calls(["toolu_k"]) == [keyed]


def test_a_signal_is_claimed_by_the_one_update_that_changes_the_record(store: AuditStore) -> None:
    # Two workers attributing the same next turn (a client's retry): only the first tells anyone.
    store.write([AuditRecord(time=T0, request_id="req_1")])
    refused = SignalUpdate("req_1", "next_turn", "client_refused", ("ok", "execution_failed"))
    assert store.claim_signal(refused) is True
    assert store.claim_signal(refused) is False
    assert store.claim_signal(SignalUpdate("req_1", "next_turn", "execution_failed", ("ok",))) is False
    assert store.query_requests({"request_id": "req_1"})[0]["next_turn"] == "client_refused"
    assert store.claim_signal(SignalUpdate("req_unwritten", "next_turn", "client_refused")) is None
