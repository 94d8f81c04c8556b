"""The audit writer: `submit()` on the event loop is one length check and a deque append; a background thread
prices, redacts, counts (metrics) and writes records to the store in batches.

Bounds, so a slow or dead store never slows a request: at most `queue_size` records wait in the queue and at
most `queue_size` more in the thread's retry buffer. Beyond either bound a record is dropped, counted
(`dropped`, exported as dragoman_audit_dropped_total) and logged at most once per `_LOG_EVERY` seconds.
A failed batch is retried with exponential backoff (0.1 s doubling to 5 s) until it is written or pushed out.

`close(timeout)` stops accepting, then writes everything queued: the server calls it from its lifespan
shutdown, which uvicorn runs on SIGTERM after in-flight requests finish, so SIGTERM loses no record. A store call
still running at the timeout is abandoned, not raced: the thread makes no further store call, counts what it still
holds once that call returns (its batch written or dropped, each record once), and closes the store itself.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from dragoman.observe.pricing import Pricer
from dragoman.observe.record import AuditRecord, redact
from dragoman.observe.stores import AuditStore, Followups

log = logging.getLogger("dragoman.audit")

_LOG_EVERY = 10.0  # seconds between two "records dropped" log lines
_BACKOFF_START = 0.1
_BACKOFF_MAX = 5.0
# close()'s default: longer than SQLite's busy_timeout (10 s, store_sqlite.py), so a batch that waits out another
# process's write lock and fails can still be retried and written before close gives up on it.
CLOSE_TIMEOUT = 15.0


class AuditSink(Protocol):
    """What the writer reports to (metrics.Metrics satisfies it); all calls come from the writer thread,
    except audit_dropped on a full queue, which comes from submit()."""

    def observe_request(self, record: AuditRecord) -> None: ...

    def audit_dropped(self, count: int) -> None: ...

    def audit_queue_depth(self, depth: int) -> None: ...

    def flush(self) -> None: ...


class NullSink:
    """An AuditSink that counts nothing: the writer's default, and a base for sinks that count only some things."""

    def observe_request(self, record: AuditRecord) -> None:
        pass

    def audit_dropped(self, count: int) -> None:
        pass

    def audit_queue_depth(self, depth: int) -> None:
        pass

    def flush(self) -> None:
        pass


# The correctness loop's hooks (dragoman.loop.assess.Assessor; observe does not import the loop): `assess` takes a
# drain's records, each with what the loop examined of its call (submitted beside it), in queue order, before any of
# them is priced, redacted and written, and returns what to write beside each (one entry per record); `assess_pending`
# handles what arrived meanwhile (late signals, joins waiting for another worker's rows).
AssessHook = Callable[[list[tuple[AuditRecord, Any]]], "list[Followups | None]"]
PendingHook = Callable[[], "Followups | None"]


class AuditWriter:
    """Batches AuditRecords into a store from one background thread. Thread-safe submit(); idempotent close()."""

    def __init__(
        self,
        store: AuditStore,
        queue_size: int = 10_000,
        batch: int = 256,
        flush_interval: float = 0.5,
        *,
        pricer: Pricer | None = None,
        sink: AuditSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        assess: AssessHook | None = None,
        assess_pending: PendingHook | None = None,
    ) -> None:
        self.store = store
        self.queue_size = queue_size
        self.batch = batch
        self.flush_interval = flush_interval
        self.pricer = pricer or Pricer()
        self.sink: AuditSink = sink or NullSink()
        self.dropped = 0  # records lost: queue full, retry buffer full, or unwritten at close
        self.written = 0
        self._clock = clock
        self._assess = assess
        self._assess_pending = assess_pending
        # deque.append/popleft are atomic under the GIL: no lock on the hot path. Items: (record, examined).
        self._queue: collections.deque[tuple[AuditRecord, Any]] = collections.deque()
        # Drained, not yet written: (record, follow-ups), or (None, follow-ups) for follow-ups of no record.
        self._pending: collections.deque[tuple[AuditRecord | None, Followups | None]] = collections.deque()
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        # close() gave up on a thread still inside a store call: it calls the store no more, and (not close) counts
        # what it holds and closes the store. `_finished` and `_abandoned` change under `_handover`: one of the two
        # does the accounting and the store's close, never both, never neither.
        self._abandoned = False
        self._finished = False
        self._handover = threading.Lock()
        self._close_deadline = float("inf")
        self._last_drop_log = float("-inf")
        self._unlogged_drops = 0
        self._thread = threading.Thread(target=self._run, name="dragoman-audit-writer", daemon=True)
        self._thread.start()

    # ---- event loop side -------------------------------------------------------------------------------

    def submit(self, record: AuditRecord, examined: Any = None) -> bool:
        """Queue a record (with what the loop examined of the call, if any); never blocks. False when it was dropped
        (queue full or writer closed)."""
        queue = self._queue
        if self._closing or len(queue) >= self.queue_size:
            self._drop(1, "the audit queue is full" if not self._closing else "the audit writer is closed")
            return False
        queue.append((record, examined))
        if len(queue) >= self.batch:
            self._wake.set()
        return True

    @property
    def depth(self) -> int:
        """Records accepted and not yet written."""
        return len(self._queue) + len(self._pending)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Stop accepting, write everything queued (retrying a failing store until `timeout`), close the store.
        True when nothing was lost. Safe to call twice and from any thread."""
        if self._closed:
            return True
        self._closing = True
        self._close_deadline = self._clock() + timeout
        self._wake.set()
        self._thread.join(timeout + 1.0)
        self._closed = True
        with self._handover:
            self._abandoned = not self._finished
        if self._abandoned:
            log.warning("audit: a store call outlasted the %.0fs shutdown timeout; %d record(s) not written yet, "
                        "counted as dropped unless that call writes them", timeout, self._records_left())
            return False
        left, unwritten = self._records_left(), self.depth
        self._queue.clear()
        self._pending.clear()
        if left:
            self._drop(left, "the store did not take them before shutdown", force_log=True)
        self._close_store()
        return unwritten == 0

    async def aclose(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """close() from a thread, so the event loop keeps serving while the last batches are written."""
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, self.close, timeout)

    # ---- writer thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            with self._handover:
                self._finished = True
                abandoned = self._abandoned
            if abandoned:
                self._give_up()

    def _serve(self) -> None:
        backoff = 0.0
        while not self._abandoned:
            if not self._closing:
                self._wake.wait(backoff or self.flush_interval)
                self._wake.clear()
            self._drain()
            self.sink.flush()  # the drained records' counter increments, in one go
            backoff = self._write_pending(backoff)
            self.sink.audit_queue_depth(self.depth)
            if self._closing and not self._queue and (not self._pending or self._clock() >= self._close_deadline):
                return
            if self._closing and backoff:
                time.sleep(min(backoff, max(0.0, self._close_deadline - self._clock())))

    def _drain(self) -> None:
        """Move queued records to the retry buffer, preparing each once (the loop's join, cost, secrets, metrics)."""
        queue, pending = self._queue, self._pending
        if self._abandoned:
            return  # the loop's hooks call the store
        if self._assess_pending is not None:
            waiting = self._followups(self._assess_pending)
            if waiting is not None:
                pending.append((None, waiting))
        drained = [queue.popleft() for _ in range(len(queue))]  # what is queued now; later ones wait their turn
        # The loop's work for the whole drain first, then pricing, redaction and metrics for the whole drain: each
        # phase's code and data stay warm from one record to the next. Measured (bench/thread_cpu.py, tools, c=32):
        # the writer's CPU per tool-calling record 81 -> 72 µs, 8 interleaved runs, against one record at a time.
        followups: list[Followups | None] = [None] * len(drained)
        if self._assess is not None and drained:
            try:
                assessed = self._assess(drained)
                if len(assessed) != len(drained):
                    raise ValueError(f"{len(assessed)} follow-ups for {len(drained)} records")
                followups = assessed
            except Exception:  # noqa: BLE001 - the loop must never cost a record
                log.exception("the correctness loop failed on a drain of %d audit records", len(drained))
        for (record, _), followup in zip(drained, followups):
            try:
                self._prepare(record)
            except Exception:
                log.exception("audit record %s could not be prepared", getattr(record, "request_id", "?"))
                continue
            pending.append((record, followup))
        overflow = len(pending) - self.queue_size
        if overflow > 0:
            lost = 0  # records only: a follow-up of no record is not one
            for _ in range(overflow):
                # Oldest first: the newest records are the ones an operator looks for.
                record, _followups = pending.popleft()
                lost += record is not None
            if lost:
                self._drop(lost, "the audit store is not keeping up")

    @staticmethod
    def _followups(hook: PendingHook) -> Followups | None:
        try:
            return hook()
        except Exception:  # noqa: BLE001 - the loop must never cost a record
            log.exception("the correctness loop failed on its pending work")
            return None

    def _prepare(self, record: AuditRecord) -> None:
        if record.cost_usd is None:
            record.cost_usd = self.pricer.price(record)
        record.redacted()
        self.sink.observe_request(record)

    def _write_pending(self, backoff: float) -> float:
        """Write the retry buffer batch by batch; returns the next backoff (0 when all written)."""
        pending = self._pending
        while pending and not self._abandoned:
            batch = [pending[i] for i in range(min(self.batch, len(pending)))]
            records = [record for record, _ in batch if record is not None]
            followups = _merged(f for _, f in batch)
            try:
                if followups is None:
                    self.store.write(records)
                else:
                    self.store.write(records, followups)
            except Exception as exc:  # noqa: BLE001 - any store failure: keep the batch, back off, retry
                backoff = min(_BACKOFF_MAX, backoff * 2 if backoff else _BACKOFF_START)
                self._log_store_failure(exc, backoff)
                return backoff
            for _ in range(min(len(batch), len(pending))):
                pending.popleft()
            self.written += len(records)
            if self._queue and len(self._queue) >= self.batch:
                self._drain()
        return 0.0

    def _give_up(self) -> None:
        """After close() abandoned this thread: what it still holds is lost (the batch whose call outlasted close
        was counted by how that call ended: written, or still here); then the store's close, left to this thread."""
        left = self._records_left()
        self._queue.clear()
        self._pending.clear()
        if left:
            self._drop(left, "a store call outlasted shutdown", force_log=True)
        self._close_store()

    def _close_store(self) -> None:
        try:
            self.store.close()
        except Exception:
            log.exception("closing the audit store failed")

    # ---- accounting ------------------------------------------------------------------------------------

    def _records_left(self) -> int:
        """Records accepted and neither written nor dropped (`depth` also counts follow-ups of no record)."""
        return len(self._queue) + sum(1 for record, _ in self._pending if record is not None)

    def _drop(self, count: int, why: str, *, force_log: bool = False) -> None:
        self.dropped += count  # += on an int is not atomic across threads; the count may be off by a race, never lost
        self._unlogged_drops += count
        try:
            self.sink.audit_dropped(count)
        except Exception:  # noqa: BLE001 - metrics must not fail a request
            pass
        now = self._clock()
        if force_log or now - self._last_drop_log >= _LOG_EVERY:
            self._last_drop_log = now
            n, self._unlogged_drops = self._unlogged_drops, 0
            log.warning("audit: dropped %d record(s): %s (%d dropped since start)", n, why, self.dropped)

    _last_failure_log = float("-inf")

    def _log_store_failure(self, exc: Exception, backoff: float) -> None:
        now = self._clock()
        if now - self._last_failure_log >= _LOG_EVERY:
            self._last_failure_log = now
            log.warning("audit store write failed (%s: %s); retrying in %.1fs, %d record(s) waiting",
                        type(exc).__name__, redact(str(exc)), backoff, self.depth)


def _merged(followups: Any) -> Followups | None:
    out: Followups | None = None
    for f in followups:
        if f is None or (not f.tool_calls and not f.signals and f.prune_before is None):
            continue
        if out is None:
            out = Followups()
        out.extend(f)
    return out


def stats(writer: AuditWriter) -> dict[str, Any]:
    """The writer's counters, for /healthz-style reporting."""
    return {"written": writer.written, "dropped": writer.dropped, "depth": writer.depth}
