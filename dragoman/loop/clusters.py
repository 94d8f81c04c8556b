"""Failure clusters: failing verdicts grouped by (kind, tool name, route, model), with a count, first and last
seen, and a few example request ids — "unknown_tool Bash on gpt-5-fast, 212 times since 09:14" is what an
operator acts on, not 212 log lines.

`Clusters` is a VerdictSink (the in-process view, from the writer thread, long-lived): its memory is bounded, at
most `max_groups` groups (the least recently seen forgotten first), `max_examples` ids each. A report over the
audit store's records (loop/report.py) counts every group of the rows it read instead, and keeps the largest:
the LRU would forget a large cluster that many small later ones pushed out."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any

from dragoman.loop.verdict import ANSWER_KINDS, CLIENT_REFUSED, EXECUTION_FAILED, FAIL, JUDGE_FAIL, LateSignal
from dragoman.observe.record import AuditRecord

MAX_GROUPS = 1000
MAX_EXAMPLES = 5
LATE_FAILURES = (CLIENT_REFUSED, EXECUTION_FAILED, JUDGE_FAIL)
# A verdict's detail line names the tool it is about as `tool <name>` / `tool "<name>"` (loop/checks.py).
_TOOL = re.compile(r"\btool[ :=]+[\"'`]?([A-Za-z0-9_.\-]{1,128})")

Key = tuple[str, str | None, str | None, str | None]  # kind, tool, route, model


class Group:
    """One cluster's count, first and last seen, and example request ids."""

    __slots__ = ("count", "first", "last", "examples")

    def __init__(self, time: float) -> None:
        self.count = 0
        self.first = time
        self.last = time
        self.examples: list[str] = []

    def add(self, request_id: str, time: float, max_examples: int = MAX_EXAMPLES) -> None:
        self.count += 1
        self.first = min(self.first, time)
        self.last = max(self.last, time)
        if len(self.examples) < max_examples and request_id not in self.examples:
            self.examples.append(request_id)


class Clusters:
    """Failing verdicts by (kind, tool, route, model)."""

    def __init__(self, *, max_groups: int = MAX_GROUPS, max_examples: int = MAX_EXAMPLES) -> None:
        self._groups: OrderedDict[Key, _Group] = OrderedDict()
        self._max_groups = max_groups
        self._max_examples = max_examples
        self._lock = threading.Lock()  # writes come from one thread; readers (the admin API) from others

    def add(self, kind: str, tool: str | None, route: str | None, model: str | None, request_id: str,
            time: float) -> None:
        """Count one failure of `kind`."""
        key = (kind, tool, route, model)
        with self._lock:
            group = self._groups.get(key)
            if group is None:
                if len(self._groups) >= self._max_groups:
                    self._groups.popitem(last=False)
                group = self._groups[key] = Group(time)
            else:
                self._groups.move_to_end(key)
            group.add(request_id, time, self._max_examples)

    def add_record(self, record: AuditRecord | dict[str, Any]) -> None:
        """A finished call's failures, from its record (or a store row of it)."""
        get = record.get if isinstance(record, dict) else lambda name: getattr(record, name)
        for kind, tool, route, model in failure_keys(record):
            self.add(kind, tool, route, model, get("request_id"), get("time"))

    # ---- VerdictSink -------------------------------------------------------------------------------------

    def verdict(self, record: AuditRecord) -> None:
        self.verdicts([record])

    def verdicts(self, records: list[AuditRecord]) -> None:
        for record in records:
            if record.verdict == FAIL:
                self.add_record(record)

    def late_signal(self, signal: LateSignal) -> None:
        if signal.kind in LATE_FAILURES:
            self.add(signal.kind, signal.tool_name, signal.route, signal.model, signal.request_id, signal.time)

    # ---- reading -----------------------------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """GET /api/clusters rows, largest first."""
        with self._lock:
            items = [(key, g.count, g.first, g.last, list(g.examples)) for key, g in self._groups.items()]
        return _largest_first(items)


def group_rows(groups: dict[Key, Group], top: int) -> list[dict[str, Any]]:
    """The `top` largest of `groups` as GET /api/clusters rows, largest first."""
    return _largest_first([(key, g.count, g.first, g.last, g.examples) for key, g in groups.items()])[:top]


def _largest_first(items: list[tuple[Key, int, float, float, list[str]]]) -> list[dict[str, Any]]:
    items.sort(key=lambda item: (-item[1], -item[3]))
    return [
        {"kind": kind, "tool": tool, "route": route, "model": model, "count": count, "first_seen": first,
         "last_seen": last, "examples": examples}
        for (kind, tool, route, model), count, first, last, examples in items
    ]


def failure_keys(record: AuditRecord | dict[str, Any]) -> list[Key]:
    """The clusters a finished call's record (or a store row of it) counts in: one per failing kind, none when
    it did not fail."""
    get = record.get if isinstance(record, dict) else lambda name: getattr(record, name)
    if get("verdict") != FAIL and get("next_turn") not in LATE_FAILURES:
        return []
    tool = tool_of(get("verdict_detail"))
    kinds = [k for k in (get("verdict_kinds") or ()) if k in ANSWER_KINDS] if get("verdict") == FAIL else []
    if get("next_turn") in LATE_FAILURES:
        kinds.append(get("next_turn"))
    return [(kind, tool, get("route"), get("upstream_model")) for kind in kinds or ["fail"]]


def tool_of(detail: str | None) -> str | None:
    """The tool a verdict's detail line names, if any."""
    if not detail:
        return None
    found = _TOOL.search(detail)
    return found.group(1) if found else None
