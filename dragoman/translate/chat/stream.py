"""OpenAI Chat stream → Anthropic stream events (design §3): a small state machine, one call per upstream chunk.

Invariants, whatever order the upstream sends things in: message_start comes first; content block indices
are dense and increasing; exactly one block is open at a time and every start has its stop; a failure never
ends as a clean message_stop. Tool-call argument fragments stream live while their call is the open block;
a call whose fragments arrive while another call is still incomplete (interleaving servers) is held and
sent whole once the open call is complete, so no fragment ever lands in a block that is already closed. A new id
at an index in use is a new call, and a call whose arguments are one whole object takes no more fragments: a block's
fragments join into exactly one JSON object.
"""

from __future__ import annotations

import msgspec

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.translate.chat.response import content_text
from dragoman.translate.estimates import output_estimate
from dragoman.translate.failures import CUT_SHORT, chat_error_failure, chat_finish_failure
from dragoman.translate.request_context import RequestContext
from dragoman.translate.stop_reasons import chat_stop_reason
from dragoman.translate.stream_bridge import StreamBridge
from dragoman.translate.think_tags import ThinkTagSplitter
from dragoman.translate.tool_arguments import ObjectScan, is_complete_object, is_wrapped
from dragoman.translate.tool_ids import ToolUseIds, upstream_id
from dragoman.translate.usage import chat_usage

_encode = msgspec.json.encode
_TAIL = 64  # characters of text kept to tell which stop sequence ended the answer
# A call's arguments at least this long are scanned, not decoded, when asked again whether they are whole: decoding a
# text this short costs 1 µs (mostly strings) to 20 µs (many small objects), so an interleaving server's questions
# cost at most that each, one per fragment it sends (`_ToolCall.whole`).
_SCAN_FROM = 2048
# How a fragment that cannot follow a whole object starts: a resent object or its prefix, a second call's arguments
# (`{`, or JSON whitespace first). Tested on each fragment's first character only, so that a well-formed stream pays
# one character's test a fragment; only a fragment starting so after a text ending in `}` asks `_ToolCall.whole`.
_OBJECT_START = "{ \t\r\n"
_OBJECT_END = "} \t\r\n"


class _ToolCall:
    __slots__ = ("id", "given_id", "name", "parts", "block", "closed", "cumulative", "wrapped", "seen", "asked_at",
                 "was_whole", "scan", "scanned", "verdict", "position")

    def __init__(self, position: int = 0) -> None:
        self.position = position  # the call's place among the answer's calls (its made-up id, when it has none)
        self.id: str | None = None
        self.given_id = False  # `id` is the upstream's, not one made up when the call's block opened without one
        self.name: str | None = None
        self.parts: list[str] = []
        self.block: int | None = None  # Anthropic block index once opened
        self.closed = False
        self.cumulative = False  # the upstream sends the whole arguments so far, not a fragment
        self.wrapped = False  # arguments wrapped in an extra JSON string: held, unwrapped at the end
        self.seen = 0  # length of the arguments so far (what cumulative snapshots are measured against)
        self.asked_at = -1  # `seen` when `whole` was last asked (-1: never), and what it said then
        self.was_whole = False
        self.scan: ObjectScan | None = None  # a long text asked about again: what was read of it, how many parts
        self.scanned = 0
        self.verdict: bool | None = None  # the decode's, once the scanned brackets balance

    def add(self, fragment: str) -> str | None:
        """Record a fragment; return the new text it adds, or None when nothing more can belong to the call: its
        arguments are one whole JSON object already, and a client joining the fragments would read two (servers that
        resend the whole arguments, hermes-agent#35718; a second call sent into the first's, dyedd/lens#49)."""
        parts = self.parts
        if not parts:
            self.wrapped = is_wrapped(fragment)
        elif len(parts) == 1 and len(fragment) > self.seen and fragment.startswith(parts[0]):
            self.cumulative = True
        if self.cumulative:
            if len(fragment) <= self.seen:
                return ""
            piece = fragment[self.seen:]
        else:
            piece = fragment
        if parts and piece[0] in _OBJECT_START and parts[-1][-1] in _OBJECT_END and self._ends_whole():
            return "" if piece.isspace() else None
        parts.append(piece)
        self.seen += len(piece)
        return piece

    def _ends_whole(self) -> bool:
        """Whether the text so far is one whole object, asked by `add` before a fragment that may start another
        object (`_OBJECT_START`) once the text ends in `}` or whitespace: a text ending elsewhere (most do, mid-stream)
        is not decoded."""
        last = self.parts[-1].rstrip() or self.text().rstrip()
        return last.endswith("}") and self.whole()

    def text(self) -> str:
        return "".join(self.parts)

    def whole(self) -> bool:
        """Whether the arguments so far are one whole JSON object: no later fragment can belong to the call.

        A server that sends calls one after another asks once a call: that question decodes the text. A server that
        interleaves calls asks after each fragment of another call: the answer is kept until the text grows, a short
        text is decoded again, and a long one is read only where it grew (tool_arguments.py `ObjectScan` says why)
        and decoded once its brackets balance. Scanning in Python costs more than decoding a short text (scanning
        at every question cost bench_stream_bridges.py's `chat bridge, tools` row +170 ns a chunk), so only a long
        text that is asked about again is scanned."""
        if self.asked_at == self.seen:
            return self.was_whole
        first = self.asked_at < 0
        self.asked_at = self.seen
        if first or self.seen < _SCAN_FROM:
            self.was_whole = is_complete_object(self.text())
            return self.was_whole
        scan = self.scan
        if scan is None:
            scan = self.scan = ObjectScan()
        parts = self.parts
        for at in range(self.scanned, len(parts)):
            scan.feed(parts[at])
        self.scanned = len(parts)
        if not scan.closed:
            self.was_whole = False
        else:  # whitespace after the object changes nothing: decoded once
            if self.verdict is None:
                self.verdict = is_complete_object(self.text())
            self.was_whole = self.verdict
        return self.was_whole


class ChatStreamBridge(StreamBridge):
    """Feed it each upstream chunk (`on_chunk`), then `on_done` ([DONE]), `on_eof` or `on_error`."""

    def __init__(self, ctx: RequestContext) -> None:
        super().__init__(ctx)
        self._next_index = 0
        self._open: str | None = None  # "text" | "thinking" | "tool" | None
        self._active: _ToolCall | None = None
        self._calls: dict[int, _ToolCall] = {}
        self._order: list[_ToolCall] = []
        self._ids = ToolUseIds(ctx)
        # Calls open in `_order`'s order: the first not opened yet, and the index after the highest seen. Kept, not
        # searched for at each fragment: an answer of thousands of calls made the bridge quadratic in their number.
        self._unopened = 0
        self._next_free = 0
        self._last_call: int | None = None
        self._finish: str | None = None
        self._usage: C.ChatUsage | None = None
        self._delta_sent = False
        self._tail = ""
        self._out_chars = 0
        self._refusal = False
        self._splitter = ThinkTagSplitter() if ctx.think_tags else None

    # ---- upstream events ---------------------------------------------------------------------------------

    def on_chunk(self, chunk: C.ChatChunk) -> list[A.StreamEvent]:
        out: list[A.StreamEvent] = []
        if self._ended:
            return out
        if not self._started:
            self._start(out)
            self.upstream_model = chunk.model
        if chunk.error is not None:
            return self._emit(self._fail(out, *chat_error_failure(chunk.error)))
        for choice in chunk.choices or ():
            if choice.index:
                continue  # n > 1 is never asked for; ignore extra choices
            delta = choice.delta
            if delta is not None and self._delta_sent:
                # The answer was declared over (message_delta sent); a block now would follow it, which no
                # client accepts (BerriAI/litellm#13373: "Content block not found").
                if delta.content or delta.tool_calls or delta.reasoning_content or delta.reasoning or delta.refusal:
                    self.ctx.note("content after the end of the answer dropped")
            elif delta is not None:
                self._on_delta(delta, out)
            if choice.finish_reason:
                failed = chat_finish_failure(choice.finish_reason)
                if failed is not None:  # the generation failed: what was sent is not a whole answer
                    return self._emit(self._fail(out, *failed))
                self._finish = choice.finish_reason
                self._close_all(out)
        usage = chunk.usage
        if usage is None and chunk.x_groq is not None:  # Groq streams its usage in `x_groq.usage` only
            usage = chunk.x_groq.usage
        if usage is not None:
            self._usage = usage
            # Servers with continuous usage stats (vLLM) repeat usage after the finish chunk: one message_delta.
            if self._finish is not None and not self._delta_sent:
                self._close_all(out)  # content may have come after finish_reason
                out.append(self._message_delta())
        return out if self._cut is None else self._emit(out)  # no call per chunk unless cut

    def on_done(self) -> list[A.StreamEvent]:
        """The upstream's `[DONE]`: the answer is complete."""
        out: list[A.StreamEvent] = []
        if self._ended:
            return out
        if not self._started:
            self._start(out)
        self._close_all(out)
        if not self._delta_sent:
            out.append(self._message_delta())
        out.append(A.MessageStop())
        self._ended = True
        return self._emit(out)

    def on_eof(self) -> list[A.StreamEvent]:
        """The upstream closed the stream: complete if it said why it finished, else a failure."""
        if self._ended:
            return []
        if self._finish is not None:
            return self.on_done()
        return self.on_error(*CUT_SHORT)

    # ---- content -----------------------------------------------------------------------------------------

    def _on_delta(self, delta: C.Delta, out: list[A.StreamEvent]) -> None:
        reasoning = delta.reasoning_content or delta.reasoning
        if reasoning:
            self._thinking(reasoning, out)
        if delta.content:
            text = delta.content if isinstance(delta.content, str) else content_text(delta.content)
            if self._splitter is None:
                self._text(text, out)
            else:
                self._split(self._splitter.feed(text), out)
        if delta.refusal:
            self._refusal = True
            self._text(delta.refusal, out)
        if delta.tool_calls:
            for call_delta in delta.tool_calls:
                self._tool_delta(call_delta, out)

    def _split(self, pieces: list[tuple[str, str]], out: list[A.StreamEvent]) -> None:
        for kind, piece in pieces:
            if kind == "thinking":
                self._thinking(piece, out)
            else:
                self._text(piece, out)

    def _text(self, text: str, out: list[A.StreamEvent]) -> None:
        if not text:
            return
        if self._open != "text":
            if self._open == "tool" and text.isspace():
                # Whitespace between two argument fragments of a call (or after them) would close the call, its
                # arguments cut short, and open a stray text block; Anthropic never sends text there: dropped.
                return
            self._open_block("text", A.TextOut(text=""), out)
            self.made.said = True  # text is never empty here
        out.append(A.ContentBlockDelta(index=self._next_index - 1, delta=A.TextDelta(text=text)))
        self._out_chars += len(text)
        if self.ctx.stop_sequences:
            self._tail = (self._tail + text)[-_TAIL:]

    def _thinking(self, text: str, out: list[A.StreamEvent]) -> None:
        if self._open != "thinking":
            self._open_block("thinking", A.ThinkingOut(thinking=""), out)
        out.append(A.ContentBlockDelta(index=self._next_index - 1, delta=A.ThinkingDelta(thinking=text)))
        self._out_chars += len(text)

    # ---- tool calls --------------------------------------------------------------------------------------

    def _tool_delta(self, delta: C.ToolCallDelta, out: list[A.StreamEvent]) -> None:
        call = self._call_for(delta)
        fn = delta.function
        fragment: str | None = None
        if fn is not None:
            if fn.name and not call.name:
                call.name = fn.name
            if fn.arguments is not None:
                args = fn.arguments
                fragment = args if isinstance(args, str) else _encode(args).decode()
        if call.closed:
            if fragment and fragment.strip():
                self.ctx.note("late tool argument fragment dropped")
            return
        piece = call.add(fragment) if fragment else ""
        if piece is None:
            resent = call.text().lstrip().startswith(fragment.strip())  # type: ignore[union-attr]
            self.ctx.note("resent tool arguments dropped" if resent else
                          "tool argument fragment after the call's whole arguments dropped")
            return
        self._out_chars += len(piece)
        if call is self._active:
            if piece and not call.wrapped:
                out.append(A.ContentBlockDelta(index=call.block, delta=A.InputJsonDelta(partial_json=piece)))  # type: ignore[arg-type]
            return
        if call.name is not None:
            self._advance(out)

    def _call_for(self, delta: C.ToolCallDelta) -> _ToolCall:
        new_id = delta.id
        if new_id is not None and type(new_id) is not str:
            new_id = upstream_id(new_id)  # a number where the protocol has a string (C.CallId)
        index = delta.index
        if index is None:  # servers that send one whole call per chunk without an index
            index = self._unindexed(new_id, delta.function)
        self._last_call = index
        call = self._calls.get(index)
        if new_id:
            if call is None or (call.given_id and new_id != call.id):
                # A new id at an index in use is a new call: Ollama's /v1 and Gemini relays send every call of a
                # parallel batch at index 0, each with its own id (ollama/ollama#15457; fixed so in vercel/ai#14277).
                call = self._new_call(index)
            if not call.id:
                call.id = new_id
                call.given_id = True
        elif call is None:
            call = self._new_call(index)
        return call

    def _unindexed(self, new_id: str | None, fn: C.FunctionDelta | None) -> int:
        """The index a fragment sent without one belongs to: the last call's, unless it starts another call — it
        carries an id other than the last call's, or (servers that omit both index and id) a name other than the
        last call's (a call has one name), or the same name with arguments that open a new object once the last
        call's are whole and are not those resent. Argument fragments, and a name repeated on each fragment of one
        call (with its trailing newline, or a finish chunk restating it with no arguments), continue the last
        call."""
        last = self._last_call
        if last is None:
            return 0
        call = self._calls[last]
        if new_id:
            return self._next_free if call.id and new_id != call.id else last
        if fn is None or not fn.name or not call.name:
            return last
        if fn.name != call.name:
            return self._next_free
        given = fn.arguments
        if type(given) is not str:
            given = _encode(given).decode() if isinstance(given, dict) else ""
        opened = given.lstrip()
        if opened[:1] == "{" and call.whole() and not call.text().lstrip().startswith(opened.rstrip()):
            return self._next_free  # the same tool called again: a second object, not the first one resent
        return last

    def _new_call(self, index: int) -> _ToolCall:
        """A call that takes upstream `index` from now on (a call before it at that index keeps its place)."""
        call = _ToolCall(len(self._order))
        self._calls[index] = call
        self._order.append(call)
        self._next_free = max(self._next_free, index + 1)
        return call

    def _advance(self, out: list[A.StreamEvent]) -> None:
        """Open the next named call once the open one can take no more fragments."""
        while True:
            active = self._active
            if active is not None and not active.whole():
                return
            # Calls open in the upstream's order (the order of the JSON answer's tool_calls), each once it has a
            # name and its id or first fragment: some servers name the call a chunk before they send its id.
            order, at = self._order, self._unopened
            while at < len(order) and order[at].block is not None:
                at += 1
            self._unopened = at
            nxt = order[at] if at < len(order) else None
            if nxt is None or nxt.name is None or not (nxt.id or nxt.parts):
                return
            self._open_tool(nxt, out)

    def _open_tool(self, call: _ToolCall, out: list[A.StreamEvent]) -> None:
        # Decided once a call, as its block opens. `call.id` stays the upstream's: a server that sends calls without
        # an index is told apart by it (`_call_for`).
        block_id = self._ids.client(call.id, call.position)
        if call.id is None:
            call.id = block_id
        block = A.ToolUseOut(id=block_id, name=self.ctx.tool_names.client(call.name or ""), input={})
        self._open_block("tool", block, out)
        call.block = self._next_index - 1
        self._active = call
        if call.parts and not call.wrapped:
            out.append(A.ContentBlockDelta(index=call.block, delta=A.InputJsonDelta(partial_json=call.text())))

    # ---- blocks and the end ------------------------------------------------------------------------------

    def _open_block(self, kind: str, block: A.OutBlock, out: list[A.StreamEvent]) -> None:
        self._close(out)
        out.append(A.ContentBlockStart(index=self._next_index, content_block=block))
        self._opened(self._next_index, block)
        self._next_index += 1
        self._open = kind

    def _close(self, out: list[A.StreamEvent]) -> None:
        if self._open is None:
            return
        if self._open == "tool" and self._active is not None:
            self._close_arguments(self._active, out)
            self._active = None
        out.append(A.ContentBlockStop(index=self._next_index - 1))
        self._open = None

    def _close_all(self, out: list[A.StreamEvent]) -> None:
        if self._splitter is not None:
            self._split(self._splitter.flush(), out)
        self._close(out)
        for call in self._order:  # calls held back while another was open, and calls named only now
            if call.block is None:
                if call.name is None:
                    call.name = ""
                    self.ctx.note("tool call without a name")
                self._open_tool(call, out)
                self._close(out)

    def _message_delta(self) -> A.MessageDelta:
        self._delta_sent = True
        reason, sequence = chat_stop_reason(self._finish, bool(self._order), self._refusal, self._tail, self.ctx)
        estimate = output_estimate(self._out_chars, self.ctx)
        usage = chat_usage(self._usage, self.ctx, fallback_output=estimate)
        return self._final_delta(usage, reason, sequence)

