"""The audit writer runs the correctness loop's hook on each record in its own thread, before the record is priced,
redacted and written; what the hook returns is written in the same batch; a failing hook costs no record; late
work (pending) is picked up without any record passing."""

from __future__ import annotations

import threading

from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import Followups, SignalUpdate, ToolCallRow, open_store
from dragoman.observe.writer import AuditWriter, NullSink
from tests.audit_helpers import wait_for

SECRET = "sk-proj-" + "A1b2C3d4" * 5


def test_the_hook_judges_each_record_in_the_writer_thread_before_redaction_and_its_rows_share_the_batch(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    seen: list[tuple[str, str, object]] = []

    def assess(items: list[tuple[AuditRecord, object]]) -> list[Followups]:
        out = []
        for record, evidence in items:
            seen.append((record.request_id, threading.current_thread().name, evidence))
            record.verdict, record.verdict_detail = "fail", f"quoted {SECRET}"
            out.append(Followups(tool_calls=[ToolCallRow("toolu_1", record.request_id, record.time)]))
        return out

    writer = AuditWriter(store, flush_interval=0.01, assess=assess)
    assert writer.submit(AuditRecord(time=1.0, request_id="req_1"), {"evidence": 1})
    assert writer.close(5.0)
    assert seen == [("req_1", "dragoman-audit-writer", {"evidence": 1})]
    reopened = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    [row] = reopened.query_requests()
    assert row["verdict"] == "fail" and SECRET not in row["verdict_detail"]  # redacted after the hook
    assert [r.request_id for r in reopened.find_tool_calls(["toolu_1"])] == ["req_1"]
    reopened.close()


def test_a_drain_runs_the_hook_on_every_record_in_order_before_pricing_and_counting_any(tmp_path) -> None:
    # The loop's work for a whole drain, then the rest: each phase stays warm from one record to the next (bench/
    # RESULTS.md, "The tool-calling loop"). Queue order is kept, so a next turn drained with the call it answers
    # still finds the call remembered.
    steps: list[str] = []

    class Counting(NullSink):
        def observe_request(self, record: AuditRecord) -> None:
            steps.append(f"count {record.request_id}")

    def assess(items: list[tuple[AuditRecord, object]]) -> list[None]:
        steps.extend(f"assess {record.request_id}" for record, _ in items)
        return [None] * len(items)

    # Nothing wakes the writer before close(): the three records are one drain.
    writer = AuditWriter(open_store(f"sqlite:///{tmp_path / 'a.db'}"), batch=100, flush_interval=3600.0,
                         sink=Counting(), assess=assess)
    for i in range(3):
        assert writer.submit(AuditRecord(time=1.0, request_id=f"req_{i}"), object())
    assert writer.close(5.0) and writer.written == 3
    assert steps == ["assess req_0", "assess req_1", "assess req_2", "count req_0", "count req_1", "count req_2"]


def test_a_failing_hook_costs_no_record(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")

    def assess(items: list[tuple[AuditRecord, object]]) -> list[Followups]:
        raise RuntimeError("bug in a check")

    writer = AuditWriter(store, flush_interval=0.01, assess=assess)
    writer.submit(AuditRecord(time=1.0, request_id="req_1"), object())
    assert writer.close(5.0) and writer.written == 1


def test_a_hook_that_answers_for_fewer_records_than_it_was_given_costs_no_record(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")

    def assess(items: list[tuple[AuditRecord, object]]) -> list[Followups]:
        return []  # a bug: had the writer paired records with this list, every record would be lost

    writer = AuditWriter(store, batch=100, flush_interval=3600.0, assess=assess)
    for i in range(3):
        writer.submit(AuditRecord(time=1.0, request_id=f"req_{i}"), object())
    assert writer.close(5.0) and writer.written == 3


def test_pending_work_is_written_without_any_record_passing(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    store = open_store(url)
    store.write([AuditRecord(time=1.0, request_id="req_old")])
    queued = [Followups(signals=[SignalUpdate("req_old", "judge", "pass")])]

    def pending() -> Followups | None:
        return queued.pop() if queued else None

    writer = AuditWriter(store, flush_interval=0.01, assess_pending=pending)
    reader = open_store(url)
    try:
        wait_for(lambda: reader.query_requests()[0]["judge"] == "pass", 5.0, "the judge column")
    finally:
        writer.close(5.0)
        reader.close()
