"""Tool-call arguments from OpenAI-compatible upstreams → an Anthropic `input` object.

The spec says a JSON string holding an object; servers also send objects, JSON wrapped in a second JSON
string, truncated JSON, or trailing junk. One function decides for the JSON and the streamed paths.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

_decode = msgspec.json.decode


def parse_arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    """Return (input, note): note is None when the arguments were well-formed, else what was repaired."""
    if isinstance(raw, dict):
        return raw, None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None
    if not isinstance(raw, str):
        return {}, "tool arguments invalid"
    try:
        value = _decode(raw)
    except msgspec.DecodeError:
        return _repair(raw)
    if isinstance(value, dict):
        return value, None
    if isinstance(value, str):  # arguments wrapped in an extra JSON string
        inner, note = parse_arguments(value)
        return inner, note or "tool arguments unwrapped"
    return {}, "tool arguments invalid"


def is_complete_object(text: str) -> bool:
    """True when `text` is one whole JSON object: no later fragment can belong to it."""
    try:
        return isinstance(_decode(text), dict)
    except msgspec.DecodeError:
        return False


def _repair(raw: str) -> tuple[dict[str, Any], str | None]:
    text = raw.strip()
    try:  # one object followed by junk (some servers append a second copy or a stray token)
        value, _ = json.JSONDecoder().raw_decode(text)
        if isinstance(value, dict):
            return value, "tool arguments repaired"
    except ValueError:
        pass
    closed = _close_truncated(text)
    if closed is not None:
        try:
            value = _decode(closed)
            if isinstance(value, dict):
                return value, "tool arguments repaired"
        except msgspec.DecodeError:
            pass
    return {}, "tool arguments invalid"


def _close_truncated(text: str) -> str | None:
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
