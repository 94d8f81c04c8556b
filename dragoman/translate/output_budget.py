"""The client's max_tokens over the output it sees, when the upstream was given a larger budget.

A reasoning model spends output tokens thinking before it answers, so a small max_tokens (Claude Code's probe
sends 1) is raised for the upstream (`anthropic_request.max_output_tokens`). The client's max_tokens is still a
contract: the visible answer — text and tool calls — is cut where the client's budget runs out, and the answer
then ends with stop_reason "max_tokens". Thinking is not counted: it is the reasoning the raise exists for.

Visible tokens are estimated at ~4 characters a token (`estimates.py`), the estimate the stream bridges
already use for output usage. The o200k tokenizer (dragoman/tokens.py) costs 2-14 us a chunk of 5-135 characters
(measured), as much again as the whole relay's ~3 us a chunk (bench/bench_stream_bridges.py): too much for the
stream's hot path. Usage is never cut: it stays the upstream's count, what the customer is billed for.

A tool call is never cut in half: it is sent whole if its input fits what is left, else dropped with all that
follows (a half tool_use has input the client cannot parse). Streamed, a tool_use block is held until it stops.
The same rules apply to a JSON answer (`cut_message`) and to a stream (`StreamCut`), so a streamed answer
reassembles to the JSON one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.protocols import anthropic as A
from dragoman.translate.estimates import chars_for
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_arguments import parse_arguments

NOTE = "output cut at the client's max_tokens"

_encode = msgspec.json.encode


def input_size(value: Any) -> int:
    """What a tool call's input counts for: the bytes of its compact JSON (a JSON and a streamed answer agree)."""
    return len(_encode(value))


def cut_message(message: A.MessagesResponse, ctx: RequestContext) -> A.MessagesResponse:
    """Cut a JSON answer's visible content at the client's max_tokens (a no-op when nothing was raised)."""
    if not ctx.visible_max_tokens:
        return message
    left = chars_for(ctx.visible_max_tokens)
    kept: list[A.OutBlock] = []
    cut = False
    for block in message.content:
        if type(block) is A.TextOut:
            if len(block.text) > left:
                cut = True
                if left:
                    kept.append(A.TextOut(text=block.text[:left]))
                break
            left -= len(block.text)
        elif type(block) is A.ToolUseOut:
            size = input_size(block.input)
            if size > left:
                cut = True
                break
            left -= size
        kept.append(block)
    if cut:
        message.content = kept
        message.stop_reason, message.stop_sequence = "max_tokens", None
        ctx.note(NOTE)
    return message


class StreamCut:
    """The same cut over a stream of Anthropic events: feed it each batch a bridge produced (`events`)."""

    __slots__ = ("_ctx", "_left", "cut", "_mode", "_held")

    def __init__(self, ctx: RequestContext) -> None:
        self._ctx = ctx
        self._left = chars_for(ctx.visible_max_tokens)
        self.cut = False  # the budget ran out: nothing visible follows, and the answer ends with max_tokens
        self._mode = ""  # the open block: "pass" (thinking), "text", "tool" (held), "drop" (after the cut)
        self._held: list[A.StreamEvent] = []  # a tool_use block's events, or a text block's start, not sent yet

    def events(self, events: list[A.StreamEvent]) -> list[A.StreamEvent]:
        out: list[A.StreamEvent] = []
        for ev in events:
            kind = type(ev)
            if kind is A.ContentBlockDelta:
                self._delta(ev, out)  # type: ignore[arg-type]
            elif kind is A.ContentBlockStart:
                self._start(ev, out)  # type: ignore[arg-type]
            elif kind is A.ContentBlockStop:
                self._stop(ev, out)  # type: ignore[arg-type]
            elif kind is A.MessageDelta and self.cut:
                ev.delta = A.MessageDeltaBody(stop_reason="max_tokens")  # type: ignore[union-attr]
                out.append(ev)
            else:
                out.append(ev)  # message_start, ping, message_delta, message_stop, error
        return out

    def _start(self, ev: A.ContentBlockStart, out: list[A.StreamEvent]) -> None:
        block = type(ev.content_block)
        if self.cut:
            self._mode = "drop"
        elif block is A.ThinkingOut:
            self._mode = "pass"
            out.append(ev)
        else:  # a text block starts with its first text that fits; a tool_use block once it is whole
            self._mode = "text" if block is A.TextOut else "tool"
            self._held = [ev]

    def _delta(self, ev: A.ContentBlockDelta, out: list[A.StreamEvent]) -> None:
        mode = self._mode
        if mode == "pass":
            out.append(ev)
        elif mode == "tool":
            self._held.append(ev)
        elif mode == "text":
            text: str = ev.delta.text  # type: ignore[union-attr]
            if len(text) <= self._left:
                self._left -= len(text)
                out += self._held
                self._held = []
                out.append(ev)
                return
            self._cut_here()
            fits = text[: self._left]
            if self._held:  # the block has not started
                if not fits:
                    return  # nothing of it fits: it never starts
                out += self._held
            if fits:
                out.append(A.ContentBlockDelta(index=ev.index, delta=A.TextDelta(text=fits)))
            out.append(A.ContentBlockStop(index=ev.index))  # the rest of this block is dropped

    def _stop(self, ev: A.ContentBlockStop, out: list[A.StreamEvent]) -> None:
        mode, held = self._mode, self._held
        self._mode, self._held = "", []
        if mode == "pass":
            out.append(ev)
        elif mode == "tool":
            raw = "".join(d.delta.partial_json for d in held[1:])  # type: ignore[attr-defined]
            size = input_size(parse_arguments(raw)[0])
            if size > self._left:
                self._cut_here()
                return
            self._left -= size
            out += held
            out.append(ev)
        elif mode == "text" and not self.cut:
            out += held  # a text block that never had text (bridges send none; kept so indices stay dense)
            out.append(ev)

    def _cut_here(self) -> None:
        if not self.cut:
            self.cut = True
            self._mode = "drop"
            self._ctx.note(NOTE)
