"""The tool_use ids of one answer: the upstream's call ids when Anthropic takes them, ids the gateway makes when not.

A client answers each call by its id next turn, and the request translators send that id upstream as the call's id
unchanged (an upstream needs its calls and results to agree within a request, nothing more). So an id that repeats
an earlier call's id in the same answer (servers that count calls per turn, e.g. `call_0` twice) would pair both
results with the first call, and an id outside Anthropic's pattern `^[a-zA-Z0-9_-]+$` (Kimi-style servers send
`functions.read:2`) is refused by any Anthropic route (a fallback, a /model switch). Both get an id made here.
"""

from __future__ import annotations

import re

from dragoman.translate.request_context import RequestContext

# Anthropic documents no length limit. Servers' ids run to ~55 characters (OpenAI's `fc_…` item ids; vLLM's
# `chatcmpl-tool-` and 32 hex digits); a longer one is carried in every later request of the conversation, twice,
# and keys the audit store's tool_calls table, so one beyond this is replaced as if it were invalid.
MAX_ID_LENGTH = 256
NOTE_REPEATED = "repeated tool call id replaced"
NOTE_INVALID_ID = "invalid tool call id replaced"
# A search for a refused character, not a match of the whole id: a valid id (the common case) makes no Match object.
_refused_character = re.compile(r"[^A-Za-z0-9_-]").search


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
        upstream's id when it is valid and new in this answer, else a made one (noted, unless there was none)."""
        given = self._given
        if upstream and upstream not in given and len(upstream) <= MAX_ID_LENGTH and _refused_character(upstream) is None:
            given.add(upstream)
            return upstream
        if upstream:
            self._ctx.note(NOTE_REPEATED if upstream in given else NOTE_INVALID_ID)
        made = base = tool_use_id(self._ctx.message_id, position)
        suffix = 0
        while made in given:  # an upstream id that is a made one (message ids are random: only by design)
            suffix += 1
            made = f"{base}_{suffix}"
        given.add(made)
        return made
