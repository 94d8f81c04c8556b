"""`Assessor`: the verdict of every finished call and the next-turn join, run in the audit writer's thread.

The gateway builds one, hands `assess` and `pending` to Observability (observe cannot import the loop), and
`attach`es the store and metrics once they exist. For each record the writer drains, before pricing, redaction
and the write:

1. the checks (loop/checks.py) set tool_calls / verdict / verdict_kinds / verdict_detail from its evidence;
2. the tool_results of its request's last message are joined to the calls that produced their ids — this
   process's memory first, then the store's `tool_calls` table (other workers, other instances), and ids found in
   neither wait up to `join_wait` seconds for another worker's batch; a join updates the earlier record's
   `next_turn` column in the same transaction as the batch, and refusals and failures go to every sink;
3. its own tool_use ids are remembered (memory, and rows written with the record);
4. every sink gets the record.

Late signals from other threads (`report_late`, e.g. the judge on the event loop) queue in a deque and are handled
here too, so sinks are only ever called from this one thread."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from dragoman.config.loop import VerdictSettings
from dragoman.loop import verdict as V
from dragoman.loop.checks import SchemaCache, check
from dragoman.loop.evidence import Evidence
from dragoman.loop.next_turn import STRENGTH, ToolCallMemory, stronger, tool_results, weaker_than
from dragoman.loop.verdict import LateSignal, VerdictSink
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, Followups, SignalUpdate, ToolCallRow
from dragoman.redaction import redact

log = logging.getLogger("dragoman.loop")

WAITING_LIMIT = 2_000  # tool_result ids waiting for another worker's rows, at most
# A waiting id is looked up again after 0.25 s, then 0.5 s, 1 s, … (doubling) until join_wait: a few look-ups
# each, so ids that are no one's (another gateway's calls) cost little.
_FIRST_RETRY = 0.25
_PRUNE_EVERY = 3600.0  # seconds between two prunes of the store's tool_calls table
_JUDGE = {V.JUDGE_FAIL: "fail", "judge_pass": "pass"}


class _Waiting:
    __slots__ = ("tool_use_id", "outcome", "text", "deadline", "next_try", "delay")

    def __init__(self, tool_use_id: str, outcome: str, text: str, now: float, wait: float) -> None:
        self.tool_use_id, self.outcome, self.text = tool_use_id, outcome, text
        self.deadline, self.next_try, self.delay = now + wait, now + _FIRST_RETRY, _FIRST_RETRY


class Assessor:
    """Verdicts, next-turn attribution and late signals for one gateway process."""

    def __init__(self, settings: VerdictSettings | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or VerdictSettings()
        self.schemas = SchemaCache(self.settings.schema_cache)
        self.memory = ToolCallMemory(self.settings.memory)
        self.store: AuditStore | None = None
        self.metrics: Any = None  # observe.metrics.Metrics (observe_verdict, observe_late_signal), when on
        self._sinks: list[VerdictSink] = []
        self._late: collections.deque[LateSignal] = collections.deque()  # appended from any thread
        self._waiting: collections.OrderedDict[str, _Waiting] = collections.OrderedDict()
        self._clock = clock
        self._next_prune = clock() + _PRUNE_EVERY

    def attach(self, store: AuditStore | None, metrics: Any = None) -> None:
        """The store the join reads from and the metrics verdicts are counted in (after Observability.start)."""
        self.store, self.metrics = store, metrics

    def add_sink(self, sink: VerdictSink) -> None:
        """Register a consumer of verdicts and late signals (call before serving)."""
        self._sinks.append(sink)

    def report_late(self, signal: LateSignal) -> None:
        """Something learned about an earlier call, from any thread; handled in the writer's thread."""
        self._late.append(signal)

    # ---- the writer thread -----------------------------------------------------------------------------

    def assess(self, record: AuditRecord, evidence: Evidence | None) -> Followups | None:
        """Judge one record (its verdict fields are set in place); what to write beside it."""
        if evidence is None:
            return None
        out = Followups()
        found = check(evidence, record.notes, self.schemas)
        record.tool_calls = len(found.tool_calls)
        record.verdict, record.verdict_kinds, record.verdict_detail = found.verdict, found.kinds, found.detail
        if self.metrics is not None and found.verdict is not None:
            self.metrics.observe_verdict(record.route, record.upstream_model, found.verdict,
                                         found.kinds[0] if found.kinds else "none")
        results = tool_results(evidence.answers)
        if results:
            self._join(results, out)
        rows = [ToolCallRow(call.id, record.request_id, record.time, record.route, record.upstream_model,
                            record.shape, record.prompt_variant, record.config_version, call.name)
                for call in found.tool_calls if call.id] if found.tool_calls else None
        if rows:
            self.memory.remember(rows)
            if self.store is not None:
                out.tool_calls += rows
        for sink in self._sinks:
            _call(sink.verdict, record)
        return out if out.tool_calls or out.signals else None

    def pending(self) -> Followups | None:
        """Late signals reported meanwhile, joins waiting for the store, the periodic prune (the writer calls it
        once per drain, before the records)."""
        out: Followups | None = None
        late = self._late
        while late:
            out = out or Followups()
            self._late_signal(late.popleft(), out)
        now = self._clock()
        if self._waiting:
            out = self._retry_waiting(now, out)
        if now >= self._next_prune and self.store is not None:
            self._next_prune = now + _PRUNE_EVERY
            out = out or Followups()
            out.prune_before = now - self.settings.retention_hours * 3600
        return out

    def _join(self, results: list[tuple[str, str | None, str]], out: Followups) -> None:
        outcomes = {tool_use_id: (outcome, text) for tool_use_id, outcome, text in results if outcome is not None}
        if not outcomes:
            return
        found, missing = self.memory.take(list(outcomes))
        missing = [tool_use_id for tool_use_id in missing if tool_use_id not in self._waiting]  # retried anyway
        if missing and self.store is not None:
            found += self._from_store(missing)
            known = {row.tool_use_id for row in found}
            now = self._clock()
            for tool_use_id in missing:
                if tool_use_id not in known:
                    self._wait(_Waiting(tool_use_id, *outcomes[tool_use_id], now, self.settings.join_wait))
        self._attribute([(row, *outcomes[row.tool_use_id]) for row in found], out)

    def _retry_waiting(self, now: float, out: Followups | None) -> Followups | None:
        waiting = self._waiting
        for tool_use_id in [k for k, w in waiting.items() if w.deadline <= now]:
            del waiting[tool_use_id]  # never ours, or its worker's batch was lost: give up
        due = [w for w in waiting.values() if w.next_try <= now]
        if not due:
            return out
        for w in due:
            w.delay *= 2
            w.next_try = now + w.delay
        rows = self._from_store([w.tool_use_id for w in due])
        if rows:
            out = out or Followups()
            self._attribute([(row, waiting[row.tool_use_id].outcome, waiting.pop(row.tool_use_id).text)
                             for row in rows], out)
        return out

    def _from_store(self, ids: list[str]) -> list[ToolCallRow]:
        assert self.store is not None
        rows: list[ToolCallRow] = []
        try:
            for at in range(0, len(ids), 500):
                rows += self.store.find_tool_calls(ids[at : at + 500])
        except Exception as exc:  # noqa: BLE001 - a store hiccup costs a join, never a record
            log.warning("tool-call memory: store look-up failed (%s)", type(exc).__name__)
        return rows

    def _wait(self, waiting: _Waiting) -> None:
        self._waiting[waiting.tool_use_id] = waiting
        while len(self._waiting) > WAITING_LIMIT:
            self._waiting.popitem(last=False)

    def _attribute(self, joined: list[tuple[ToolCallRow, str, str]], out: Followups) -> None:
        """Set each earlier record's next_turn to the strongest outcome of its calls; tell the sinks."""
        by_request: dict[str, str | None] = {}
        self.memory.answered(row.tool_use_id for row, _, _ in joined)
        for row, outcome, text in joined:
            by_request[row.request_id] = stronger(by_request.get(row.request_id), outcome)
            if outcome in (V.CLIENT_REFUSED, V.EXECUTION_FAILED):
                signal = LateSignal(request_id=row.request_id, kind=outcome, time=self._clock(), route=row.route,
                                    model=row.model, shape=row.shape, prompt_variant=row.prompt_variant,
                                    config_version=row.config_version, tool_name=row.tool_name,
                                    detail=redact(text[:200]) or None)
                self._tell(signal)
        for request_id, outcome in by_request.items():
            if outcome is not None:
                out.signals.append(SignalUpdate(request_id, "next_turn", outcome, weaker_than(outcome)))

    def _late_signal(self, signal: LateSignal, out: Followups) -> None:
        if signal.kind in _JUDGE:
            out.signals.append(SignalUpdate(signal.request_id, "judge", _JUDGE[signal.kind]))
        elif signal.kind in STRENGTH:
            out.signals.append(SignalUpdate(signal.request_id, "next_turn", signal.kind, weaker_than(signal.kind)))
        self._tell(signal)

    def _tell(self, signal: LateSignal) -> None:
        if self.metrics is not None:
            self.metrics.observe_late_signal(signal.route, signal.model, signal.kind)
        for sink in self._sinks:
            _call(sink.late_signal, signal)


def _call(fn: Callable[[Any], None], arg: Any) -> None:
    try:
        fn(arg)
    except Exception:  # noqa: BLE001 - one sink's bug must not cost the others or the record
        log.exception("a verdict sink failed (%s)", getattr(fn, "__qualname__", fn))
