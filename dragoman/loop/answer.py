"""An answer as the checks read it, reassembled from the Anthropic bytes the client got: its tool calls (name,
id, arguments, whether the block was closed), whether it said anything, and the kind of its last block.

Only what the checks need is parsed. A stream whose bytes never mention `tool_use` has no tool call to parse:
its text is found with one search (the fast path); otherwise its `data:` lines are decoded with a loose schema
that ignores every field the checks do not read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from dragoman.loop.evidence import TOOL_USE

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
_decode_message = msgspec.json.Decoder(_Message).decode
_decode_any = msgspec.json.decode


@dataclass(slots=True)
class ToolCall:
    """One tool_use block of the answer."""

    id: str | None
    name: str
    arguments: Any  # the parsed input (a dict when well-formed), or None when its JSON did not parse
    raw: str | None = None  # the streamed input text, when it did not parse
    closed: bool = True  # its block was closed (content_block_stop); a JSON answer's always are


@dataclass(slots=True)
class ParsedAnswer:
    tool_calls: list[ToolCall] = field(default_factory=list)
    has_text: bool = False
    last_block: str | None = None  # the type of the answer's last content block
    readable: bool = True  # False: the bytes could not be read as an Anthropic answer


def from_json(body: bytes) -> ParsedAnswer:
    """A JSON answer's content."""
    try:
        message = _decode_message(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ParsedAnswer(readable=False)
    out = ParsedAnswer()
    for block in message.content:
        out.last_block = block.type
        if block.type == "text":
            out.has_text = out.has_text or bool(block.text)
        elif block.type == "tool_use":
            args = block.input if isinstance(block.input, dict) else None
            out.tool_calls.append(ToolCall(block.id, block.name or "", args,
                                           None if args is not None else repr(block.input)[:200]))
    return out


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


def _parse_events(data: bytes) -> ParsedAnswer:
    out = ParsedAnswer()
    calls: dict[int, ToolCall] = {}
    parts: dict[int, list[str]] = {}
    for line in data.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        try:
            event = _decode_event(line[5:])
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        kind = event.type
        if kind == "content_block_start" and event.content_block is not None:
            block = event.content_block
            out.last_block = block.type
            if block.type == "tool_use":
                call = ToolCall(block.id, block.name or "", None, closed=False)
                calls[event.index] = call
                parts[event.index] = []
                out.tool_calls.append(call)
                if isinstance(block.input, dict) and block.input:
                    parts[event.index].append(msgspec.json.encode(block.input).decode())
            elif block.type == "text" and block.text:
                out.has_text = True
        elif kind == "content_block_delta" and event.delta is not None:
            delta = event.delta
            if delta.type == "text_delta" and delta.text:
                out.has_text = True
            elif delta.type == "input_json_delta" and delta.partial_json and event.index in parts:
                parts[event.index].append(delta.partial_json)
        elif kind == "content_block_stop" and event.index in calls:
            calls[event.index].closed = True
    for index, call in calls.items():
        text = "".join(parts[index])
        call.arguments, call.raw = _arguments(text)
    return out


def _arguments(text: str) -> tuple[Any, str | None]:
    if not text.strip():
        return {}, None
    try:
        value = _decode_any(text)
    except msgspec.DecodeError:
        return None, text[:200]
    return (value, None) if isinstance(value, dict) else (None, text[:200])
