"""STAND-IN until branch `verdicts` lands (the lead replaces this file with theirs at merge).

The minimal Assessor of CONTRACTS.md so config versions and the judge can be tested end to end: the only check is
a tool_use whose name the request did not offer (unknown_tool), on JSON answers; late signals are handed to the
sinks at once, under the same lock as verdicts (the real one queues them for the writer thread)."""

from __future__ import annotations

import logging
import threading

import msgspec

from dragoman.loop.evidence import Evidence
from dragoman.loop.verdict import FAIL, PASS, UNKNOWN_TOOL, LateSignal, VerdictSink
from dragoman.observe.record import AuditRecord

log = logging.getLogger("dragoman.loop")


class _Block(msgspec.Struct):
    type: str
    name: str | None = None


class _Answer(msgspec.Struct):
    content: list[_Block] = []


_decode_answer = msgspec.json.Decoder(_Answer).decode


class Assessor:
    def __init__(self) -> None:
        self._sinks: list[VerdictSink] = []
        self._lock = threading.Lock()

    def add_sink(self, sink: VerdictSink) -> None:
        self._sinks.append(sink)

    def assess(self, record: AuditRecord, evidence: Evidence | None) -> None:
        if evidence is None or evidence.answer is None or evidence.request is None or record.status >= 400:
            return
        try:
            answer = _decode_answer(evidence.answer)
        except msgspec.DecodeError:
            return
        offered = {tool.name for tool in evidence.request.tools or ()}
        calls = [block.name for block in answer.content if block.type == "tool_use"]
        record.tool_calls = len(calls)
        unknown = [name for name in calls if name not in offered]
        record.verdict = FAIL if unknown else PASS
        if unknown:
            record.verdict_kinds = [UNKNOWN_TOOL]
            record.verdict_detail = f"tool {unknown[0]!r} was not offered"
        with self._lock:
            for sink in self._sinks:
                try:
                    sink.verdict(record)
                except Exception:  # noqa: BLE001 - one sink's bug must not lose the record
                    log.exception("verdict sink failed")

    def report_late(self, signal: LateSignal) -> None:
        with self._lock:
            for sink in self._sinks:
                try:
                    sink.late_signal(signal)
                except Exception:  # noqa: BLE001
                    log.exception("verdict sink failed")
