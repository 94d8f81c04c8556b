"""`Assessor`: the verdict of every finished call and the next-turn join.

The gateway builds one, hands `assess` and `pending` to Observability (observe cannot import the loop), and
`attach`es the store and metrics once they exist.

On the event loop, once the client has the answer's last byte, `examine` runs the checks (loop/checks.py) on the
call's evidence and sets the record's tool_calls / verdict / verdict_kinds / verdict_detail; what the writer still
needs — what the tool_results its request carried say (`Answered`) and the answer's tool calls as the memory keeps
them (`Remembered`, built here from the record at hand) — is an `Examined`. (Why there: loop/evidence.py; an
examination never raises into the request.)

In the audit writer's thread, for each record of a drain, in queue order and before any of the drain's records is
priced, redacted, counted in metrics (which count the verdict) and written, `assess`:

1. joins the tool_results to the calls that produced their ids — this process's memory first, then, when the
   process shares its store (below), the store's `tool_calls` table (other workers, other instances), and ids
   found in neither wait up to `join_wait` seconds for another worker's batch; a join updates the earlier
   record's `next_turn` column in the same transaction as the batch (or, when the earlier record is in the same
   drain and so not written yet, sets it on the record: one insert, no update), and refusals and failures go to
   every sink;
2. remembers the answer's tool_use ids: in memory, and, when the process shares its store, as rows written with
   the record;
3. gives every sink the record.

A process shares its store when another process may receive the next turn: a worker of `--workers N`, or any
process on PostgreSQL (other instances). A lone process on SQLite answers every next turn itself, so its memory
is the whole join: writing a row per tool call and looking up ids it never made would cost every tool-calling
record for nothing (bench/RESULTS.md, "The tool-calling loop").

Late signals from other threads (`report_late`, e.g. the judge on the event loop) queue in a deque and are handled
in the writer's thread too, so sinks are only ever called from that one thread."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from dragoman.config.loop import VerdictSettings
from dragoman.loop import verdict as V
from dragoman.loop.checks import SchemaCache, check
from dragoman.loop.evidence import Evidence
from dragoman.loop.next_turn import (OK, RANK, REPLACES, STRENGTH, UNKNOWN, Answered, Outcome, Remembered,
                                     ToolCallMemory)
from dragoman.loop.verdict import LateSignal, VerdictSink
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, Followups, SignalUpdate, ToolCallRow
from dragoman.redaction import redact_cut

log = logging.getLogger("dragoman.loop")

WAITING_LIMIT = 2_000  # tool_result ids waiting for another worker's rows, at most
WAIT_PER_REQUEST = 64  # ... of them from one request (a turn answers one answer: its ids come in or not together)
MAX_LOOKED_UP = 500  # a request's tool_result ids looked up in the store, at most: one query
# A waiting id is looked up again after 0.25 s, then 0.5 s, 1 s, … (doubling) until join_wait: a few look-ups
# each, so ids that are no one's (another gateway's calls) cost little.
_FIRST_RETRY = 0.25
_PRUNE_EVERY = 3600.0  # seconds between two prunes of the store's tool_calls table
_JUDGE = {V.JUDGE_FAIL: "fail", "judge_pass": "pass"}


class Examined(msgspec.Struct, gc=False):
    """What the writer needs of an examined call: what the tool_results its request's last turn carried say, and its
    answer's tool calls as the memory keeps them (None: none)."""

    answered: Answered | None = None
    answer: Remembered | None = None


_NOTHING_TO_JOIN = Examined()  # shared, never changed: a call that answers no tool call and makes none


class _Waiting:
    __slots__ = ("tool_use_id", "outcome", "text", "deadline", "next_try", "delay", "key_id")

    def __init__(self, tool_use_id: str, outcome: str, text: str, now: float, wait: float,
                 key_id: str | None) -> None:
        self.tool_use_id, self.outcome, self.text, self.key_id = tool_use_id, outcome, text, key_id
        self.deadline, self.next_try, self.delay = now + wait, now + _FIRST_RETRY, _FIRST_RETRY


class Assessor:
    """Verdicts, next-turn attribution and late signals for one gateway process."""

    def __init__(self, settings: VerdictSettings | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or VerdictSettings()
        self.schemas = SchemaCache(self.settings.schema_cache)
        self.memory = ToolCallMemory(self.settings.memory)
        self.store: AuditStore | None = None
        self.shared: AuditStore | None = None  # the store, when other processes join through it (attach)
        self.metrics: Any = None  # observe.metrics.Metrics (observe_late_signal), when on; verdicts are counted
        # with the rest of the record (Metrics.observe_request)
        self._sinks: list[VerdictSink] = []
        self._late: collections.deque[LateSignal] = collections.deque()  # appended from any thread
        self._unscored: list[AuditRecord] = []  # a drain's verdicts the sinks have not had yet (writer thread)
        # The drain's records that made tool calls, by request id, while it is assessed: not written yet, so a join
        # to one of them sets its next_turn in place (assess_drain).
        self._drained: dict[str, AuditRecord] = {}
        self._scratch = Followups()  # the next record's follow-ups, while it has none (`_followups`)
        # Results waiting for another worker's rows, by (client key, tool_use id): one client's waiting id is not
        # another's.
        self._waiting: dict[tuple[str | None, str], _Waiting] = {}
        self._clock = clock
        self._next_prune = clock() + _PRUNE_EVERY
        self._next_failure_log = float("-inf")

    def attach(self, store: AuditStore | None, metrics: Any = None, *, shared: bool = True) -> None:
        """The store (after Observability.start), whether other processes join through it (`shared`: tool-call
        rows are written to it and looked up in it), and the metrics verdicts are counted in."""
        self.store, self.metrics = store, metrics
        self.shared = store if shared else None

    def add_sink(self, sink: VerdictSink) -> None:
        """Register a consumer of verdicts and late signals (call before serving)."""
        self._sinks.append(sink)

    def report_late(self, signal: LateSignal) -> None:
        """Something learned about an earlier call, from any thread; handled in the writer's thread."""
        self._late.append(signal)

    # ---- the event loop ----------------------------------------------------------------------------------

    def examine(self, record: AuditRecord, evidence: Evidence | None) -> Examined | None:
        """Judge one finished call (its record's verdict fields are set in place); what the writer needs of it.
        Never raises: a bug in the checks costs that call's verdict, not the request or its record."""
        if evidence is None:
            return None
        try:
            found = check(evidence, record.notes, self.schemas)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - the loop must never cost a request (a Rust panic is a BaseException)
            self._examine_failed(record)
            return None
        calls = found.tool_calls
        record.tool_calls = len(calls)
        record.verdict, record.verdict_kinds, record.verdict_detail = found.verdict, found.kinds, found.detail
        answer = None
        if calls:  # the answer's calls as the memory keeps them (inline: loop/checks.py `check` says why)
            ids = [call.id for call in calls]
            if all(ids):  # every call has its id, as every upstream's do
                names = [call.name for call in calls]
            else:
                ids, names = [c.id for c in calls if c.id], [c.name for c in calls if c.id]
            if ids:
                r = record
                answer = Remembered(r.request_id, r.time, r.route, r.upstream_model, r.shape, r.prompt_variant,
                                    r.config_version, ids, names, r.key_id)
        if answer is None and evidence.results is None:
            return _NOTHING_TO_JOIN
        return Examined(evidence.results, answer)

    def _examine_failed(self, record: AuditRecord) -> None:
        now = self._clock()
        if now >= self._next_failure_log:
            self._next_failure_log = now + 60.0
            log.exception("the correctness loop could not examine call %s (logged once a minute)",
                          record.request_id)

    # ---- the writer thread -----------------------------------------------------------------------------

    def assess(self, record: AuditRecord, examined: Examined | None) -> Followups | None:
        """`assess_drain` of one record."""
        return self.assess_drain([(record, examined)])[0]

    def assess_drain(self, items: list[tuple[AuditRecord, Examined | None]]) -> list[Followups | None]:
        """Join, remember and tell the sinks about each examined record of a drain, in order; what to write beside
        each. One call per drain, not per record, and the sinks get the drain's verdicts in one call too: the
        per-record calls, locks and decisions around this work cost as much as the work (bench/RESULTS.md,
        "Halving the loop's cost"). A failure costs that record's part of the loop, never the others or the record
        itself; a late signal reaches the sinks after the verdicts of the records before it."""
        out: list[Followups | None] = []
        unscored = self._unscored
        drained = self._drained = {}
        for record, examined in items:
            if examined is None:
                out.append(None)
                continue
            try:
                out.append(self._followups(record, examined))
            except Exception:  # noqa: BLE001 - the loop must never cost a record
                log.exception("the correctness loop failed on audit record %s", record.request_id)
                out.append(None)
            unscored.append(record)
            if examined.answer is not None:
                drained[record.request_id] = record
        self._drained = {}
        self._score_pending()
        return out

    def _score_pending(self) -> None:
        unscored = self._unscored
        if not unscored:
            return
        records = unscored[:]
        unscored.clear()
        for sink in self._sinks:
            _call(sink.verdicts, records)

    def _followups(self, record: AuditRecord, examined: Examined) -> Followups | None:
        # Into a Followups kept for the next record while it stays empty, as it nearly always does now that a join
        # to a record of the same drain sets its column in place (`_attribute_answer`).
        out = self._scratch
        answered, answer = examined.answered, examined.answer
        if answered is not None:
            self._join(answered, answer, out, record.key_id)
        elif answer is not None:
            self.memory.remember(answer)
        if answer is not None and self.shared is not None:
            out.tool_calls += answer.rows()
        if not out.tool_calls and not out.signals:
            return None
        self._scratch = Followups()
        return out

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

    def _join(self, answered: Answered, answer: Remembered | None, out: Followups, key_id: str | None) -> None:
        """The results' outcomes to the answer they answer: found in memory by its first call's id among theirs, or,
        when this process did not give it and shares its store, by each result's id in the store's tool_calls rows.
        Only calls given to the same client key (`key_id`) are joined. `answer`: this record's own calls,
        remembered under the same lock."""
        remembered = self.memory.take(answered.ids, answer, key_id)
        if remembered is None:
            return  # attributed already: a retried request
        if remembered is not UNKNOWN:
            self._attribute_answer(remembered, answered, out)
            return
        if self.shared is None:
            return
        waiting = self._waiting
        # A real turn answers one answer's calls; past MAX_LOOKED_UP results (made up) it costs the writer no more.
        missing = [result for result in answered.outcomes()[:MAX_LOOKED_UP]
                   if result[1] is not None and (key_id, result[0]) not in waiting]
        if not missing:
            return
        by_id = {row.tool_use_id: row for row in self._from_store([result[0] for result in missing])
                 if row.key_id == key_id}  # another key's call is not this client's to answer
        self.memory.answered(by_id)  # attributed now: a retry is not counted twice
        found = []
        now = self._clock()
        waits = 0
        for tool_use_id, outcome, text in missing:
            row = by_id.get(tool_use_id)
            if row is not None:
                found.append((row, outcome, text))
            elif waits < WAIT_PER_REQUEST:
                waits += self._wait(_Waiting(tool_use_id, outcome, text, now, self.settings.join_wait, key_id))
        if found:
            self._attribute(found, out)

    def _attribute_answer(self, remembered: Remembered, answered: Answered, out: Followups) -> None:
        """Set the answering record's next_turn to the strongest outcome of the results for its own calls, and tell
        the sinks of it once when it is a refusal or a failure: one signal per call (request), however many of
        its tool calls failed, and none for a result whose id the answer did not make (a client's made-up ids
        charge no one)."""
        others = answered.others
        if not others:  # every result a plain success (nearly every turn): one of them is the answer's, as found
            strongest, worst = OK, None
        else:
            strongest, worst = _strongest([result for result in answered.outcomes() if result[0] in remembered.ids])
        if strongest is None:
            return  # only people declining
        update = SignalUpdate(remembered.request_id, "next_turn", strongest, REPLACES[strongest])
        if not self._record(update, out):
            return
        if worst is not None:
            tool_use_id, outcome, text = worst
            self._tell(self._late_of(remembered.row(tool_use_id), outcome, text))

    def _record(self, update: SignalUpdate, out: Followups) -> bool:
        """Set the earlier record's next_turn: in place when it is in this drain (not written yet: its row goes in
        with the outcome, and the store runs no UPDATE for it, as for most of Claude Code's next turns, which come
        within the writer's flush interval), else by an UPDATE in the batch's transaction. A refusal or failure,
        when another process may join the same next turn (a client's retry reaching another worker), is claimed
        in the store now: it is told only by the process whose UPDATE changed the record. False: recorded
        already, tell no one."""
        earlier = self._drained.get(update.request_id)
        if earlier is not None:
            if earlier.next_turn is not None and earlier.next_turn not in update.replaces:
                return False
            earlier.next_turn = update.value
            return True
        if update.value != OK and self.shared is not None:
            claimed = self._claim(update)
            if claimed is not None:
                return claimed
        out.signals.append(update)  # "ok" (idempotent), a lone process (its memory answers once), or not written
        return True

    def _claim(self, update: SignalUpdate) -> bool | None:
        assert self.shared is not None
        try:
            return self.shared.claim_signal(update)
        except Exception as exc:  # noqa: BLE001 - a store hiccup must not cost the signal: it goes in the batch
            log.warning("next-turn join: store update failed (%s)", type(exc).__name__)
            return None

    def _retry_waiting(self, now: float, out: Followups | None) -> Followups | None:
        waiting = self._waiting
        for key in [k for k, w in waiting.items() if w.deadline <= now]:
            del waiting[key]  # never ours, or its worker's batch was lost: give up
        due = [w for w in waiting.values() if w.next_try <= now]
        if not due:
            return out
        for w in due:
            w.delay *= 2
            w.next_try = now + w.delay
        by_id = {row.tool_use_id: row for row in self._from_store([w.tool_use_id for w in due])}
        joined = []
        for w in due:
            row = by_id.get(w.tool_use_id)
            if row is not None and row.key_id == w.key_id:
                del waiting[w.key_id, w.tool_use_id]
                joined.append((row, w.outcome, w.text))
        if joined:
            self.memory.answered(row.tool_use_id for row, _, _ in joined)
            out = out or Followups()
            self._attribute(joined, out)
        return out

    def _from_store(self, ids: list[str]) -> list[ToolCallRow]:
        """The rows other processes wrote of these tool_use ids, for any client key (the caller keeps its own)."""
        assert self.shared is not None
        rows: list[ToolCallRow] = []
        try:
            for at in range(0, len(ids), MAX_LOOKED_UP):
                rows += self.shared.find_tool_calls(ids[at : at + MAX_LOOKED_UP])
        except Exception as exc:  # noqa: BLE001 - a store hiccup costs a join, never a record
            log.warning("tool-call memory: store look-up failed (%s)", type(exc).__name__)
        return rows

    def _wait(self, waiting: _Waiting) -> int:
        """Wait for this id's row (1), unless WAITING_LIMIT ids wait already (0): new ids are turned away rather
        than older ones pushed out, so a turn full of made-up ids cannot cost other turns their joins."""
        if len(self._waiting) >= WAITING_LIMIT:
            return 0
        self._waiting[waiting.key_id, waiting.tool_use_id] = waiting
        return 1

    def _attribute(self, joined: list[tuple[ToolCallRow, str, str]], out: Followups) -> None:
        """Set each earlier record's next_turn to the strongest outcome of its calls; tell the sinks once per
        record (`_attribute_answer`)."""
        by_request: dict[str, list[Outcome]] = {}
        rows: dict[str, ToolCallRow] = {}
        for row, outcome, text in joined:
            by_request.setdefault(row.request_id, []).append((row.tool_use_id, outcome, text))
            rows[row.tool_use_id] = row
        for request_id, outcomes in by_request.items():
            strongest, worst = _strongest(outcomes)
            if strongest is None or not self._record(
                    SignalUpdate(request_id, "next_turn", strongest, REPLACES[strongest]), out):
                continue
            if worst is not None:
                tool_use_id, outcome, text = worst
                self._tell(self._late_of(rows[tool_use_id], outcome, text))

    def _late_of(self, row: ToolCallRow, outcome: str, text: str) -> LateSignal:
        return LateSignal(request_id=row.request_id, kind=outcome, time=self._clock(), route=row.route,
                          model=row.model, shape=row.shape, prompt_variant=row.prompt_variant,
                          config_version=row.config_version, tool_name=row.tool_name,
                          detail=redact_cut(text, 200) or None)

    def _late_signal(self, signal: LateSignal, out: Followups) -> None:
        if signal.kind in _JUDGE:
            out.signals.append(SignalUpdate(signal.request_id, "judge", _JUDGE[signal.kind]))
        elif signal.kind in STRENGTH:
            out.signals.append(SignalUpdate(signal.request_id, "next_turn", signal.kind, REPLACES[signal.kind]))
        self._tell(signal)

    def _tell(self, signal: LateSignal) -> None:
        self._score_pending()  # the call a signal is about may be in this drain: its verdict goes first
        if self.metrics is not None:
            self.metrics.observe_late_signal(signal.route, signal.model, signal.kind)
        for sink in self._sinks:
            _call(sink.late_signal, signal)


def _strongest(outcomes: list[Outcome]) -> tuple[str | None, Outcome | None]:
    """The strongest outcome of one answer's results (None: only people declining), and the first result that
    says it when it is a refusal or a failure (what the one signal about that answer tells)."""
    strongest: str | None = None
    worst: Outcome | None = None
    for result in outcomes:
        outcome = result[1]
        if outcome is not None and (strongest is None or RANK[outcome] > RANK[strongest]):
            strongest = outcome
            worst = result if outcome != OK else None
    return strongest, worst


def _call(fn: Callable[[Any], None], arg: Any) -> None:
    try:
        fn(arg)
    except Exception:  # noqa: BLE001 - one sink's bug must not cost the others or the record
        log.exception("a verdict sink failed (%s)", getattr(fn, "__qualname__", fn))
