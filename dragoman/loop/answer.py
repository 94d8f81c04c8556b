"""An answer as the checks read it, reassembled from the Anthropic bytes the client got: its tool calls (name,
id, input, whether the block was closed), whether it said anything, and the kind of its last block.

Only what the checks need is parsed. A stream whose bytes never mention `tool_use` has no tool call to parse:
its text is found with one search (the fast path); otherwise its `data:` lines are decoded with a loose schema
that ignores every field the checks do not read."""

from __future__ import annotations

import re
from typing import Any, Union

import msgspec

from dragoman.loop.evidence import TOOL_USE
from dragoman.protocols import anthropic as A
from dragoman.redaction import redact_cut
from dragoman.translate.stream_bridge import Made, StreamBridge

# A text delta with at least one character, as both the gateway's encoder and Anthropic write it.
_SOME_TEXT = re.compile(rb'"text_delta"\s*,\s*"text"\s*:\s*"(?!")')


class _Block(msgspec.Struct):
    type: str = ""
    id: str | None = None
    name: str | None = None
    input: Any = None
    text: str | None = None


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None


class _Event(msgspec.Struct):
    type: str = ""
    index: int = 0
    content_block: _Block | None = None
    delta: _Delta | None = None


class _Message(msgspec.Struct):
    content: list[_Block] = []


_decode_event = msgspec.json.Decoder(_Event).decode
_decode_events = msgspec.json.Decoder(list[_Event]).decode
# An SSE event's payload: a line starting with "data:" (the space after the colon is JSON whitespace). Matched
# after a newline, the bytes prefixed with one: twice as fast as a MULTILINE ^ anchor.
_DATA = re.compile(rb"\ndata:([^\n]*)")
_decode_message = msgspec.json.Decoder(_Message).decode
_decode_any = msgspec.json.decode
_encode = msgspec.json.encode


class ToolCall(msgspec.Struct, gc=False):
    """One tool_use block of the answer, as the checks read it: id, name, input, and, of a call whose input is not an
    object or that a stream may have left open, raw and closed. A translated JSON answer's calls with an object input
    are its `A.ToolUseOut` blocks themselves (`from_blocks`): nothing is built for them, and the checks read only
    their id, name and input (`Call`). (Structs, not dataclasses: one is built per call the gateway reads, and a
    Struct's constructor is C.)"""

    id: str | None
    name: str
    input: Any  # the parsed input (a dict when well-formed), or None when its JSON did not parse
    raw: str | None = None  # the streamed input text, when it did not parse
    closed: bool = True  # its block was closed (content_block_stop); a JSON answer's always are


# A tool call as the checks read it: id, name, input of either; raw and closed only of a ToolCall (its docstring).
Call = Union[ToolCall, A.ToolUseOut]


class ParsedAnswer(msgspec.Struct, gc=False):
    tool_calls: list[Call] = []
    has_text: bool = False
    last_block: str | None = None  # the type of the answer's last content block
    readable: bool = True  # False: the bytes could not be read as an Anthropic answer


def from_json(body: bytes) -> ParsedAnswer:
    """A JSON answer's content."""
    try:
        message = _decode_message(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # (RecursionError: nested too deep)
        return ParsedAnswer(readable=False)
    out = ParsedAnswer()
    for block in message.content:
        _take(out, block.type, block.text, block.id, block.name, block.input)
    return out


def from_blocks(content: list[A.OutBlock]) -> ParsedAnswer:
    """A translated answer's content, from the blocks the gateway encoded for the client (no parse)."""
    calls: list[Call] = []
    has_text = False
    last = None
    for block in content:  # (locals, the answer built once at the end: it runs for every translated answer)
        kind = type(block)
        if kind is A.ToolUseOut:
            last = "tool_use"
            given = block.input
            calls.append(block if isinstance(given, dict) else ToolCall(block.id, block.name, None, repr(given)[:200]))
        elif kind is A.TextOut:
            last = "text"
            if block.text:
                has_text = True
        else:
            last = "thinking"
    return ParsedAnswer(calls, has_text, last)


def _take(out: ParsedAnswer, kind: str, text: str | None, id: str | None, name: str | None, input: Any) -> None:
    out.last_block = kind
    if kind == "text":
        out.has_text = out.has_text or bool(text)
    elif kind == "tool_use":
        args = input if isinstance(input, dict) else None
        out.tool_calls.append(ToolCall(id, name or "", args, None if args is not None else repr(input)[:200]))


def from_stream(chunks: list[bytes]) -> ParsedAnswer:
    """A streamed answer's content, from the SSE bytes the client got."""
    data = b"".join(chunks)
    if TOOL_USE not in data:  # fast path: no tool call to reassemble
        if _SOME_TEXT.search(data):
            return ParsedAnswer(has_text=True, last_block="text")
        if b'"text_delta"' not in data:
            return ParsedAnswer(last_block=_last_block_type(data))
    return _parse_events(data)


def _last_block_type(data: bytes) -> str | None:
    start = data.rfind(b"content_block_start")
    if start < 0:
        return None
    match = re.search(rb'"content_block"\s*:\s*\{\s*"type"\s*:\s*"([a-z_]+)"', data[start:])
    return match.group(1).decode() if match else None


def _events(data: bytes) -> list[_Event]:
    """The stream's events: its `data:` payloads decoded in one call as a JSON array (~3x cheaper than one decode
    per line); when one does not decode, line by line, that one skipped."""
    lines = _DATA.findall(b"\n" + data)
    try:
        return _decode_events(b"[" + b",".join(lines) + b"]")
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # (RecursionError: nested too deep)
        pass
    events = []
    for line in lines:
        try:
            events.append(_decode_event(line))
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            continue
    return events


def _parse_events(data: bytes) -> ParsedAnswer:
    built = _Reassembly()
    for event in _events(data):
        kind = event.type
        if kind == "content_block_start" and event.content_block is not None:
            block = event.content_block
            built.start(event.index, block.type, block.text, block.id, block.name, block.input)
        elif kind == "content_block_delta" and event.delta is not None:
            built.delta(event.index, event.delta.type, event.delta.text, event.delta.partial_json)
        elif kind == "content_block_stop":
            built.stop(event.index)
    return built.answer()


def from_events(events: list[A.StreamEvent], inputs: dict[int, Any] | None = None) -> ParsedAnswer:
    """A translated stream's content, from the events the gateway encoded for the client (`StreamFacts` fed once)."""
    facts = StreamFacts(inputs)
    facts.see(events)
    return facts.answer()


class StreamFacts:
    """What the checks read of a translated stream: its tool calls (id, name, whether the block closed, the input),
    whether any text was said, and the kind of the last block.

    Read, once the stream is over, from what the bridge that made the client's events noted as it opened each block
    (translate/stream_bridge.py `Made`: `follow`), and the inputs it kept: nothing per event. Showing the checks every
    batch of events cost ~0.1 µs a batch, ~10 µs for a 60-chunk text answer (bench/RESULTS.md, "Tool schemas as
    sent"). Only when the bridge cuts the answer at the client's max_tokens does the client get less than the bridge
    made: then the relay shows each batch it encodes (`see`), and these are read from the events themselves. Neither
    keeps the events until the stream ends: a stream's event objects, held to the end and freed there, cache-cold,
    cost more than reading them (bench/RESULTS.md, "Halving the loop's cost").

    `inputs`: what the bridge kept of each call it closed, by block index (RequestContext.kept_arguments, filled
    just before the block's stop event is made): its input object, or the text the client got when that is not a
    JSON object. With it, a call's argument deltas are not gathered: the call takes its input when its block stops
    (its block reached the client whole: StreamCut holds a tool_use block until it is complete), and a call whose
    block never stopped is one the checks do not judge (the stream failed in it, or the client stopped reading).
    Without it (`from_events`), the deltas are put back together. `see` dispatches on the events' struct types
    inline: when it runs, it runs for every event."""

    __slots__ = ("_out", "_calls", "_parts", "_inputs", "_made")

    def __init__(self, inputs: dict[int, Any] | None = None) -> None:
        self._inputs = inputs
        self._made: Made | None = None  # what the bridge of the try the client gets made, when it does not cut
        self._out = ParsedAnswer()
        self._calls: dict[int, ToolCall] = {}
        # The open calls' argument deltas, gathered only when no bridge keeps the calls' inputs.
        self._parts: dict[int, list[str]] | None = {} if inputs is None else None

    def follow(self, bridge: StreamBridge) -> bool:
        """A try's bridge makes the client's events from now on; True when it may cut them, so that each batch must be
        shown (`see`)."""
        self._made = None if bridge.cuts else bridge.made
        return bridge.cuts

    def clear(self) -> None:
        """Forget what was seen (a try whose events the client never got), and the inputs kept with it."""
        self._out, self._calls = ParsedAnswer(), {}
        if self._parts is not None:
            self._parts = {}
        if self._inputs:
            self._inputs.clear()

    def see(self, events: list[A.StreamEvent]) -> None:
        out, calls, parts = self._out, self._calls, self._parts
        for event in events:
            kind = type(event)
            if kind is A.ContentBlockDelta:
                delta = event.delta
                if type(delta) is A.InputJsonDelta:
                    if parts is not None and delta.partial_json:
                        held = parts.get(event.index)
                        if held is not None:
                            held.append(delta.partial_json)
                elif not out.has_text and type(delta) is A.TextDelta and delta.text:
                    out.has_text = True
            elif kind is A.ContentBlockStart:
                block = event.content_block
                if type(block) is A.ToolUseOut:
                    out.last_block = "tool_use"
                    call = ToolCall(block.id, block.name, None, closed=False)
                    calls[event.index] = call
                    out.tool_calls.append(call)
                    if parts is not None:
                        given = block.input
                        parts[event.index] = [_encode(given).decode()] if isinstance(given, dict) and given else []
                elif type(block) is A.TextOut:
                    out.last_block = "text"
                    out.has_text = out.has_text or bool(block.text)
                else:
                    out.last_block = "thinking"
            elif kind is A.ContentBlockStop:
                call = calls.get(event.index)
                if call is not None:
                    call.closed = True
                    if parts is None:
                        kept = self._inputs.get(event.index)  # type: ignore[union-attr]
                        if type(kept) is str:
                            call.input, call.raw = _arguments(kept)
                        else:
                            call.input = kept

    def answer(self) -> ParsedAnswer:
        """The stream's content so far: as its bridge made it, or as seen (without kept inputs, each call put back
        together from its deltas)."""
        if self._made is not None:
            return self._from(self._made)
        parts = self._parts
        if parts:
            calls = self._calls
            for index, held in parts.items():
                call = calls[index]
                call.input, call.raw = _arguments("".join(held))
            parts.clear()
        return self._out

    def _from(self, made: Made) -> ParsedAnswer:
        inputs = self._inputs or {}
        calls = []
        for index, tool_use_id, name in made.tool_blocks:
            kept = inputs.get(index, _OPEN)
            if kept is _OPEN:  # its block never stopped
                calls.append(ToolCall(tool_use_id, name, None, closed=False))
            elif type(kept) is str:  # the text the client got, not a JSON object
                calls.append(ToolCall(tool_use_id, name, *_arguments(kept)))
            else:
                calls.append(ToolCall(tool_use_id, name, kept))
        return ParsedAnswer(calls, made.said, made.last_block)


_OPEN: Any = object()


class _Reassembly:
    """A streamed answer's blocks put back together, event by event."""

    __slots__ = ("out", "calls", "parts")

    def __init__(self) -> None:
        self.out = ParsedAnswer()
        self.calls: dict[int, ToolCall] = {}
        self.parts: dict[int, list[str]] = {}

    def start(self, index: int, kind: str, text: str | None, id: str | None, name: str | None, input: Any) -> None:
        out = self.out
        out.last_block = kind
        if kind == "tool_use":
            call = ToolCall(id, name or "", None, closed=False)
            self.calls[index] = call
            self.parts[index] = parts = []
            out.tool_calls.append(call)
            if isinstance(input, dict) and input:
                parts.append(_encode(input).decode())
        elif kind == "text" and text:
            out.has_text = True

    def delta(self, index: int, kind: str | None, text: str | None, partial_json: str | None) -> None:
        if kind == "text_delta" and text:
            self.out.has_text = True
        elif kind == "input_json_delta" and partial_json and index in self.parts:
            self.parts[index].append(partial_json)

    def stop(self, index: int) -> None:
        call = self.calls.get(index)
        if call is not None:
            call.closed = True

    def answer(self) -> ParsedAnswer:
        for index, call in self.calls.items():
            call.input, call.raw = _arguments("".join(self.parts[index]))
        return self.out


def stream_content(data: bytes) -> list[dict[str, Any]]:
    """A streamed answer's text and tool_use blocks, put back together from the SSE bytes the client got, as a JSON
    answer's `content` would carry them (what the judge is shown: loop/judge.py). A call's input is its arguments'
    object, or their text when they are not one (a cut stream's last call); thinking blocks are left out."""
    blocks: dict[int, dict[str, Any]] = {}
    parts: dict[int, list[str]] = {}  # each open block's text or argument pieces, joined once at the end
    for event in _events(data):
        kind, index = event.type, event.index
        if kind == "content_block_start" and event.content_block is not None:
            block = event.content_block
            if block.type == "text":
                blocks[index], parts[index] = {"type": "text", "text": ""}, [block.text or ""]
            elif block.type == "tool_use":
                blocks[index] = {"type": "tool_use", "id": block.id, "name": block.name or "", "input": {}}
                given = block.input
                parts[index] = [_encode(given).decode()] if isinstance(given, dict) and given else []
        elif kind == "content_block_delta" and event.delta is not None and index in parts:
            piece = event.delta.text if event.delta.type == "text_delta" else event.delta.partial_json
            if piece:
                parts[index].append(piece)
    for index, block in blocks.items():
        joined = "".join(parts[index])
        if block["type"] == "text":
            block["text"] = joined
        else:
            value, raw = _arguments(joined)
            block["input"] = value if value is not None else raw
    return [blocks[index] for index in sorted(blocks)]


def _arguments(text: str) -> tuple[Any, str | None]:
    if not text or text.isspace():
        return {}, None
    try:
        value = _decode_any(text)
    except (msgspec.DecodeError, RecursionError):  # (nested deeper than the decoder follows: not an object it reads)
        return None, redact_cut(text, 200)  # redacted before the cut: a key cut in two would be shown in part
    return (value, None) if isinstance(value, dict) else (None, redact_cut(text, 200))
