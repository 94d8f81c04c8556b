"""`Observability`: the store, writer, metrics and tracer of one gateway process, built from settings.

The server holds one: `start()` in its lifespan startup, `record(...)` once per finished request,
`aclose()` in its lifespan shutdown (uvicorn runs it on SIGTERM once in-flight requests are done).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dragoman.config.observe import ObserveSettings
from dragoman.observe.metrics import Metrics
from dragoman.config.model import Pricing
from dragoman.observe.pricing import Pricer
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, open_store
from dragoman.observe.tracing import NOOP_TRACER, NoopTracer, Tracer
from dragoman.observe.writer import CLOSE_TIMEOUT, AssessHook, AuditWriter, PendingHook

log = logging.getLogger("dragoman.observe")


class Observability:
    """Everything observe/ runs in a gateway process. Cheap to build; `start()` opens the store."""

    def __init__(
        self,
        settings: ObserveSettings | None = None,
        pricing: Mapping[str, Pricing] | None = None,
        *,
        span_exporter: Any = None,
        assess: AssessHook | None = None,
        assess_pending: PendingHook | None = None,
    ) -> None:
        self.settings = (settings or ObserveSettings()).with_env()
        self.pricer = Pricer(pricing)
        self.metrics: Metrics | None = Metrics() if self.settings.metrics.enabled else None
        self.tracer: Tracer | NoopTracer = NOOP_TRACER
        self._span_exporter = span_exporter
        self._assess = assess  # the correctness loop's hooks (dragoman.loop.assess), run in the writer thread
        self._assess_pending = assess_pending
        self.store: AuditStore | None = None
        self.writer: AuditWriter | None = None

    def start(self) -> None:
        """Open and migrate the store, start the writer thread and the tracer. Blocking: run it once at startup
        (`await loop.run_in_executor(None, observe.start)`). A store that can't open stops the start."""
        self.tracer = Tracer.from_settings(self.settings.tracing, self._span_exporter)
        audit = self.settings.audit
        if not audit.enabled:
            return
        self.store = open_store(audit.store)
        self.writer = AuditWriter(
            self.store, audit.queue_size, audit.batch, audit.flush_interval, pricer=self.pricer, sink=self.metrics,
            assess=self._assess, assess_pending=self._assess_pending,
        )

    def record(self, record: AuditRecord, examined: Any = None) -> None:
        """Hand a finished request's record to the writer (O(1), never blocks), with what the correctness loop
        examined of the call when the loop is on. Metrics are updated from it in the writer thread; with auditing
        off, right here (and the loop has no thread to attribute calls in: verdicts need the audit writer)."""
        if self.writer is not None:
            self.writer.submit(record, examined)
        elif self.metrics is not None:
            if record.cost_usd is None:
                record.cost_usd = self.pricer.price(record)
            self.metrics.observe_request(record)
            self.metrics.flush()

    def close(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Flush every queued record, close the store, flush spans. True when no record was lost."""
        ok = True
        if self.writer is not None:
            ok = self.writer.close(timeout)
        self.tracer.shutdown()
        return ok

    async def aclose(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, self.close, timeout)
