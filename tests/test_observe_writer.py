"""The audit writer: submit never blocks, the backlog is bounded, drops are counted, close() flushes all."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import pytest

from dragoman.observe.pricing import Pricer, Pricing
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import open_store
from dragoman.observe.writer import AuditWriter


def _record(i: int, **fields) -> AuditRecord:
    base = {"route": "r", "upstream_model": "gpt-5", "input_tokens": 1000, "output_tokens": 100}
    return AuditRecord(time=1_795_000_000.0 + i, request_id=f"req_{i:05d}", **{**base, **fields})


class MemoryStore:
    """A store that keeps batches in memory; `delay` slows every write, `failing` makes writes raise."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.failing = False
        self.batches: list[list[AuditRecord]] = []
        self.attempts = 0
        self.closed = False

    def write(self, records: Sequence[AuditRecord]) -> None:
        self.attempts += 1
        if self.delay:
            time.sleep(self.delay)
        if self.failing:
            raise ConnectionError("store down: password=hunter2hunter2")
        self.batches.append(list(records))

    def close(self) -> None:
        self.closed = True

    @property
    def records(self) -> list[AuditRecord]:
        return [r for batch in self.batches for r in batch]


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


def test_records_are_written_within_the_flush_interval() -> None:
    store = MemoryStore()
    writer = AuditWriter(store, batch=256, flush_interval=0.05)
    writer.submit(_record(1))
    deadline = time.monotonic() + 2
    while not store.records and time.monotonic() < deadline:
        time.sleep(0.01)
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


def test_submit_is_fast_and_never_blocks_on_a_slow_store() -> None:
    store = MemoryStore(delay=0.5)  # every batch takes half a second
    writer = AuditWriter(store, queue_size=1000, batch=10, flush_interval=0.01)
    started = time.perf_counter()
    accepted = sum(writer.submit(_record(i)) for i in range(5000))
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"5000 submits took {elapsed:.3f}s against a slow store"
    assert accepted >= 1000  # queue bound; the thread may have drained some meanwhile
    writer.close(timeout=0.1)


def test_full_queue_drops_and_counts_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    store, sink = MemoryStore(), Sink()
    gate = threading.Event()
    store.write = lambda records: gate.wait()  # type: ignore[method-assign]  # the writer hangs in the store
    writer = AuditWriter(store, queue_size=100, batch=10, flush_interval=0.01, sink=sink)
    writer.submit(_record(0))
    time.sleep(0.1)  # the thread takes record 0 and blocks writing it
    with caplog.at_level(logging.WARNING, logger="dragoman.audit"):
        results = [writer.submit(_record(i)) for i in range(1, 301)]
    assert results.count(True) == 100 and results.count(False) == 200
    assert writer.dropped == 200 and sink.dropped == 200
    drop_logs = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drop_logs) == 1, "drops are logged, rate-limited"
    gate.set()
    writer.close(timeout=2)


def test_store_down_then_back_loses_nothing_within_the_bound() -> None:
    store, sink = MemoryStore(), Sink()
    store.failing = True
    writer = AuditWriter(store, queue_size=1000, batch=50, flush_interval=0.01, sink=sink)
    for i in range(300):
        writer.submit(_record(i))
    time.sleep(0.4)
    assert store.attempts >= 2 and not store.records  # retried with backoff, nothing written yet
    store.failing = False
    assert writer.close(timeout=10)
    assert sorted(r.request_id for r in store.records) == [f"req_{i:05d}" for i in range(300)]
    assert writer.dropped == 0


def test_store_down_for_good_bounds_the_backlog_and_counts_every_loss() -> None:
    store, sink = MemoryStore(), Sink()
    store.failing = True
    writer = AuditWriter(store, queue_size=100, batch=10, flush_interval=0.01, sink=sink)
    for i in range(1000):
        writer.submit(_record(i))
        if i % 100 == 0:
            time.sleep(0.02)  # let the thread drain the queue into its (bounded) retry buffer
    assert writer.depth <= 200  # queue_size in the queue + queue_size in the retry buffer
    started = time.monotonic()
    assert writer.close(timeout=0.5) is False
    assert time.monotonic() - started < 3
    assert writer.written == 0
    assert writer.dropped == 1000 and sink.dropped == 1000  # every record is accounted for
    assert store.closed


def test_submit_after_close_is_dropped_and_counted() -> None:
    writer = AuditWriter(MemoryStore(), flush_interval=0.01)
    writer.close()
    assert writer.submit(_record(1)) is False
    assert writer.dropped == 1
    assert writer.close() is True  # idempotent
