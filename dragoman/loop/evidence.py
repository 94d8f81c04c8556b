"""What the exchange hands the loop about a finished call: enough to judge it, taken without copying anything.

Two parts, taken at two moments. While the request is decoded the exchange keeps the offered tools' schemas by name
and reads what the tool_results its last turn carries say (`taken`: a dict of the schemas, and the results' ids with
an outcome only for those that are not plain successes, loop/next_turn.py `Answered`). Once the client has its last
byte it adds the answer as the client got it (a translated answer: the blocks the gateway encoded, or what the
stream's bridge noted of each block it made, loop/answer.py StreamFacts; a relayed Anthropic answer: its JSON bytes,
or its SSE chunks in a list, one append per chunk), how the stream ended, and the names to restore. It is examined there and then (loop/assess.py `Assessor.examine`) and dropped: the audit
writer gets the verdict on the record, the results' `Answered` and the answer's calls as the memory keeps them.

Why the request's part is taken at decode: its objects were just made and are about to be walked by the
translation; once the answer is in, a busy gateway has decoded dozens of other requests since. It is ~1.5 µs of work
either way for Claude Code's turn after six parallel Reads; taking it early is part of the change that halved the
loop's cost (bench/RESULTS.md, "Halving the loop's cost").

Why the examination runs on the event loop and not in the writer's thread: in one process the writer is not off the
serving core (it takes the GIL from the event loop), and what it would need is large or is thrown away at once here.
Measured on Claude Code's 52 KB turn answered by six tool calls (bench/RESULTS.md, "The tool-calling loop"):
decoding the tools again from held request bytes (the design before) cost ~21 µs a record; holding the decoded tools
until the writer's batch instead cost ~14 µs a record to free them there, cache-cold, against ~3 µs freed by the
exchange at once; re-reading the answer from its bytes costs ~3.5 µs (JSON) to ~20 µs (six streamed calls) that
reading the blocks and events the gateway encoded does not."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.loop.next_turn import Answered, tool_results
from dragoman.protocols import anthropic as A
from dragoman.translate.tool_names import ToolNameMap

# How a streamed answer's reading ended (exchange/stream.py sets it; None: the client stopped reading first).
FINISHED = "finished"  # the relay produced message_stop or an error event and reading stopped there
UPSTREAM_CLOSED = "eof"  # the upstream closed its stream (complete, or cut short without its finish)
TRANSPORT_FAILED = "transport"  # reading failed: timeout, reset, oversized event
TOOL_USE = b'"tool_use"'  # in an answer's bytes: it may call a tool


class Evidence(msgspec.Struct, kw_only=True, gc=False):
    """One finished call, as the client saw it. (Not tracked by the garbage collector: it only points at what the
    exchange holds, nothing points back at it, and one is built and dropped per request.)"""

    offered: dict[str, msgspec.Raw] | None = None  # the request's tool schemas by name (`taken`)
    results: Answered | None = None  # what the tool_results of the request's last turn say (`taken`)
    body: bytes | None = None  # the JSON answer (not streamed)
    content: list[A.OutBlock] | None = None  # the blocks `body` encodes, when the gateway built them (translated)
    chunks: list[bytes] | None = None  # the SSE bytes the client got, in order (streamed, relayed as is)
    facts: Any = None  # what the stream the client got said (streamed, translated): a loop/answer.py StreamFacts
    stop_reason: str | None = None
    failure: str | None = None  # the error type the stream ended with (an Anthropic `error` event was its last)
    ended: bool = False  # the stream reached message_stop or an error event
    stream_end: str | None = None  # FINISHED | UPSTREAM_CLOSED | TRANSPORT_FAILED | None (client stopped reading)
    tool_names: ToolNameMap | None = None  # upstream name → client name, for names shortened for the upstream


_decode_messages = msgspec.json.Decoder(A.MessagesRequest).decode


def taken(req: A.MessagesRequest) -> tuple[dict[str, msgspec.Raw] | None, Answered | None]:
    """The request's part of the evidence: its tools' schemas by name (NO_SCHEMA: a tool without one; a name offered
    twice is the last one, as a client reading the list would), and what the tool_results of its last turn say (its
    last message but for trailing `system` ones, which Claude Code 2.1.197 appends after them).

    Only the schemas (JSON text, views of the body the exchange keeps anyway): the tools, with their long
    descriptions, are freed with the decoded request while it is still in the caches, not cache-cold at the
    request's end (bench/RESULTS.md, "Tool schemas as sent"). One function with plain loops, not four: run once a
    request among a busy gateway's other work, the loop's code is fetched cache-cold each time, and each function
    called costs more in fetching than in running (bench/RESULTS.md, "The next turn, lighter")."""
    schemas = None
    if req.tools:
        schemas = {}
        for tool in req.tools:
            schemas[tool.name] = tool.input_schema
    messages = req.messages
    at = len(messages) - 1
    while at >= 0 and messages[at].role == "system":
        at -= 1
    return schemas, tool_results(messages[at]) if at >= 0 else None


def decoded(request: bytes) -> A.MessagesRequest | None:
    """A request body as the exchange decodes it (tests and tools; the exchange hands over what it decoded)."""
    try:
        return _decode_messages(request)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def request_part(request: bytes) -> dict[str, Any]:
    """`taken` of a request body, as Evidence's keyword arguments (tests and tools)."""
    req = decoded(request)
    if req is None:
        return {}
    schemas, answered = taken(req)
    return {"offered": schemas, "results": answered}
