"""What every upstream stream → Anthropic stream bridge shares: the message's start, its one end, and failures.

`ChatStreamBridge` and `ResponsesStreamBridge` subclass `StreamBridge` and add one method per upstream event
kind. The rules here hold for both: message_start (and a ping) comes before anything else; nothing follows the
end; a failure after the first byte ends the stream with an Anthropic `error` event, never a clean stop; a
tool call's arguments are closed once; and when the client's max_tokens was raised for the upstream, what
the client gets is cut back to it (`output_budget.StreamCut`).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from dragoman.protocols import anthropic as A
from dragoman.translate.failures import error_line_failure
from dragoman.translate.output_budget import StreamCut
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_arguments import closing_fragment


class StreamedCall(Protocol):
    """A tool call whose arguments stream into a tool_use block (each bridge has its own record of one)."""

    block: int | None  # its Anthropic block index
    wrapped: bool  # arguments held because they came wrapped in a JSON string
    closed: bool  # its closing fragment went out: nothing more belongs to its block

    def text(self) -> str: ...


class Made(msgspec.Struct, gc=False):
    """What a bridge made of the answer, for the correctness loop (loop/answer.py StreamFacts), noted once per block,
    not per event; without a cut (`StreamBridge.cuts`) it is what the client got. Its own object, so that what reads
    it holds neither the bridge nor its context (the context holds the reader: a cycle)."""

    tool_blocks: list[tuple[int, str, str]] = []  # (block index, tool_use id, name) of each tool_use block
    said: bool = False  # a text delta with text was made
    last_block: str | None = None  # the type of the last block opened


class StreamBridge:
    """The lifecycle of one translated stream; subclasses feed it upstream events."""

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self.event_count = 0  # upstream events received
        self._started = False
        self._ended = False
        self.final_usage: A.Usage | None = None  # what the message_delta reported, for the audit record
        self.stop_reason: str | None = None
        self.upstream_model: str | None = None  # the model that answered, as the upstream names it
        # Only a request whose max_tokens was raised for the upstream has its output cut back (and paid for).
        self._cut = StreamCut(ctx) if ctx.visible_max_tokens else None
        self.made = Made()

    @property
    def cuts(self) -> bool:
        """Whether what the client gets may be less than what the bridge makes (cut at the client's max_tokens)."""
        return self._cut is not None

    def on_error(self, error_type: str, message: str) -> list[A.StreamEvent]:
        """A failure after the first byte: an Anthropic `error` event ends the stream, never a clean stop."""
        out: list[A.StreamEvent] = []
        if self._ended:
            return out
        if not self._started:
            self._start(out)
        return self._emit(self._fail(out, error_type, message))

    def on_error_event(self, error: object) -> list[A.StreamEvent]:
        """An SSE `error` event's data, its JSON value or its text (llama.cpp's server reports a failure mid-stream
        so, on Chat and Responses routes alike: protocols/sse.py): the upstream's failure (`error_line_failure`)."""
        return self.on_error(*error_line_failure(error))

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def started(self) -> bool:
        """True once the answer began (message_start was made; a Responses stream's opening events do not begin it):
        from then on a failure is an `error` event, not an HTTP error."""
        return self._started

    def _start(self, out: list[A.StreamEvent]) -> None:
        self._started = True
        usage = A.Usage(input_tokens=self.ctx.input_estimate, output_tokens=0)
        body = A.MessageStartBody(id=self.ctx.message_id, model=self.ctx.requested_model, usage=usage)
        out.append(A.MessageStart(message=body))
        out.append(A.Ping())

    def _fail(self, out: list[A.StreamEvent], error_type: str, message: str) -> list[A.StreamEvent]:
        out.append(A.Error(error=A.ErrorBody(type=error_type, message=message)))
        self._ended = True
        return out

    def _emit(self, out: list[A.StreamEvent]) -> list[A.StreamEvent]:
        """A batch of events as the client gets it: cut at the client's max_tokens when its budget was raised."""
        cut = self._cut
        if cut is None:
            return out
        out = cut.events(out)
        if cut.cut and self.stop_reason is not None:
            self.stop_reason = "max_tokens"
        return out

    def _opened(self, index: int, block: A.OutBlock) -> None:
        """A block opened (each bridge calls it as it makes the block's start event)."""
        made, kind = self.made, type(block)
        if kind is A.ToolUseOut:
            made.last_block = "tool_use"
            made.tool_blocks.append((index, block.id, block.name))  # type: ignore[union-attr]
        elif kind is A.TextOut:
            made.last_block = "text"
        else:
            made.last_block = "thinking"

    def _close_arguments(self, call: StreamedCall, out: list[A.StreamEvent]) -> None:
        """Before a tool block stops, once: send held (wrapped) arguments, or close what a truncated stream left
        open; the note says what was repaired, or that it could not be."""
        if call.closed:
            return
        call.closed = True
        text = call.text()
        fragment, note, value = closing_fragment(text, call.wrapped)
        if fragment:
            out.append(A.ContentBlockDelta(index=call.block, delta=A.InputJsonDelta(partial_json=fragment)))  # type: ignore[arg-type]
        if note:
            self.ctx.note(note)
        kept = self.ctx.kept_arguments
        if kept is not None:
            # Not a JSON object: the client got the text as it streamed (a wrapped call's is held and never sent).
            kept[call.block] = value if value is not None else text  # type: ignore[index]

    def _final_delta(self, usage: A.Usage, reason: str | None, sequence: str | None = None) -> A.MessageDelta:
        """The message_delta that declares the answer over; what it reports is kept for the audit record."""
        self.final_usage, self.stop_reason = usage, reason
        return A.MessageDelta(
            delta=A.MessageDeltaBody(stop_reason=reason, stop_sequence=sequence),
            usage=A.MessageDeltaUsage(
                output_tokens=usage.output_tokens,
                input_tokens=usage.input_tokens,
                cache_read_input_tokens=usage.cache_read_input_tokens,
            ),
        )
