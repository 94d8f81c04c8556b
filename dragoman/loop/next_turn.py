"""The next turn tells whether the last one worked: Claude Code answers each tool call in its next request with a
`tool_result` for its id. What the result says is attributed to the call that produced that id.

- The client refused the call (its input failed the tool's validation, the tool does not exist): the call was
  wrong, CLIENT_REFUSED. Texts, captured from the real CLI (tests/fixtures/claude_code/tool_results/):
  `<tool_use_error>InputValidationError: Read failed due to the following issue: …</tool_use_error>`,
  `<tool_use_error>Error: No such tool available: NoSuchTool</tool_use_error>`.
- The call ran and failed (`Exit code 3`, `File does not exist.`, Edit's `<tool_use_error>String to replace not
  found in file.`): EXECUTION_FAILED, a weaker signal — the model may have been right to try.
- The user (or the client's permission rules) said no, or interrupted: not a failure of the call; nothing.
- Anything else without `is_error`: the call worked ("ok")."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from dragoman.loop import verdict as V
from dragoman.observe.stores import ToolCallRow
from dragoman.protocols import anthropic as A

OK = "ok"
# What the earlier record's next_turn column may say, weakest first: a stronger signal replaces a weaker one.
STRENGTH = (OK, V.EXECUTION_FAILED, V.CLIENT_REFUSED)
_RANK = {outcome: i for i, outcome in enumerate(STRENGTH)}

# The CLI's own refusals: the call never ran because it was malformed (Claude Code 2.1.x texts).
_REFUSED = ("InputValidationError", "No such tool available", "Invalid tool parameters", "is not valid JSON",
            "malformed")
# A person (or a permission rule standing for one) declined or stopped the call. "needs approval": captured from
# the headless CLI without --dangerously-skip-permissions; the others are the interactive CLI's rejection texts.
_DECLINED = ("needs approval", "The user doesn't want to proceed", "The user doesn't want to take this action",
             "Request interrupted by user", "interrupted by user", "requested permissions to use",
             "User rejected", "Permission to use")


def result_text(block: A.ContentBlock) -> str:
    content = block.content
    if isinstance(content, str):
        return content
    if not content:
        return ""
    return "\n".join(part.text for part in content if part.text)


def classify(is_error: bool, text: str) -> str | None:
    """OK, CLIENT_REFUSED, EXECUTION_FAILED, or None (a person declined: no signal)."""
    if not is_error:
        return OK
    if any(marker in text for marker in _DECLINED):
        return None
    if any(marker in text for marker in _REFUSED):
        return V.CLIENT_REFUSED
    return V.EXECUTION_FAILED


def tool_results(last: A.Message | None) -> list[tuple[str, str | None, str]]:
    """(tool_use_id, outcome, text) for each tool_result of a request's last message: the turn answering the
    previous one. Earlier messages repeat results already attributed when they were the last."""
    if last is None or last.role != "user" or isinstance(last.content, str):
        return []
    out = []
    for block in last.content:
        if block.type == "tool_result" and block.tool_use_id:
            if not block.is_error:  # a result's text (a whole file, for a Read) is read only when it failed
                out.append((block.tool_use_id, OK, ""))
                continue
            text = result_text(block)
            out.append((block.tool_use_id, classify(True, text), text))
    return out


def stronger(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if _RANK[a] >= _RANK[b] else b


def weaker_than(outcome: str) -> tuple[str, ...]:
    """The next_turn values `outcome` may replace."""
    return STRENGTH[: STRENGTH.index(outcome)]


class ToolCallMemory:
    """The tool_use ids this process answered with, newest kept, at most `size` (an LRU): the join's fast path.
    The store's `tool_calls` table is the shared one (other workers, other instances). An id whose result was
    attributed stays as a tombstone, so a client's retry of the same request is not counted twice."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._rows: collections.OrderedDict[str, ToolCallRow | None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def remember(self, rows: Iterable[ToolCallRow]) -> None:
        with self._lock:
            for row in rows:
                self._rows[row.tool_use_id] = row
            self._trim()

    def answered(self, ids: Iterable[str]) -> None:
        """These ids' results were attributed (from the store): ignore them from now on."""
        with self._lock:
            for tool_use_id in ids:
                self._rows[tool_use_id] = None
            self._trim()

    def take(self, ids: Sequence[str]) -> tuple[list[ToolCallRow], list[str]]:
        """(rows found, ids unknown here); found rows become tombstones, ids already answered are in neither."""
        found, missing = [], []
        with self._lock:
            rows = self._rows
            for tool_use_id in ids:
                row = rows.get(tool_use_id, _UNKNOWN)
                if row is _UNKNOWN:
                    missing.append(tool_use_id)
                elif row is not None:
                    found.append(row)
                    rows[tool_use_id] = None
        return found, missing

    def _trim(self) -> None:
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._rows)


_UNKNOWN: Any = object()
