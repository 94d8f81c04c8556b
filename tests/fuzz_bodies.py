"""Hypothesis strategies for request bodies that attack the Messages endpoints.

A body starts well typed and Messages-shaped: user, assistant and system turns with every block type (and
unknown ones), tools, tool_choice, thinking, metadata, unknown fields. Then a few of its fields, anywhere in
the tree, get a JSON value of another type or disappear; and a body may carry nesting a thousand levels deep
somewhere, a string of a million characters, or bytes that are not UTF-8 or not JSON.
`request_body(data, models, stream)` draws one: the bytes to send and the name of the attack on top.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from hypothesis import strategies as st

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    _SCALARS, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=8,
)
TEXT = st.text(max_size=40)
IDS = st.sampled_from(["toolu_1", "toolu_2", "call_3"]) | st.text(max_size=8)
SIGNATURES = st.one_of(TEXT, st.from_regex(r"dgm1\.[A-Za-z0-9_-]{0,24}\.[A-Za-z0-9_-]{43}", fullmatch=True))
USER_IDS = st.one_of(
    TEXT,
    st.builds(json.dumps, st.dictionaries(st.sampled_from(["device_id", "account_uuid", "session_id", "x"]),
                                          JSON_VALUES, max_size=3)),
    st.from_regex(r"user_[0-9a-f]{4}_account_[0-9a-f-]{0,8}_session_[0-9a-f-]{1,8}", fullmatch=True),
)
_CACHE_CONTROL = st.fixed_dictionaries({"type": st.just("ephemeral")})  # a new dict each time: bodies get mutated
_EXTRA = st.fixed_dictionaries({}, optional={
    "cache_control": _CACHE_CONTROL, "is_error": st.booleans(), "citations": JSON_VALUES,
    "zz": JSON_VALUES,
})

# Where `request_body` may put something deep or huge: paths into the body, list indexes included.
PLACES = (
    ("zz_unknown",), ("context_management",), ("system",), ("metadata", "user_id"),
    ("messages", 0, "content"), ("messages", -1, "content", 0, "input"), ("messages", -1, "content", 0, "content"),
    ("tools", 0, "input_schema"), ("tools", 0, "input_schema", "properties"),
)
DEPTHS = (50, 400, 900, 960, 1000, 1200, 5000, 100_000)
_PLACEHOLDER = "\x00deep\x00"


def _with_extra(required: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    return st.builds(lambda block, extra: {**extra, **block}, st.fixed_dictionaries(required), _EXTRA)


def _source() -> st.SearchStrategy:
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("base64"), "media_type": st.sampled_from(["image/png", "application/pdf"]),
                               "data": st.sampled_from(["iVBORw0KGgo=", "JVBERi0="])}),
        st.fixed_dictionaries({"type": st.just("url"), "url": st.just("https://example.com/a.png")}),
        st.fixed_dictionaries({"type": st.just("text"), "media_type": st.just("text/plain"), "data": TEXT}),
        st.fixed_dictionaries({"type": st.just("content"), "content": st.lists(
            st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}), max_size=2)}),
        st.fixed_dictionaries({"type": st.just("file"), "file_id": IDS}),
        st.fixed_dictionaries({"type": st.text(max_size=8)}),
    )


def _blocks(content: st.SearchStrategy) -> st.SearchStrategy:
    """One content block: every known type with its fields, or an unknown type with any fields."""
    return st.one_of(
        _with_extra({"type": st.just("text"), "text": TEXT}),
        _with_extra({"type": st.sampled_from(["image", "document"]), "source": _source()}),
        _with_extra({"type": st.just("tool_use"), "id": IDS, "name": TEXT, "input": JSON_VALUES}),
        _with_extra({"type": st.just("tool_result"), "tool_use_id": IDS, "content": content}),
        _with_extra({"type": st.just("thinking"), "thinking": TEXT, "signature": SIGNATURES}),
        _with_extra({"type": st.just("redacted_thinking"), "data": TEXT}),
        _with_extra({"type": st.just("tool_reference"), "tool_name": TEXT}),
        _with_extra({"type": st.just("search_result"), "source": TEXT, "title": TEXT, "content": content}),
        _with_extra({"type": st.sampled_from(["server_tool_use", "web_search_tool_result", "mcp_tool_use"]) | st.text(max_size=10)}),
    )


_LEAF = _blocks(TEXT)
_INNER = _blocks(TEXT | st.lists(_LEAF, max_size=3))
BLOCKS = _blocks(TEXT | st.lists(_INNER, max_size=3))
MESSAGES = st.fixed_dictionaries({
    "role": st.sampled_from(["user", "user", "assistant", "system"]),
    "content": TEXT | st.lists(BLOCKS, min_size=1, max_size=4),
})
TOOLS = st.one_of(
    st.fixed_dictionaries({"name": TEXT, "input_schema": st.fixed_dictionaries(
        {"type": st.just("object"), "properties": st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=2)})},
        optional={"description": TEXT, "defer_loading": st.booleans(), "cache_control": _CACHE_CONTROL}),
    st.fixed_dictionaries({"name": TEXT, "type": st.sampled_from(["web_search_20250305", "bash_20250124", "custom"])}),
)


def _top(models: list[str]) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {
            "model": st.sampled_from(models) | st.text(max_size=10),
            "max_tokens": st.sampled_from([1, 1024, 128_000, 2**31, 2**64]) | st.integers(-3, 100_000),
            "messages": st.lists(MESSAGES, min_size=1, max_size=4),
        },
        optional={
            "system": TEXT | st.lists(BLOCKS, max_size=2),
            "tools": st.lists(TOOLS, max_size=3),
            "tool_choice": st.fixed_dictionaries(
                {"type": st.sampled_from(["auto", "any", "tool", "none"])},
                optional={"name": TEXT, "disable_parallel_tool_use": st.booleans()}),
            "temperature": st.floats(0, 2),
            "top_p": st.floats(0, 1),
            "top_k": st.integers(0, 2**64),
            "stop_sequences": st.lists(TEXT, max_size=5),
            "thinking": st.fixed_dictionaries(
                {"type": st.sampled_from(["enabled", "disabled", "adaptive"]) | TEXT},
                optional={"budget_tokens": st.integers(-1, 2**64), "display": TEXT}),
            "output_config": st.fixed_dictionaries({}, optional={"effort": st.sampled_from(["low", "medium", "max"]) | TEXT}),
            "metadata": st.fixed_dictionaries({}, optional={"user_id": USER_IDS}),
            "context_management": JSON_VALUES,
            "zz_unknown": JSON_VALUES,
        },
    )


class Body(NamedTuple):
    raw: bytes
    attack: str  # none | deep | huge | bytes


def request_body(data: st.DataObject, models: list[str], stream: bool | None) -> Body:
    """One attacking body; `stream` True/False sets the field (well typed), None leaves it to the draw."""
    body: dict[str, Any] = data.draw(_top(models), label="body")
    if stream is not None:
        body["stream"] = stream
    for _ in range(data.draw(st.sampled_from([0, 0, 1, 1, 2, 3]), label="mutations")):
        _mutate(data, body)
    deep = None
    attack = data.draw(st.sampled_from(["none"] * 6 + ["deep", "deep", "huge", "bytes", "bytes"]), label="attack")
    if attack == "deep":
        deep = _nest(data.draw(st.sampled_from(["array", "object", "tool_result"]), label="nest"),
                     data.draw(st.sampled_from(DEPTHS), label="depth"))
        _place(body, data.draw(st.sampled_from(PLACES), label="deep at"), _PLACEHOLDER)
    elif attack == "huge":
        size = data.draw(st.sampled_from([300_000, 1_000_000, 1_100_000]), label="size")
        unit = data.draw(st.sampled_from(["x", "ab cd ", "中文 ", "\U0001f642"]), label="unit")
        _place(body, data.draw(st.sampled_from(PLACES), label="huge at"), (unit * (size // len(unit) + 1))[:size])
    raw = json.dumps(body, ensure_ascii=False).encode()
    if deep is not None:
        raw = raw.replace(json.dumps(_PLACEHOLDER).encode(), deep, 1)
    if attack == "bytes":
        raw = _corrupt(data, raw)
    return Body(raw, attack)


def _mutate(data: st.DataObject, body: dict[str, Any]) -> None:
    """Give one field anywhere in the body a value of any JSON type, or remove it."""
    places = list(_places(body))
    parent, key = data.draw(st.sampled_from(places), label="mutate at")
    if isinstance(parent, dict) and data.draw(st.booleans(), label="remove"):
        del parent[key]
    else:
        parent[key] = data.draw(JSON_VALUES, label="wrong value")


def _places(node: Any):
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield node, key
        yield from _places(child)


def _place(body: dict[str, Any], path: tuple, value: Any) -> None:
    """Put `value` at `path`, or under an unknown top-level key when the body has no such place."""
    node: Any = body
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            node = None
        if not isinstance(node, (dict, list)):
            body["zz_unknown"] = value
            return
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and node:
        node[last] = value
    else:
        body["zz_unknown"] = value


def _nest(kind: str, depth: int) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    levels = depth // 2  # each tool_result level is a list and an object
    return b'[{"type":"tool_result","tool_use_id":"t","content":' * levels + b'"x"' + b"}]" * levels


def _corrupt(data: st.DataObject, raw: bytes) -> bytes:
    at = data.draw(st.integers(0, len(raw)), label="at")
    how = data.draw(st.sampled_from(["insert", "replace", "truncate"]), label="corrupt")
    if how == "truncate":
        return raw[:at]
    junk = data.draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\\", b'"'])
                     | st.binary(min_size=1, max_size=4), label="junk")
    return raw[:at] + junk + raw[at + (1 if how == "replace" else 0):]
