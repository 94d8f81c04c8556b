"""Property test (design §7): any valid Anthropic request translates to an OpenAI Chat request in which every tool
message answers a call of the assistant message right before its run of tool messages, every call is answered,
no cache_control is left, and tool names fit OpenAI's 64 characters."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.translate.chat.request import translate_request
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from tests.property_strategies import CLIENT_NAMES, SETTINGS, texts, tool_arguments
from tests.wire import messages_request

_ids = st.sampled_from([f"toolu_{n}" for n in range(8)])
_tool_name = st.sampled_from(CLIENT_NAMES)
_png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


@st.composite
def _assistant_content(draw: st.DrawFn, used: set[str]) -> Any:
    if draw(st.booleans()):
        return draw(texts)
    blocks: list[dict[str, Any]] = []
    for kind in draw(st.lists(st.sampled_from(["text", "tool_use", "tool_use", "thinking", "server_tool_use"]), max_size=5)):
        if kind == "text":
            blocks.append({"type": "text", "text": draw(texts)})
        elif kind == "tool_use":
            free = [f"toolu_{n}" for n in range(40) if f"toolu_{n}" not in used]
            call_id = draw(st.sampled_from(free[:8]))
            used.add(call_id)
            blocks.append({"type": "tool_use", "id": call_id, "name": draw(_tool_name), "input": draw(tool_arguments)})
        elif kind == "thinking":
            blocks.append({"type": "thinking", "thinking": draw(texts), "signature": "s"})
        else:
            blocks.append({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}})
    return blocks


@st.composite
def _user_content(draw: st.DrawFn, used: set[str]) -> Any:
    if draw(st.booleans()):
        return draw(texts)
    known = sorted(used) or ["toolu_0"]
    blocks: list[dict[str, Any]] = []
    for kind in draw(st.lists(st.sampled_from(["text", "image", "tool_result", "tool_result", "unknown"]), max_size=6)):
        if kind == "text":
            blocks.append({"type": "text", "text": draw(texts), **({"cache_control": {"type": "ephemeral"}} if draw(st.booleans()) else {})})
        elif kind == "image":
            blocks.append({"type": "image", "source": _png})
        elif kind == "unknown":
            blocks.append({"type": "future_block", "whatever": 1})
        else:
            content = draw(st.one_of(
                texts,
                st.lists(st.one_of(
                    st.builds(lambda t: {"type": "text", "text": t}, texts),
                    st.just({"type": "image", "source": _png}),
                    st.builds(lambda n: {"type": "tool_reference", "tool_name": n}, _tool_name),
                ), max_size=3),
            ))
            blocks.append({"type": "tool_result", "tool_use_id": draw(st.sampled_from(known) | _ids), "content": content, "is_error": draw(st.booleans())})
    return blocks


@st.composite
def requests(draw: st.DrawFn) -> A.MessagesRequest:
    used: set[str] = set()
    messages = []
    for role in draw(st.lists(st.sampled_from(["user", "user", "assistant", "assistant", "system"]), min_size=1, max_size=8)):
        if role == "assistant":
            content = draw(_assistant_content(used))
        elif role == "user":
            content = draw(_user_content(used))
        else:
            content = draw(texts | st.just([{"type": "text", "text": "env", "cache_control": {"type": "ephemeral"}}]))
        messages.append({"role": role, "content": content})
    tools = [
        {"name": n, "description": "d", "input_schema": {"type": "object", "properties": {}}, **({"defer_loading": True} if draw(st.booleans()) else {})}
        for n in draw(st.lists(_tool_name, unique=True, max_size=4))
    ]
    body = {"model": "claude-opus-4-8", "max_tokens": draw(st.integers(1, 200000)), "messages": messages, "tools": tools,
            "system": draw(st.none() | texts), "stream": draw(st.booleans())}
    return messages_request(body)


def _keys(value: Any) -> set[str]:
    """Every object key anywhere in decoded JSON."""
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


@SETTINGS
@given(requests(), st.sampled_from(["gpt-5", "gpt-4.1", "qwen3-coder"]))
def test_any_request_translates_to_valid_tool_pairing(req: A.MessagesRequest, model: str) -> None:
    ctx = RequestContext(message_id="msg_req", requested_model=req.model, tool_names=ToolNameMap(64))
    chat = translate_request(req, model, TranslationOptions(), ctx)
    encoded = msgspec.json.encode(chat)
    data = json.loads(encoded)
    assert "cache_control" not in _keys(data)  # as a field; generated text may well say "cache_control"
    assert msgspec.json.encode(msgspec.json.decode(encoded, type=C.ChatRequest)) == encoded  # a valid ChatRequest
    pending: list[str] = []
    for message in data["messages"]:
        if message["role"] == "tool":
            # Every tool message answers a call of the assistant message right before its run of tool messages.
            assert pending, f"tool message {message['tool_call_id']} answers no call: {data['messages']}"
            assert message["tool_call_id"] == pending.pop(0)
            assert isinstance(message["content"], str) and message["content"]
        else:
            assert not pending, f"calls {pending} left unanswered: {data['messages']}"
            calls = message.get("tool_calls", [])
            assert message["role"] == "assistant" or not calls
            pending = [c["id"] for c in calls]
            assert len(set(pending)) == len(pending)
            for call in calls:
                assert isinstance(json.loads(call["function"]["arguments"]), dict)
                assert len(call["function"]["name"]) <= 64
    assert not pending
    assert data["max_completion_tokens"] >= 1
