"""Closing what a truncated answer left open costs about what decoding it does, never a Python step a character: the
repair walked every character in Python, and a 15 MiB answer whose arguments were cut inside a string held the event
loop 0.4 s (0.8 s for open brackets, 0.7 s for many keys; the decode itself ~25 ms). Now whole strings go in one
split at the quotes and sibling brackets in bytes replacements, so the Python steps a repair takes do not grow with the text;
and arguments longer than REPAIR_LIMIT are not repaired at all (invalid, as arguments no repair can save)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from dragoman.translate import tool_arguments
from dragoman.translate.tool_arguments import NOTE_INVALID, REPAIR_LIMIT, close_truncated, closing_fragment, parse_arguments

# Truncated arguments of about n characters, by what fills them.
SHAPES: dict[str, Callable[[int], str]] = {
    "open string": lambda n: '{"file_path": "a.py", "content": "' + "x = [1, {2}]\\n" * (n // 14),
    "open string of escaped quotes": lambda n: '{"a": "' + 'say \\"hi\\" ' * (n // 11 + 1),
    "open brackets": lambda n: '{"a": ' + "[" * n,
    "many keys": lambda n: '{"a": 1, ' + '"k": "v", ' * (n // 10),
    "sibling arrays": lambda n: '{"a": [' + "[1, {}], " * (n // 9),
}


def _python_steps(call: Callable[[], Any]) -> int:
    """How many lines of tool_arguments.py the call runs."""
    steps = 0

    def count(frame, event, arg):  # noqa: ANN001, ANN202
        nonlocal steps
        steps += event == "line"
        return count

    def enter(frame, event, arg):  # noqa: ANN001, ANN202
        return count if frame.f_globals.get("__name__") == tool_arguments.__name__ else None

    previous = sys.gettrace()
    sys.settrace(enter)
    try:
        call()
    finally:
        sys.settrace(previous)
    return steps


@pytest.mark.parametrize("shape", SHAPES)
def test_closing_truncated_arguments_takes_as_many_python_steps_at_any_length(shape: str) -> None:
    short, long = SHAPES[shape](1_000), SHAPES[shape](100_000)
    assert close_truncated(long) is not None or shape == "open brackets"  # (100,000 open: nested too deep)
    assert _python_steps(lambda: close_truncated(long)) == _python_steps(lambda: close_truncated(short))


@pytest.mark.parametrize("shape", SHAPES)
def test_arguments_too_long_to_repair_are_invalid_without_a_repair(shape: str, monkeypatch) -> None:  # noqa: ANN001
    text = SHAPES[shape](REPAIR_LIMIT + 10)
    assert close_truncated(text) is None
    assert closing_fragment(text, wrapped=False) == (None, NOTE_INVALID, None)

    def no_repair(*args: object) -> None:
        raise AssertionError("a repair was attempted")

    monkeypatch.setattr(tool_arguments, "close_truncated", no_repair)
    monkeypatch.setattr(json.JSONDecoder, "raw_decode", no_repair)
    assert parse_arguments(text) == ({}, NOTE_INVALID)
