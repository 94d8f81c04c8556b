"""Tool-call arguments from OpenAI-compatible upstreams → an Anthropic `input` object.

The spec says a JSON string holding an object; servers also send objects, JSON wrapped in a second JSON
string, truncated JSON, or trailing junk. One function decides for the JSON and the streamed paths; the
stream bridges share the streaming rules: arguments that start as a JSON string are held and sent unwrapped
at the end (`is_wrapped`, `closing_fragment`), and arguments a truncated stream left open are closed then.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from dragoman.protocols import json_depth

# The notes this module leaves (RequestContext.note): the correctness loop's checks read them (loop/checks.py).
NOTE_INVALID = "tool arguments invalid"
NOTE_REPAIRED = "tool arguments repaired"
NOTE_UNWRAPPED = "tool arguments unwrapped"

_decode = msgspec.json.decode
_encode = msgspec.json.encode
# A JSON text nests at most as deep as it is long: one shorter than this is far from the decoder's limit (~900
# levels from the event loop's stack: protocols/json_depth.py) and is decoded plainly. A longer one is decoded with
# the headroom json_depth keeps for the walks after it (encoding the client's answer), so arguments nested deeper than
# the gateway follows are invalid arguments, never a RecursionError and a 500 (an upstream's call with arguments
# 1,200 levels deep was one, JSON or streamed).
_PLAIN_BELOW = 512


def _decode_json(text: str) -> Any:
    """`msgspec.json.decode(text)`; arguments nested too deep raise DecodeError, as arguments that are not JSON do."""
    if len(text) < _PLAIN_BELOW:
        return _decode(text)
    try:
        return json_depth.decode(_decode, text)  # type: ignore[arg-type]
    except json_depth.TooDeep as exc:
        raise msgspec.DecodeError(str(exc)) from None


def parse_arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    """Return (input, note): note is None when the arguments were well-formed, else what was repaired."""
    if isinstance(raw, dict):
        return raw, None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None
    if not isinstance(raw, str):
        return {}, NOTE_INVALID
    try:
        value = _decode_json(raw)
    except msgspec.DecodeError:
        return _repair(raw)
    if isinstance(value, dict):
        return value, None
    if isinstance(value, str):  # arguments wrapped in an extra JSON string
        inner, note = parse_arguments(value)
        return inner, note or NOTE_UNWRAPPED
    return {}, NOTE_INVALID


def is_complete_object(text: str) -> bool:
    """True when `text` is one whole JSON object: no later fragment can belong to it."""
    return _object(text) is not None


_NON_SPACE = re.compile(r"[^ \t\r\n]")  # JSON's whitespace only (`\S` would pass \xa0, \u2028, …)
_IN_STRING = re.compile(r'["\\]')  # what ends a JSON string or escapes its next character
_STRUCTURE = re.compile(r'[{}\[\]"]')  # outside strings, what opens or closes something


class ObjectScan:
    """Whether streamed text can be one whole JSON object, read once, piece by piece: the brackets' depth outside
    strings, and whether anything but whitespace comes before the object or after it. A necessary condition only
    (`closed` says the brackets balance, not that the JSON is valid): `is_complete_object` decides, once `closed`.

    Why: the Chat bridge asks whether the open call is whole each time another call's fragment arrives (servers that
    interleave parallel calls), and decoding the open call's whole text each time made a stream quadratic in its
    arguments (160 KB of arguments in 4-character fragments: 4.6 s of the event loop). Fed only what is new, the
    scan is linear; it reads only a long text asked about again (translate/chat/stream.py `_ToolCall.whole`)."""

    __slots__ = ("depth", "opened", "in_string", "escaped", "junk")

    def __init__(self) -> None:
        self.depth = 0
        self.opened = False  # the object's `{` was read
        self.in_string = False
        self.escaped = False  # a string's backslash ended the last piece: this piece's first character is escaped
        self.junk = False  # not one object: something else first, or anything but whitespace after it

    @property
    def closed(self) -> bool:
        """The object's brackets balance, with nothing but whitespace after it so far."""
        return self.opened and self.depth == 0 and not self.junk

    def feed(self, piece: str) -> None:
        at, end = 0, len(piece)
        if self.escaped and end:
            at, self.escaped = 1, False
        while at < end and not self.junk:
            if self.in_string:
                found = _IN_STRING.search(piece, at)
                if found is None:
                    return
                at = found.end()
                if found.group() == '"':
                    self.in_string = False
                elif at < end:
                    at += 1  # the escaped character
                else:
                    self.escaped = True
            elif self.depth == 0:  # before the object, or after it
                found = _NON_SPACE.search(piece, at)
                if found is None:
                    return
                if self.opened or found.group() != "{":
                    self.junk = True
                    return
                self.opened, self.depth, at = True, 1, found.end()
            else:
                found = _STRUCTURE.search(piece, at)
                if found is None:
                    return
                at = found.end()
                char = found.group()
                if char == '"':
                    self.in_string = True
                elif char in "{[":
                    self.depth += 1
                else:
                    self.depth -= 1


def _object(text: str) -> dict[str, Any] | None:
    try:
        value = _decode_json(text)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def is_wrapped(first_fragment: str) -> bool:
    """True when streamed arguments open as a JSON string (wrapped twice): they are held until the call ends."""
    return first_fragment.lstrip().startswith('"')


def closing_fragment(text: str, wrapped: bool) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """(fragment, note, input) when a streamed call's block stops: the fragment to send first (the whole input when
    it was held wrapped, or the brackets a truncated stream left open), the note that says what was repaired or that
    it could not be, and the input object the client's arguments now decode to (None when they do not). The input
    costs nothing more: telling whether the arguments are whole decodes them."""
    if wrapped:
        value, note = parse_arguments(text)
        return (_encode(value).decode() if value else None), note, value
    stripped = text.strip()
    if not stripped:
        return None, None, {}
    whole = _object(text)
    if whole is not None:
        return None, None, whole
    closed = close_truncated(stripped)
    repaired = _object(closed) if closed is not None else None
    if closed is not None and repaired is not None:
        return closed[len(stripped) :], NOTE_REPAIRED, repaired
    return None, NOTE_INVALID, None


def _repair(raw: str) -> tuple[dict[str, Any], str | None]:
    text = raw.strip()
    try:  # one object followed by junk (some servers append a second copy or a stray token)
        value, _ = json.JSONDecoder().raw_decode(text)
        if isinstance(value, dict):
            return value, NOTE_REPAIRED
    except (ValueError, RecursionError):  # (nested deeper than Python's json follows)
        pass
    closed = close_truncated(text)
    if closed is not None:
        try:
            value = _decode_json(closed)
            if isinstance(value, dict):
                return value, NOTE_REPAIRED
        except msgspec.DecodeError:
            pass
    return {}, NOTE_INVALID


def close_truncated(text: str) -> str | None:
    """Close the strings, arrays and objects a truncated JSON text left open, or None if it is not JSON-like."""
    if not text.startswith("{"):
        return None
    stack: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack:
                return None
            stack.pop()
    tail = ('"' if in_string else "") + "".join(reversed(stack))
    return text + tail if tail else None
