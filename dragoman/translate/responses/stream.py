"""OpenAI Responses stream → Anthropic stream events (design §4): a small state machine, one method per
upstream event kind, each event bridged as it arrives.

Output items map to content blocks: reasoning → thinking, message → text, function_call → tool_use. The item
being streamed is the open block; `output_item.done` closes it (a reasoning block gets its sealed signature
first). Invariants, whatever the upstream does: message_start comes first; indices are dense and increasing;
one block is open at a time and every start has its stop; a failure never ends as a clean message_stop. An
item added while another is still open (OpenAI does not interleave, other servers might) is held and sent
whole once the open one is done, so no fragment lands in a closed block.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_responses as R
from dragoman.translate.estimates import output_estimate
from dragoman.translate.failures import CUT_SHORT, error_event_failure, responses_failure
from dragoman.translate.reasoning_signature import seal_reasoning
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.response import SUMMARY_SEPARATOR, call_id, message_text, summary_text
from dragoman.translate.stop_reasons import responses_stop_reason
from dragoman.translate.stream_bridge import StreamBridge
from dragoman.translate.tool_arguments import is_wrapped
from dragoman.translate.tool_ids import ToolUseIds
from dragoman.translate.usage import responses_usage

_KINDS = {"message": "text", "reasoning": "thinking", "function_call": "tool"}


class _Item:
    """One upstream output item on its way to becoming one Anthropic block."""

    __slots__ = ("index", "kind", "source", "parts", "sent", "block", "finished", "summary_index", "wrapped", "closed")

    def __init__(self, index: int, kind: str, source: R.OutputItem) -> None:
        self.index = index  # output_index
        self.kind = kind  # text | thinking | tool
        self.source = source  # the item as added (name, call_id), replaced by the item as done
        self.parts: list[str] = []  # content received so far (text, summary or arguments)
        self.sent = 0  # how many of `parts` went out as deltas
        self.block: int | None = None  # Anthropic block index once opened
        self.finished = False
        self.summary_index = 0
        self.wrapped = False  # arguments wrapped in an extra JSON string: held, unwrapped at the end
        self.closed = False  # a tool call's closing fragment went out

    def text(self) -> str:
        return "".join(self.parts)


class ResponsesStreamBridge(StreamBridge):
    """Feed it each decoded upstream event (`on_event`), then `on_eof` or `on_error`."""

    def __init__(self, ctx: RequestContext, reasoning_key: bytes) -> None:
        super().__init__(ctx)
        self._key = reasoning_key
        self._next_index = 0
        self._items: dict[int, _Item] = {}
        self._active: _Item | None = None  # the item whose block is (or will be) the open one
        # Items added while another was active, in order: a deque, since a list's pop(0) moves every item behind
        # it (quadratic for an upstream that opens thousands of items behind one it never finishes).
        self._waiting: deque[_Item] = deque()
        self._has_tools = False
        self._ids = ToolUseIds(ctx)
        self._refusal = False
        self._out_chars = 0

    # ---- public surface ----------------------------------------------------------------------------------

    def on_event(self, event: R.StreamEvent) -> list[A.StreamEvent]:
        out: list[A.StreamEvent] = []
        if self._ended:
            return out
        self.event_count += 1
        if not self._started:
            if event.type in _PREAMBLE:
                return out  # nothing yet: a failure next is still the candidate's (see _PREAMBLE)
            self._start(out)
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event, out)
        return out if self._cut is None else self._emit(out)  # no call per chunk unless cut

    def on_eof(self) -> list[A.StreamEvent]:
        """The upstream closed the stream. Responses streams end with response.completed, never bare EOF."""
        if self._ended:
            return []
        return self.on_error(*CUT_SHORT)

    # ---- upstream events, one method each ----------------------------------------------------------------

    def _on_item_added(self, ev: R.OutputItemEvent, out: list[A.StreamEvent]) -> None:
        self._item(ev.output_index, ev.item, out)

    def _on_item_done(self, ev: R.OutputItemEvent, out: list[A.StreamEvent]) -> None:
        item = self._item(ev.output_index, ev.item, out)  # created here when a server skipped the added event
        if item is None or item.finished:
            return
        item.source = ev.item  # the whole item: encrypted_content, final text and arguments
        item.finished = True
        if item is self._active:
            self._finish(item, out)
            self._activate_next(out)

    def _on_text_delta(self, ev: R.DeltaEvent, out: list[A.StreamEvent]) -> None:
        if ev.type == "response.refusal.delta":
            self._refusal = True
        self._add(self._item_for_delta(ev, "message", out), ev.delta, out)

    def _on_arguments_delta(self, ev: R.DeltaEvent, out: list[A.StreamEvent]) -> None:
        self._add(self._item_for_delta(ev, "function_call", out), ev.delta, out)

    def _on_arguments_done(self, ev: R.DoneEvent, out: list[A.StreamEvent]) -> None:
        item = self._items.get(ev.output_index)
        if item is None:
            item = self._item(ev.output_index, R.OutputItem(type="function_call", id=ev.item_id), out)
        if item is not None and item.kind == "tool" and not item.finished and ev.arguments is not None:
            item.source.arguments = ev.arguments  # the whole text, in case fragments were missed

    def _on_summary_delta(self, ev: R.DeltaEvent, out: list[A.StreamEvent]) -> None:
        self._reasoning_delta(ev, ev.summary_index, out)

    def _on_reasoning_text_delta(self, ev: R.DeltaEvent, out: list[A.StreamEvent]) -> None:
        """Raw reasoning text (llama.cpp, gpt-oss on vLLM or Ollama send reasoning only so): the thinking block's
        text, as a summary is; its parts are content parts (`content_index`)."""
        self._reasoning_delta(ev, ev.content_index, out)

    def _reasoning_delta(self, ev: R.DeltaEvent, part: int, out: list[A.StreamEvent]) -> None:
        item = self._item_for_delta(ev, "reasoning", out)
        if item is None or not ev.delta:
            return
        if part != item.summary_index:
            item.summary_index = part
            if item.parts:
                self._add(item, SUMMARY_SEPARATOR, out)  # summary parts are joined as in the JSON answer
        self._add(item, ev.delta, out)

    def _on_item_part(self, ev: R.ContentPartEvent | R.SummaryPartEvent | R.DoneEvent, out: list[A.StreamEvent]) -> None:
        """Part and done events of an item: nothing to send, but they show an item whose added event was skipped."""
        if ev.output_index not in self._items:
            self._item(ev.output_index, R.OutputItem(type=_PART_KINDS[ev.type], id=ev.item_id), out)

    def _on_finished(self, ev: R.ResponseEvent, out: list[A.StreamEvent]) -> None:
        """response.completed / response.incomplete: close every block, then message_delta and message_stop."""
        resp = ev.response
        self.upstream_model = resp.model or self.upstream_model
        for index, source in enumerate(resp.output):
            item = self._items.get(index)
            if item is None and source.type in _KINDS:
                # An item the stream never showed (servers that only send the final response): it goes last.
                item = self._item(index, source, out)
            if item is not None and not item.finished and source.type == item.source.type:
                item.source = source  # no output_item.done came: the final response has the whole item
        for item in self._items.values():
            item.finished = True
        while self._active is not None:
            self._finish(self._active, out)
            self._activate_next(out)
        status = "incomplete" if ev.type == "response.incomplete" else (resp.status or "completed")
        reason = responses_stop_reason(resp, status, self._has_tools, self._refusal)
        estimate = output_estimate(self._out_chars, self.ctx)
        usage = responses_usage(resp.usage, self.ctx, fallback_output=estimate)
        out.append(self._final_delta(usage, reason))
        out.append(A.MessageStop())
        self._ended = True

    def _on_failed(self, ev: R.ResponseEvent, out: list[A.StreamEvent]) -> None:
        self._fail(out, *responses_failure(ev.response.error))

    def _on_error_event(self, ev: R.ErrorEvent, out: list[A.StreamEvent]) -> None:
        self._fail(out, *error_event_failure(ev))

    # ---- items and blocks --------------------------------------------------------------------------------

    def _item(self, index: int, source: R.OutputItem, out: list[A.StreamEvent]) -> _Item | None:
        """The item at `index`, created (and activated, or queued behind the open one) the first time it is seen."""
        item = self._items.get(index)
        if item is not None:
            return item
        kind = _KINDS.get(source.type)
        if kind is None:
            self.ctx.note(f"output {source.type} item dropped")
            return None
        item = _Item(index, kind, source)
        self._items[index] = item
        if kind == "tool":
            self._has_tools = True
        if self._active is None:
            self._activate(item, out)
        else:
            self._waiting.append(item)
        return item

    def _item_for_delta(self, ev: R.DeltaEvent, kind: str, out: list[A.StreamEvent]) -> _Item | None:
        item = self._items.get(ev.output_index)
        if item is None:
            # A server that skipped output_item.added. A call without its name and call_id is held until its
            # output_item.done brings them.
            item = self._item(ev.output_index, R.OutputItem(type=kind, id=ev.item_id), out)
        if item is None or item.kind != _KINDS[kind]:
            return None
        if item.finished:
            if ev.delta.strip():
                self.ctx.note("late fragment dropped")
            return None
        return item

    def _add(self, item: _Item | None, piece: str, out: list[A.StreamEvent]) -> None:
        if item is None or not piece:
            return
        if item.kind == "tool" and not item.parts:
            item.wrapped = is_wrapped(piece)
        item.parts.append(piece)
        if item is self._active:
            self._flush(item, out)

    def _flush(self, item: _Item, out: list[A.StreamEvent]) -> None:
        """Send what the active item holds that has not gone out yet."""
        if item.kind == "tool" and (item.wrapped or item.block is None):
            return  # wrapped arguments go out unwrapped at the end; an unnamed call's block is not open yet
        if item.sent == len(item.parts):
            return
        piece = "".join(item.parts[item.sent:])
        item.sent = len(item.parts)
        if item.block is None:
            self._open_block(item, out)
        out.append(A.ContentBlockDelta(index=item.block, delta=_delta(item.kind, piece)))  # type: ignore[arg-type]
        self._out_chars += len(piece)
        if piece and item.kind == "text":
            self.made.said = True

    def _activate(self, item: _Item, out: list[A.StreamEvent]) -> None:
        self._active = item
        # Thinking and tool_use blocks exist even when empty; a text block opens with its first text.
        if item.kind == "thinking" or (item.kind == "tool" and item.source.name is not None):
            self._open_block(item, out)
        self._flush(item, out)

    def _activate_next(self, out: list[A.StreamEvent]) -> None:
        self._active = None
        while self._waiting and self._active is None:
            item = self._waiting.popleft()
            self._activate(item, out)
            if item.finished:
                self._finish(item, out)
                self._active = None

    def _open_block(self, item: _Item, out: list[A.StreamEvent]) -> None:
        if item.kind == "text":
            block: A.OutBlock = A.TextOut(text="")
        elif item.kind == "thinking":
            block = A.ThinkingOut(thinking="")
        else:
            block = A.ToolUseOut(id=call_id(item.source, item.index, self._ids), name=self.ctx.tool_names.client(item.source.name or ""), input={})
        item.block = self._next_index
        self._next_index += 1
        out.append(A.ContentBlockStart(index=item.block, content_block=block))
        self._opened(item.block, block)

    def _finish(self, item: _Item, out: list[A.StreamEvent]) -> None:
        """Close the active item's block: catch up with the final item, then sign or repair, then stop."""
        item.finished = True
        if item.kind == "tool" and item.block is None:  # named only now, by its output_item.done
            if item.source.name is None:
                self.ctx.note("tool call without a name")
            self._open_block(item, out)
            self._flush(item, out)
        self._catch_up(item, out)
        if item.kind == "tool":
            self._close_arguments(item, out)
        elif item.kind == "thinking":
            signature = seal_reasoning(item.source, self._key)
            out.append(A.ContentBlockDelta(index=item.block, delta=A.SignatureDelta(signature=signature)))  # type: ignore[arg-type]
        if item.block is not None:
            out.append(A.ContentBlockStop(index=item.block))

    def _catch_up(self, item: _Item, out: list[A.StreamEvent]) -> None:
        """Send what the final item holds beyond the deltas (servers that skip deltas send it whole here)."""
        source = item.source
        if item.kind == "text":
            final = message_text(source)[0] if source.content is not None else None
            self._refusal = self._refusal or any(p.type == "refusal" for p in source.content or ())
        elif item.kind == "thinking":
            final = summary_text(source) if source.summary is not None or source.content is not None else None
        else:
            final = source.arguments if isinstance(source.arguments, str) else None
        if final is None:
            return
        streamed = item.text()
        if len(final) > len(streamed) and final.startswith(streamed):
            self._add(item, final[len(streamed):], out)
        elif final != streamed:
            self.ctx.note("streamed content differs from the final item")


def _delta(kind: str, piece: str) -> A.Delta:
    if kind == "text":
        return A.TextDelta(text=piece)
    if kind == "thinking":
        return A.ThinkingDelta(thinking=piece)
    return A.InputJsonDelta(partial_json=piece)


# Events a Responses stream opens with, before the upstream has begun an answer: the client's message_start waits
# for what follows. A failure right after them (`response.failed` for an input over the context window) is then
# the candidate's, an HTTP error another try or candidate may take over, as it is when the same read holds both;
# were message_start sent on them, how the upstream's writes fell into reads would decide between a 4xx/529 and a
# 200 whose stream ends in an error event.
_PREAMBLE = frozenset(("response.created", "response.in_progress", "response.queued"))

# Item-scoped events that carry no content of their own → the kind of item they belong to.
_PART_KINDS = {
    "response.content_part.added": "message",
    "response.content_part.done": "message",
    "response.output_text.done": "message",
    "response.refusal.done": "message",
    "response.reasoning_summary_part.added": "reasoning",
    "response.reasoning_summary_part.done": "reasoning",
    "response.reasoning_summary_text.done": "reasoning",
    "response.reasoning_text.done": "reasoning",
}

_HANDLERS: dict[str, Callable[..., None]] = {
    **{kind: ResponsesStreamBridge._on_item_part for kind in _PART_KINDS},
    "response.output_item.added": ResponsesStreamBridge._on_item_added,
    "response.output_item.done": ResponsesStreamBridge._on_item_done,
    "response.output_text.delta": ResponsesStreamBridge._on_text_delta,
    "response.refusal.delta": ResponsesStreamBridge._on_text_delta,
    "response.function_call_arguments.delta": ResponsesStreamBridge._on_arguments_delta,
    "response.function_call_arguments.done": ResponsesStreamBridge._on_arguments_done,
    "response.reasoning_summary_text.delta": ResponsesStreamBridge._on_summary_delta,
    "response.reasoning_text.delta": ResponsesStreamBridge._on_reasoning_text_delta,
    "response.completed": ResponsesStreamBridge._on_finished,
    "response.incomplete": ResponsesStreamBridge._on_finished,
    "response.failed": ResponsesStreamBridge._on_failed,
    "error": ResponsesStreamBridge._on_error_event,
}
