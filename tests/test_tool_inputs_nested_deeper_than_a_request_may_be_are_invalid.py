"""A tool input the gateway answers with is one it accepts back: the client sends each tool_use in its next request,
and a request nested deeper than json_depth's limit (~947 levels) is a 400. An upstream's arguments nested 960 deep
decoded (the decoder follows ~970), were answered, and the conversation could never continue. Arguments nested
deeper than MAX_DEPTH (512) are now invalid arguments however they arrive — a JSON string, an object, wrapped in a
string, repaired, or streamed: `{}` and the "tool arguments invalid" note, as for arguments that are not JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_responses as R
from dragoman.translate.chat.stream import ChatStreamBridge, _ToolCall
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.response import tool_use_block
from dragoman.translate.tool_arguments import MAX_DEPTH, NOTE_INVALID, closing_fragment, parse_arguments
from dragoman.translate.tool_ids import ToolUseIds
from dragoman.translate.tool_names import ToolNameMap
from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, config_yaml, route
from tests.upstreams import ChatReply, ScriptedChatUpstream

ROUTE = "gpt-5-via-gateway"
DEEP = 600  # deeper than MAX_DEPTH, and decoded at any stack depth a test runs at (the decoder follows ~970 levels)
TOOLS = [{"name": "Read", "input_schema": {"type": "object"}}]


def _nested(levels: int) -> str:
    """An object nested `levels` deep, as JSON text."""
    return '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)


def _nested_object(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def _ctx() -> RequestContext:
    return RequestContext(message_id="msg_deep", requested_model="m", tool_names=ToolNameMap(64))


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, DEEP])
def test_arguments_nested_deeper_are_invalid(levels: int) -> None:
    assert parse_arguments(_nested(MAX_DEPTH)) == (_nested_object(MAX_DEPTH), None)  # the deepest kept
    assert parse_arguments(_nested_object(MAX_DEPTH)) == (_nested_object(MAX_DEPTH), None)
    assert parse_arguments(_nested(levels)) == ({}, NOTE_INVALID)
    assert parse_arguments(json.dumps(_nested(levels))) == ({}, NOTE_INVALID)  # wrapped in a JSON string
    assert parse_arguments(_nested_object(levels)) == ({}, NOTE_INVALID)  # an object, as some servers send


def test_arguments_deep_among_many_values_are_invalid() -> None:
    # Many values for their length: the depth is told by counting brackets, then walking.
    many = ", ".join(f'"k{i}": [{i}, {{"x": {i}}}]' for i in range(400))
    assert parse_arguments("{" + many + "}")[1] is None
    assert parse_arguments("{" + many + ', "deep": ' + _nested(MAX_DEPTH) + "}") == ({}, NOTE_INVALID)


def test_repairs_never_make_arguments_nested_deeper() -> None:
    assert parse_arguments('{"a": ' + "[" * DEEP) == ({}, NOTE_INVALID)  # truncated: the closing would nest 601
    assert parse_arguments('{"a": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + ", ") == ({}, NOTE_INVALID)
    assert parse_arguments(_nested(DEEP) + "junk") == ({}, NOTE_INVALID)  # one object, then junk


def test_a_stream_closing_deep_arguments_notes_them_invalid() -> None:
    assert closing_fragment(_nested(DEEP), wrapped=False) == (None, NOTE_INVALID, None)
    assert closing_fragment('{"a": ' + "[" * DEEP, wrapped=False) == (None, NOTE_INVALID, None)
    assert closing_fragment(json.dumps(_nested(DEEP)), wrapped=True) == (None, NOTE_INVALID, {})
    # The stream bridge keeps the note for the answer's record.
    bridge, call = ChatStreamBridge(_ctx()), _ToolCall()
    call.block = 0
    call.add('{"a": ' + "[" * DEEP)
    out: list[A.StreamEvent] = []
    bridge._close_arguments(call, out)
    assert out == [] and bridge.ctx.notes == [NOTE_INVALID]


def test_a_responses_answer_carries_deep_arguments_as_an_empty_input() -> None:
    ctx = _ctx()
    item = R.OutputItem(type="function_call", name="Read", call_id="call_1", arguments=_nested(DEEP))
    assert tool_use_block(item, 0, ToolUseIds(ctx), ctx).input == {}
    assert ctx.notes == [NOTE_INVALID]


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[Gateway, ScriptedChatUpstream]]:
    with ScriptedChatUpstream() as chat:
        with run_gateway(config_yaml([route(ROUTE, chat.base_url, retry={"attempts": 1})]), env=KEYS_ENV) as gateway:
            yield gateway, chat


def _post(gateway: Gateway, messages: list[dict]) -> tuple[int, dict]:
    conn = gateway.connection()
    body = {"model": ROUTE, "max_tokens": 32000, "tools": TOOLS, "messages": messages}
    conn.request("POST", "/v1/messages", json.dumps(body), {"content-type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_the_conversation_continues_after_a_deep_tool_call(env) -> None:  # noqa: ANN001
    gateway, chat = env
    for levels, kept in [(MAX_DEPTH, True), (960, False)]:  # (960: the deepest the server's decode follows, ~970)
        chat.reset(ChatReply(tool_calls=[("call_1", "Read", _nested(levels))]))
        turn = [{"role": "user", "content": "read it"}]
        status, answer = _post(gateway, turn)
        assert status == 200
        assert answer["content"][0]["input"] == (_nested_object(levels) if kept else {})

        chat.reset(ChatReply(text="done"))
        turn += [{"role": "assistant", "content": answer["content"]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "ok"}]}]
        status, answer = _post(gateway, turn)
        assert status == 200, (levels, answer)
        assert answer["content"] == [{"type": "text", "text": "done"}]
