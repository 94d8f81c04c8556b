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
from collections.abc import Iterable
from typing import Any

import msgspec

from dragoman.loop import verdict as V
from dragoman.observe.stores import ToolCallRow
from dragoman.protocols import anthropic as A

OK = "ok"
# What the earlier record's next_turn column may say, weakest first: a stronger signal replaces a weaker one.
STRENGTH = (OK, V.EXECUTION_FAILED, V.CLIENT_REFUSED)
RANK = {outcome: i for i, outcome in enumerate(STRENGTH)}  # a higher rank is a stronger signal
REPLACES = {outcome: STRENGTH[:i] for i, outcome in enumerate(STRENGTH)}  # the next_turn values each may overwrite

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


# (tool_use_id, outcome, text): what a tool_result says of the call it answers (outcome None: a person declined;
# text: the result's text when it is an error, else "").
Outcome = tuple[str, str | None, str]


class Answered(msgspec.Struct, gc=False):
    """What the tool_results of a request's last turn say: the tool_use ids they answer, in order, and the outcome of
    each one that is not a plain success (an error, or a person declining). A turn's results are nearly always all
    fine, so a success is only its id: one list of strings the request already holds, not a tuple per result, made
    at decode and freed in the audit writer (bench/RESULTS.md, "The next turn, lighter")."""

    ids: list[str]
    others: list[Outcome] | None = None  # the results that are not "ok", in order (None: every one is)

    def outcomes(self) -> list[Outcome]:
        """(tool_use_id, outcome, text) of every result, in order: `others` taken in turn where their ids come (a
        malformed turn that answers one id twice keeps both of its results)."""
        others = self.others or []
        out: list[Outcome] = []
        taken = 0
        for tool_use_id in self.ids:
            if taken < len(others) and others[taken][0] == tool_use_id:
                out.append(others[taken])
                taken += 1
            else:
                out.append((tool_use_id, OK, ""))
        return out


def tool_results(last: A.Message | None) -> Answered | None:
    """What the tool_results of a request's last message say (None: it carries none): the turn answering the previous
    one. Earlier messages repeat results already attributed when they were the last."""
    if last is None or last.role != "user" or isinstance(last.content, str):
        return None
    ids: list[str] = []
    others: list[Outcome] | None = None
    for block in last.content:
        if block.type == "tool_result" and block.tool_use_id:
            ids.append(block.tool_use_id)
            if block.is_error:  # a result's text (a whole file, for a Read) is read only when it failed
                text = result_text(block)
                if others is None:
                    others = []
                others.append((block.tool_use_id, classify(True, text), text))
    return Answered(ids, others) if ids else None


class Remembered(msgspec.Struct, gc=False):
    """An answer's tool calls, as the memory keeps them: the record that made them, each call's tool_use id and
    tool name, and the client key it answered (a next turn is joined only to its own key's calls: one client can
    never be charged with another's). Built on the event loop when the call is examined, from the record at hand."""

    request_id: str
    time: float
    route: str | None
    model: str | None
    shape: str | None
    prompt_variant: str | None
    config_version: str | None
    ids: list[str]
    names: list[str]
    key_id: str | None = None

    def row(self, tool_use_id: str) -> ToolCallRow:
        """The store's row of one of its calls (the tool_calls table's, and what a late signal is made from)."""
        name = self.names[self.ids.index(tool_use_id)] if tool_use_id in self.ids else None
        return ToolCallRow(tool_use_id, self.request_id, self.time, self.route, self.model, self.shape,
                           self.prompt_variant, self.config_version, name, self.key_id)

    def rows(self) -> list[ToolCallRow]:
        """One row per call, for the store's tool_calls table (a process that shares its store)."""
        return [ToolCallRow(tool_use_id, self.request_id, self.time, self.route, self.model, self.shape,
                            self.prompt_variant, self.config_version, name, self.key_id)
                for tool_use_id, name in zip(self.ids, self.names)]


class ToolCallMemory:
    """The answers with tool calls this process gave, by their first tool_use id, newest kept, at most `size` (an
    LRU): the join's fast path. A next turn answers every call of the answer before it (the Messages API and Chat
    both require it), so the answer is found by whichever of its results' ids is the answer's first call's, and all
    its calls are attributed at once: one entry remembered and one found per answer, not one per call. The store's
    `tool_calls` table, one row per call, is the shared one (other workers, other instances). A key whose results
    were attributed stays as a tombstone, so a client's retry of the same request is not counted twice."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._answers: collections.OrderedDict[str, Remembered | None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def remember(self, answer: Remembered) -> None:
        with self._lock:
            self._remember(answer)

    def _remember(self, answer: Remembered) -> None:
        answers = self._answers
        answers[answer.ids[0]] = answer
        if len(answers) > self.size:
            answers.popitem(last=False)

    def answered(self, ids: Iterable[str]) -> None:
        """These ids' results were attributed (from the store): ignore them, as keys, from now on."""
        with self._lock:
            for tool_use_id in ids:
                self._answers[tool_use_id] = None
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)

    def take(self, ids: list[str], remember: Remembered | None = None, key_id: str | None = None
             ) -> Remembered | None | Any:
        """The answer results with these tool_use ids answer, found by its first call's id among them (a tombstone
        from now on); None when its results were attributed already; UNKNOWN when this process never gave it (or
        forgot it), or gave it to another client key than `key_id` (left as it is: another client's turn can
        neither be charged to it nor use up its join). `remember`: an answer to remember next, under the same lock (a
        record that answers the turn before it and makes calls of its own: most of Claude Code's)."""
        with self._lock:
            answers = self._answers
            found = UNKNOWN
            for tool_use_id in ids:
                found = answers.get(tool_use_id, UNKNOWN)
                if found is UNKNOWN:
                    continue
                if found is not None:
                    if found.key_id != key_id:
                        found = UNKNOWN
                        continue
                    answers[tool_use_id] = None
                break
            if remember is not None:
                self._remember(remember)
            return found

    def __len__(self) -> int:
        return len(self._answers)


UNKNOWN: Any = object()  # what ToolCallMemory.take says of a key it never had
