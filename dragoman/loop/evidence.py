"""What the exchange hands the loop about a finished call: enough to judge it, taken without copying anything.

Built once per request when the loop is on (`loop: {enabled: true}`), on the event loop, from references the
exchange already holds: the request's body as the client sent it, the answer's Anthropic bytes as the client got
them (the JSON body, or the SSE chunks in a list, one append per chunk), how the stream ended, and the names to
restore. Everything that reads it runs in the audit writer's thread (loop/assess.py).

Why the request's bytes and not the decoded request: a decoded Claude Code request is thousands of containers;
kept alive until the writer's next batch (up to `audit.flush_interval`), they survive young-generation
collections and make every later one slower (the 78 KB fixture: ~2x the decode cost per request, measured with
gc thresholds as the server sets them; bench/RESULTS.md, "The correctness loop's cost"). Bytes are one object
the collector never walks, and are held only for an answer that mentions a tool call: holding every 78 KB body
until the batch still cost ~5-30 µs a request in memory churn; the writer decodes only the tools it needs. The last
turn is kept as decoded when it answers tool calls (a few blocks), found by `answering` on the event loop."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.protocols import anthropic as A
from dragoman.translate.tool_names import ToolNameMap

# How a streamed answer's reading ended (exchange/stream.py sets it; None: the client stopped reading first).
FINISHED = "finished"  # the relay produced message_stop or an error event and reading stopped there
UPSTREAM_CLOSED = "eof"  # the upstream closed its stream (complete, or cut short without its finish)
TRANSPORT_FAILED = "transport"  # reading failed: timeout, reset, oversized event
TOOL_USE = b'"tool_use"'  # in an answer's bytes: it may call a tool, the checks need the request's tools


class Evidence(msgspec.Struct, kw_only=True):
    """One finished call, as the client saw it."""

    request: bytes = b""  # the request body as the client sent it, when the answer mentions TOOL_USE (else b"")
    answers: A.Message | None = None  # the request's last message, when it carries tool_results (next_turn.py)
    body: bytes | None = None  # the JSON answer (not streamed)
    chunks: list[bytes] | None = None  # the SSE bytes the client got, in order (streamed)
    stop_reason: str | None = None
    failure: str | None = None  # the error type the stream ended with (an Anthropic `error` event was its last)
    ended: bool = False  # the stream reached message_stop or an error event
    stream_end: str | None = None  # FINISHED | UPSTREAM_CLOSED | TRANSPORT_FAILED | None (client stopped reading)
    tool_names: ToolNameMap | None = None  # upstream name → client name, for names shortened for the upstream


class _Tool(msgspec.Struct):
    name: str = ""
    input_schema: msgspec.Raw = msgspec.Raw()  # decoded only for the tools an answer called (empty: none)


class _Tools(msgspec.Struct):
    tools: list[_Tool] | None = None


class _Messages(msgspec.Struct):
    messages: list[msgspec.Raw] = []


_decode_tools = msgspec.json.Decoder(_Tools).decode
_decode_messages = msgspec.json.Decoder(_Messages).decode
_decode_message = msgspec.json.Decoder(A.Message).decode
_decode_schema = msgspec.json.Decoder(dict[str, Any] | None).decode
_MALFORMED = (msgspec.DecodeError, msgspec.ValidationError)


class OfferedTools:
    """The request's tools by name, each schema decoded when first asked for."""

    __slots__ = ("_raw",)

    def __init__(self, request: bytes) -> None:
        try:
            tools = _decode_tools(request).tools or ()
        except _MALFORMED:
            tools = ()
        self._raw = {tool.name: tool.input_schema for tool in tools}

    def __contains__(self, name: str) -> bool:
        return name in self._raw

    def schema(self, name: str) -> dict[str, Any] | None:
        raw = self._raw.get(name)
        if not raw:
            return None
        try:
            return _decode_schema(raw)
        except _MALFORMED:
            return None


def answering(messages: list[A.Message]) -> A.Message | None:
    """A request's last turn if it answers tool calls, else None: its last message but for trailing `system`
    messages (Claude Code 2.1.197 appends one after the tool_results). A few blocks looked at."""
    for message in reversed(messages):
        if message.role != "system":
            break
    else:
        return None
    content = message.content
    if message.role != "user" or isinstance(content, str):
        return None
    for block in content:
        if block.type == "tool_result":
            return message
    return None


def answering_in(request: bytes) -> A.Message | None:
    """`answering` of a request body (tests and tools; the exchange hands the decoded messages over)."""
    try:
        raw = _decode_messages(request).messages
        return answering([_decode_message(m) for m in raw[-3:]])
    except _MALFORMED:
        return None
