"""Tool-call arguments from OpenAI-compatible upstreams → an Anthropic `input` object.

The spec says a JSON string holding an object; servers also send objects, JSON wrapped in a second JSON
string, truncated JSON, or trailing junk. One function decides for the JSON and the streamed paths; the
stream bridges share the streaming rules: arguments that start as a JSON string are held and sent unwrapped
at the end (`is_wrapped`, `closing_fragment`), and arguments a truncated stream left open are closed then.
Whatever the form, arguments nested deeper than the client could send back (MAX_DEPTH) are invalid arguments.
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
# Arguments nested deeper than this are invalid arguments, however they decode. The client sends each tool_use back
# in its next request, its input 5 levels in (body, messages, a message, its content, the block), and a request nested
# deeper than json_depth's limit (~947 levels from the server on CPython 3.11) is a 400: an input 960 deep was
# answered, and the conversation could never continue. 512 keeps well under that limit less the envelope, with room
# for a Python that leaves the decoder fewer levels (json_depth's docstring); real tools' inputs nest a few levels.
MAX_DEPTH = 512
_SHALLOW_BELOW = 2 * MAX_DEPTH + 2  # JSON nested N deep holds N opening brackets and N closing ones
# Repairing arguments longer than this is refused (they are invalid): a repair decodes the text up to twice more and
# reads it between, each pass costing with what it holds (15 MiB of `"k": 1, ` held the event loop 0.7 s), for
# arguments a broken answer sent. Whole arguments are decoded once, at any length.
REPAIR_LIMIT = 1 << 20


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
        return (raw, None) if _flat(raw) or not _nested_deeper(raw, MAX_DEPTH, None) else ({}, NOTE_INVALID)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None
    if not isinstance(raw, str):
        return {}, NOTE_INVALID
    try:
        value = _decode_json(raw)
    except msgspec.DecodeError:
        return _repair(raw)
    if isinstance(value, dict):
        if len(raw) < _SHALLOW_BELOW or _within_depth(raw, value):  # (the test inlined: every call passes it)
            return value, None
        return {}, NOTE_INVALID
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


def _within_depth(text: str, value: dict[str, Any]) -> bool:
    """Whether `value`, decoded from `text`, nests at most MAX_DEPTH levels, at a small fraction of the decode's cost.

    JSON nested N deep holds N opening brackets and N closing ones, so a text shorter than 2N, or one with fewer
    than N opening brackets (those inside strings count too, which only errs towards walking), cannot be that deep;
    nor can an object none of whose values is an object or an array. Counting costs ~1 ns a character, walking the
    value ~40 ns a value: the walk settles the usual arguments, a few values and long strings (a Write's file); past
    a value per 64 characters the text is dense and counting is the cheaper test. Only a text with more than
    MAX_DEPTH opening brackets and that many values is walked to the end."""
    if len(text) < _SHALLOW_BELOW or _flat(value):
        return True
    deeper = _nested_deeper(value, MAX_DEPTH, len(text) // 64)
    if deeper is None:
        if text.count("{") + text.count("[") <= MAX_DEPTH:
            return True
        deeper = _nested_deeper(value, MAX_DEPTH, None)
    return not deeper


_NESTING = frozenset((dict, list))


def _flat(value: dict[str, Any]) -> bool:
    """No value of the object is an object or an array (the usual arguments; one C pass over the values)."""
    return _NESTING.isdisjoint(map(type, value.values()))


def _nested_deeper(value: dict[str, Any], levels: int, budget: int | None) -> bool | None:
    """True when `value` nests objects and arrays more than `levels` deep (`value` itself is the first); None when
    it holds more than `budget` values (None: no budget) before that is known."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        container, depth = stack.pop()
        if depth > levels:
            return True
        items = container.values() if type(container) is dict else container
        seen += len(items)
        if budget is not None and seen > budget:
            return None
        for item in items:
            kind = type(item)
            if kind is dict or kind is list:
                stack.append((item, depth + 1))
    return False


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
        return (None, None, whole) if _within_depth(text, whole) else (None, NOTE_INVALID, None)
    closed = close_truncated(stripped)
    repaired = _object(closed) if closed is not None else None
    if closed is not None and repaired is not None and _within_depth(closed, repaired):
        return closed[len(stripped) :], NOTE_REPAIRED, repaired
    return None, NOTE_INVALID, None


def _repair(raw: str) -> tuple[dict[str, Any], str | None]:
    text = raw.strip()
    if len(text) > REPAIR_LIMIT:
        return {}, NOTE_INVALID
    try:  # one object followed by junk (some servers append a second copy or a stray token)
        value, _ = json.JSONDecoder().raw_decode(text)
        if isinstance(value, dict):
            return (value, NOTE_REPAIRED) if _within_depth(text, value) else ({}, NOTE_INVALID)
    except (ValueError, RecursionError):  # (nested deeper than Python's json follows)
        pass
    closed = close_truncated(text)
    if closed is not None:
        try:
            value = _decode_json(closed)
            if isinstance(value, dict) and _within_depth(closed, value):
                return value, NOTE_REPAIRED
        except msgspec.DecodeError:
            pass
    return {}, NOTE_INVALID


_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_CLOSER = str.maketrans("{[", "}]")
_OPENS = {ord("]"): ord("["), ord("}"): ord("{")}


def close_truncated(text: str) -> str | None:
    """Close the strings, arrays and objects a truncated JSON text left open; None if it is not JSON-like, is longer
    than REPAIR_LIMIT, or would nest deeper than MAX_DEPTH once closed (its arguments are invalid either way).

    In C steps, not a Python step a character (a 15 MiB open string held the event loop 0.4 s): with the escaped
    backslashes and quotes gone, every quote left opens or closes a string, so splitting at the quotes leaves the
    text outside strings at the even places and an odd count of quotes says the text was cut in a string; what is
    outside is reduced to its brackets. (A backslash outside a string is read differently than a parser would, and
    the text cannot be valid JSON then, closed or not.) `ObjectScan` reads streamed pieces as they come; this reads
    one text once."""
    if not text.startswith("{") or len(text) > REPAIR_LIMIT:
        return None
    # Runs of backslashes pair from their first, as str.replace does, left to right.
    parts = text.replace("\\\\", "").replace('\\"', "").split('"')
    cut_in_string = len(parts) % 2 == 0
    outside = "".join(parts[::2])
    # UTF-8 puts no ASCII byte inside a multi-byte character: deleting bytes keeps exactly the brackets.
    unclosed = _unclosed(outside.encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS))
    if unclosed is None or len(unclosed) > MAX_DEPTH:
        return None
    tail = ('"' if cut_in_string else "") + unclosed[::-1].decode().translate(_CLOSER)
    return text + tail if tail else None


def _unclosed(brackets: bytes) -> bytes | None:
    """The opening brackets left open, outermost first; None when a bracket closes one it does not match."""
    # Innermost pairs go in C, a pass a level, while a pass removes a 32nd of what is left (a pass costs about what
    # the loop below does on a 32nd of it): siblings go at once, nesting with few siblings is left to the loop.
    while brackets:
        shorter = brackets.replace(b"[]", b"").replace(b"{}", b"")
        done = 32 * (len(brackets) - len(shorter)) < len(brackets)
        brackets = shorter
        if done:
            break
    if b"]" not in brackets and b"}" not in brackets:
        return brackets
    stack = bytearray()
    for byte in brackets:
        opens = _OPENS.get(byte)
        if opens is None:
            stack.append(byte)
        elif not stack or stack.pop() != opens:
            return None
    return bytes(stack)
