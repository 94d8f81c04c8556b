"""The tool_use ids of one answer: the upstream's call ids when Anthropic takes them, ids the gateway makes when not.

A client answers each call by its id next turn, and the request translators send that id upstream as the call's id
unchanged (an upstream needs its calls and results to agree within a request, nothing more). So an id that repeats
an earlier call's id in the same answer (servers that count calls per turn, e.g. `call_0` twice) would pair both
results with the first call, and an id outside Anthropic's pattern `^[a-zA-Z0-9_-]+$` (Kimi-style servers send
`functions.read:2`) is refused by any Anthropic route (a fallback, a /model switch). Both get an id made here.

So does a numbered id (`call_0`, `tool-12`, `0`: servers that number calls per answer give every answer the same
ids), as the correctness loop joins a client's next turn to the answer by the ids it answers (loop/next_turn.py),
and another conversation's `call_0` would take the blame (or the credit). The made id holds the message id, itself
random, so it is unique to its answer. Any other id is kept as the upstream sent it, short random ones included:
Mistral's API (and mistral_common, which vLLM and others serve Devstral with) refuses a next turn whose ids are not
exactly 9 letters and digits ("Tool call id was … but must be a-z, A-Z, 0-9, with a length of 9"), so replacing its
ids would break every second turn. A numbered id is a word, `_` or `-`, and at most six digits, or the digits
alone, 20 characters at most: an id of letters and digits only, as Mistral's, never is, however its characters
fall.
"""

from __future__ import annotations

import re

from dragoman.translate.request_context import RequestContext

# Anthropic documents no length limit. Servers' ids run to ~55 characters (OpenAI's `fc_…` item ids; vLLM's
# `chatcmpl-tool-` and 32 hex digits); a longer one is carried in every later request of the conversation, twice,
# and keys the audit store's tool_calls table, so one beyond this is replaced as if it were invalid.
MAX_ID_LENGTH = 256
# Numbered ids are short (`toolcall_123456` is 15): a longer id (OpenAI's 29 characters, vLLM's 46, llama.cpp's
# 32) is not tried against the pattern, so the common case costs a length check.
NUMBERED_MAX_LENGTH = 20
_numbered = re.compile(r"(?:[A-Za-z]+[_-])?[0-9]{1,6}").fullmatch
NOTE_REPEATED = "repeated tool call id replaced"
NOTE_INVALID_ID = "invalid tool call id replaced"
# A search for a refused character, not a match of the whole id: a valid id (the common case) makes no Match object.
_refused_character = re.compile(r"[^A-Za-z0-9_-]").search


def upstream_id(value: str | int | None) -> str | None:
    """A call id as the upstream sent it, as text: a number (`"id": 0`, some OpenAI-compatible servers) is its
    digits, an id like any other (`client` replaces it, as it does every numbered id); an empty one is none."""
    if type(value) is int:
        return str(value)
    return value or None  # type: ignore[return-value]


def tool_use_id(message_id: str, position: int) -> str:
    """A stable id for a tool call the upstream sent without one (or with one the client cannot be given)."""
    return f"toolu_{message_id.removeprefix('msg_')}_{position}"


class ToolUseIds:
    """The ids one answer's tool_use blocks got so far; `client` decides each call's, once, as its block is made."""

    __slots__ = ("_ctx", "_given")

    def __init__(self, ctx: RequestContext) -> None:
        self._ctx = ctx
        self._given: set[str] = set()

    def client(self, upstream: str | None, position: int) -> str:
        """The tool_use id for the call at `position` (its place among the answer's calls or output items): the
        upstream's id when it is valid, new in this answer and not a numbered one (the same in every answer), else
        a made one (noted when the upstream's was repeated or invalid)."""
        given = self._given
        if upstream and upstream not in given and len(upstream) <= MAX_ID_LENGTH and _refused_character(upstream) is None:
            given.add(upstream)
            if len(upstream) > NUMBERED_MAX_LENGTH or _numbered(upstream) is None:
                return upstream
            # Valid, but the same as other answers': replaced, not noted. Kept in `given` so a repeat of it in
            # this answer is noted as one.
        elif upstream:
            self._ctx.note(NOTE_REPEATED if upstream in given else NOTE_INVALID_ID)
        made = base = tool_use_id(self._ctx.message_id, position)
        suffix = 0
        while made in given:  # an upstream id that is a made one (message ids are random: only by design)
            suffix += 1
            made = f"{base}_{suffix}"
        given.add(made)
        return made
