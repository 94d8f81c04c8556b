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


def test_old_tool_calls_are_pruned(store: AuditStore) -> None:
    store.write([], Followups(tool_calls=[_row(0, T0 - 100_000), _row(1, T0)]))
    store.write([], Followups(prune_before=T0 - 1))
    assert [r.tool_use_id for r in store.find_tool_calls(["toolu_0", "toolu_1"])] == ["toolu_1"]


def test_a_signal_for_an_unknown_column_is_refused(store: AuditStore) -> None:
    from dragoman.observe.stores import StoreError

    with pytest.raises(StoreError):
        store.update_signal(SignalUpdate("req_1", "status", "500"))
