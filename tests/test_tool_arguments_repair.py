"""Tool-call arguments as upstreams really send them (design §3, §8): objects, JSON in an extra JSON string,
truncated JSON, trailing junk. Unambiguous cases are repaired; the rest become {} and are reported."""

from __future__ import annotations

import json

import pytest

from dragoman.translate.tool_arguments import is_complete_object, parse_arguments


@pytest.mark.parametrize(
    ("raw", "expected", "note"),
    [
        ('{"command": "ls"}', {"command": "ls"}, None),
        ({"command": "ls"}, {"command": "ls"}, None),
        ("", {}, None),
        ("   ", {}, None),
        (None, {}, None),
        (json.dumps('{"command": "ls"}'), {"command": "ls"}, "tool arguments unwrapped"),
        (json.dumps(json.dumps('{"a": 1}')), {"a": 1}, "tool arguments unwrapped"),
        ('{"file_path": "/a.py", "content": "x = [1, {"', None, None),
        ('{"file_path": "/a.py", "content": "print(', {"file_path": "/a.py", "content": "print("}, "tool arguments repaired"),
        ('{"a": [1, 2', {"a": [1, 2]}, "tool arguments repaired"),
        ('{"a": "say \\"hi', {"a": 'say "hi'}, "tool arguments repaired"),
        ('{"a": 1}{"a": 1}', {"a": 1}, "tool arguments repaired"),
        ('{"a": 1}\n', {"a": 1}, None),
        ("not json", {}, "tool arguments invalid"),
        ("[1, 2]", {}, "tool arguments invalid"),
        ("42", {}, "tool arguments invalid"),
        (42, {}, "tool arguments invalid"),
    ],
)
def test_parse_arguments(raw: object, expected: dict | None, note: str | None) -> None:
    value, got_note = parse_arguments(raw)
    if expected is None:  # truncated inside a nested string: only promise a dict and a note
        assert isinstance(value, dict)
        assert got_note is not None
        return
    assert value == expected
    assert got_note == note


def test_unicode_survives() -> None:
    assert parse_arguments('{"path": "/tmp/ü ✓.txt"}') == ({"path": "/tmp/ü ✓.txt"}, None)


@pytest.mark.parametrize(
    ("text", "complete"),
    [('{"a": 1}', True), ('{"a": 1', False), ("{}", True), ('"{}"', False), ("[]", False), ("", False)],
)
def test_is_complete_object(text: str, complete: bool) -> None:
    assert is_complete_object(text) is complete
