"""The audit writer: submit never blocks, the backlog is bounded, drops are counted, close() flushes all."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest

from dragoman.config.model import Pricing
from dragoman.observe.pricing import Pricer
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import open_store
from dragoman.observe.writer import AuditWriter
from tests.audit_helpers import wait_for


def _record(i: int, **fields) -> AuditRecord:
    base = {"route": "r", "upstream_model": "gpt-5", "input_tokens": 1000, "output_tokens": 100}
    return AuditRecord(time=1_795_000_000.0 + i, request_id=f"req_{i:05d}", **{**base, **fields})


class MemoryStore:
    """A store that keeps batches in memory; `failing` makes writes raise."""

    def __init__(self) -> None:
        self.failing = False
        self.batches: list[list[AuditRecord]] = []
        self.attempts = 0
        self.closed = False

    def write(self, records: Sequence[AuditRecord]) -> None:
        self.attempts += 1
        if self.failing:
            raise ConnectionError("store down: password=hunter2hunter2")
        self.batches.append(list(records))

    def close(self) -> None:
        self.closed = True

    @property
    def records(self) -> list[AuditRecord]:
        return [r for batch in self.batches for r in batch]


class StuckStore(MemoryStore):
    """A store whose write blocks until the test sets `release`; `entered` is set once the writer is inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, records: Sequence[AuditRecord]) -> None:
        self.entered.set()
        assert self.release.wait(20), "the test never released the store"
        super().write(records)


class Sink:
    def __init__(self) -> None:
        self.observed: list[AuditRecord] = []
        self.dropped = 0
        self.depths: list[int] = []

    def observe_request(self, record: AuditRecord) -> None:
        self.observed.append(record)

    def audit_dropped(self, count: int) -> None:
        self.dropped += count

    def audit_queue_depth(self, depth: int) -> None:
        self.depths.append(depth)

    def flush(self) -> None:
        pass


def test_close_flushes_everything_to_sqlite(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    writer = AuditWriter(store, queue_size=10_000, batch=100, flush_interval=30.0)  # would not flush by itself
    for i in range(2500):
        assert writer.submit(_record(i))
    assert writer.close(timeout=10)
    reader = open_store(f"sqlite:///{tmp_path}/a.db")
    assert len(reader.query_requests(limit=10_000)) == 2500
    assert writer.written == 2500 and writer.dropped == 0
    reader.close()


def test_a_partial_batch_is_written_by_the_flush_timer_without_close() -> None:
    store = MemoryStore()
    writer = AuditWriter(store, batch=256, flush_interval=0.05)
    writer.submit(_record(1))
    wait_for(lambda: store.records, 5, "the flush timer to write the record")
    assert [r.request_id for r in store.records] == ["req_00001"]
    writer.close()


def test_writer_prices_redacts_and_reports_each_record_once() -> None:
    store, sink = MemoryStore(), Sink()
    writer = AuditWriter(store, flush_interval=0.01, pricer=Pricer({"free": Pricing(0, 0, 0)}), sink=sink)
    writer.submit(_record(1, notes=["upstream echoed sk-proj-abcdefghijkl"]))
    writer.submit(_record(2, route="free"))
    writer.submit(_record(3, cost_usd=1.5))  # the server's own figure is kept
    writer.close()
    costs = [r.cost_usd for r in store.records]
    assert costs == [pytest.approx(0.00225), 0.0, 1.5]  # 1000 × 1.25 + 100 × 10 = 2250 µ$
    assert "sk-proj" not in store.records[0].notes[0]
    assert [r.request_id for r in sink.observed] == ["req_00001", "req_00002", "req_00003"]


def test_submit_never_waits_for_a_stuck_store() -> None:
    store = StuckStore()
    writer = AuditWriter(store, queue_size=1000, batch=10, flush_interval=0.01)
    writer.submit(_record(0))
    assert store.entered.wait(5), "the writer thread never reached the store"
    # The writer thread is stuck inside the store: every submit still returns, the queue takes queue_size.
    accepted = sum(writer.submit(_record(i)) for i in range(1, 5001))
    assert accepted == 1000 and writer.dropped == 4000
    store.release.set()
    assert writer.close(timeout=5)
    assert len(store.records) == 1001


def test_full_queue_drops_and_counts_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    store, sink = StuckStore(), Sink()
    writer = AuditWriter(store, queue_size=100, batch=10, flush_interval=0.01, sink=sink)
    writer.submit(_record(0))
    assert store.entered.wait(5), "the writer thread never took record 0"
    with caplog.at_level(logging.WARNING, logger="dragoman.audit"):
        results = [writer.submit(_record(i)) for i in range(1, 301)]
    assert results.count(True) == 100 and results.count(False) == 200
    assert writer.dropped == 200 and sink.dropped == 200
    drop_logs = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drop_logs) == 1, "drops are logged, rate-limited"
    store.release.set()
    writer.close(timeout=2)


def test_store_down_then_back_loses_nothing_within_the_bound() -> None:
    store, sink = MemoryStore(), Sink()
    store.failing = True
    writer = AuditWriter(store, queue_size=1000, batch=50, flush_interval=0.01, sink=sink)
    for i in range(300):
        writer.submit(_record(i))
    wait_for(lambda: store.attempts >= 2, 5, "a retry of the failed batch")
    assert not store.records  # retried, nothing written yet
    store.failing = False
    assert writer.close(timeout=10)
    assert sorted(r.request_id for r in store.records) == [f"req_{i:05d}" for i in range(300)]
    assert writer.dropped == 0


def test_store_down_for_good_bounds_the_backlog_and_counts_every_loss() -> None:
    store, sink = MemoryStore(), Sink()
    store.failing = True
    # batch=1: every submit wakes the thread, so each round below is drained without waiting on its backoff.
    writer = AuditWriter(store, queue_size=100, batch=1, flush_interval=0.01, sink=sink)
    for start in range(0, 1000, 100):
        assert all(writer.submit(_record(i)) for i in range(start, start + 100))
        # The thread drains the queue into its retry buffer (it reports each record as it does).
        wait_for(lambda: len(sink.observed) == start + 100, 5, "the thread to drain the queue")
        assert writer.depth <= 200  # queue_size in the queue + queue_size in the retry buffer
    assert writer.close(timeout=0.5) is False  # the store never came back: close gives up at its timeout
    assert writer.written == 0
    assert writer.dropped == 1000 and sink.dropped == 1000  # every record is accounted for
    assert store.closed


def test_submit_after_close_is_dropped_and_counted() -> None:
    writer = AuditWriter(MemoryStore(), flush_interval=0.01)
    writer.close()
    assert writer.submit(_record(1)) is False
    assert writer.dropped == 1
    assert writer.close() is True  # idempotent


class StuckThenClosedStore(StuckStore):
    """A StuckStore that logs its calls in order, and sets `closed_event` when closed."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.closed_event = threading.Event()

    def write(self, records: Sequence[AuditRecord]) -> None:
        self.calls.append("write")
        super().write(records)

    def close(self) -> None:
        self.calls.append("close")
        super().close()
        self.closed_event.set()


@pytest.mark.parametrize("call_fails", [False, True])
def test_close_past_a_hung_store_call_counts_each_record_once_and_closes_the_store_after_it(call_fails: bool) -> None:
    store, sink = StuckThenClosedStore(), Sink()
    writer = AuditWriter(store, batch=100, flush_interval=0.01, sink=sink)
    writer.submit(_record(0))
    assert store.entered.wait(5), "the writer thread never reached the store"
    for i in range(1, 10):
        assert writer.submit(_record(i))
    assert writer.close(timeout=0.05) is False  # the call outlasted close: nothing is known lost yet
    assert not store.closed  # the thread is inside it: the store is closed after, by the thread
    store.failing = call_fails
    store.release.set()
    assert store.closed_event.wait(10), "the abandoned thread never closed the store"
    assert store.calls == ["write", "close"]  # no store call after close gave up, none after the store's close
    written = 0 if call_fails else 1
    assert (writer.written, len(store.records)) == (written, written)
    assert writer.dropped == sink.dropped == 10 - written  # every record counted once: written or dropped


def test_the_default_close_outlasts_sqlites_busy_timeout(tmp_path) -> None:
    import inspect

    from dragoman.observe.runtime import Observability
    from dragoman.observe.store_sqlite import SQLiteStore

    busy_seconds = SQLiteStore(str(tmp_path / "a.db")).busy_timeout_ms / 1000
    for close in (AuditWriter.close, AuditWriter.aclose, Observability.close, Observability.aclose):
        assert inspect.signature(close).parameters["timeout"].default > busy_seconds, close
