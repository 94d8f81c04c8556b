"""What the exchange hands the loop about a finished call: enough to judge it, taken without copying anything.

Built once per request when the loop is on (`loop: {enabled: true}`), on the event loop, from references the
exchange already holds: the decoded request, the answer's Anthropic bytes as the client got them (the JSON body,
or the SSE chunks in a list, one append per chunk), how the stream ended, and the names to restore. Everything
that reads it runs in the audit writer's thread (loop/assess.py)."""

from __future__ import annotations

import msgspec

from dragoman.protocols import anthropic as A
from dragoman.translate.tool_names import ToolNameMap

# How a streamed answer's reading ended (exchange/stream.py sets it; None: the client stopped reading first).
FINISHED = "finished"  # the relay produced message_stop or an error event and reading stopped there
UPSTREAM_CLOSED = "eof"  # the upstream closed its stream (complete, or cut short without its finish)
TRANSPORT_FAILED = "transport"  # reading failed: timeout, reset, oversized event


class Evidence(msgspec.Struct, kw_only=True):
    """One finished call, as the client saw it."""

    request: A.MessagesRequest
    body: bytes | None = None  # the JSON answer (not streamed)
    chunks: list[bytes] | None = None  # the SSE bytes the client got, in order (streamed)
    stop_reason: str | None = None
    failure: str | None = None  # the error type the stream ended with (an Anthropic `error` event was its last)
    ended: bool = False  # the stream reached message_stop or an error event
    stream_end: str | None = None  # FINISHED | UPSTREAM_CLOSED | TRANSPORT_FAILED | None (client stopped reading)
    tool_names: ToolNameMap | None = None  # upstream name → client name, for names shortened for the upstream
