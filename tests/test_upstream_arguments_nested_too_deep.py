"""An upstream's tool call whose arguments nest deeper than the decoder follows (~900 levels: msgspec recurses in C
under Python's recursion limit) never costs a 500, over real sockets. Arguments sent as a JSON string (the spec's
form) are invalid arguments: a JSON answer carries the call with `{}` as its input; a stream, which sent the
fragments as they came, ends cleanly. Arguments sent as an object make the upstream's answer one the gateway cannot
read: a 529 it may fall back from. Nothing in the gateway's log is a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, config_yaml, route
from tests.upstreams import ChatReply, RawStream, ScriptedChatUpstream
from tests.upstreams.openai_chat import RawBody

pytestmark = pytest.mark.timeout(60)

ROUTE = "gpt-5-via-gateway"
TOOLS = [{"name": "Read", "input_schema": {"type": "object"}}]


def _deep(levels: int) -> str:
    return '{"a":' + "[" * levels + "]" * levels + "}"


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[Gateway, ScriptedChatUpstream]]:
    with ScriptedChatUpstream() as chat:
        with run_gateway(config_yaml([route(ROUTE, chat.base_url, retry={"attempts": 1})]), env=KEYS_ENV) as gateway:
            yield gateway, chat
            log = gateway.stderr_path.read_text()
            assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]


def _post(gateway: Gateway, stream: bool) -> tuple[int, bytes]:
    conn = gateway.connection()
    body = {"model": ROUTE, "max_tokens": 100, "stream": stream, "tools": TOOLS,
            "messages": [{"role": "user", "content": "read it"}]}
    conn.request("POST", "/v1/messages", json.dumps(body), {"content-type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


@pytest.mark.parametrize("levels", [1_200, 100_000])
def test_string_arguments_nested_too_deep_are_invalid_arguments(env, levels: int) -> None:  # noqa: ANN001
    gateway, chat = env
    chat.reset(ChatReply(tool_calls=[("call_1", "Read", _deep(levels)), ("call_2", "Read", '{"p": 1}')]))
    status, body = _post(gateway, stream=False)
    assert status == 200
    assert [block["input"] for block in json.loads(body)["content"]] == [{}, {"p": 1}]

    # Streamed, the fragments went out as they came (a stream cannot take back what it sent): the stream ends
    # cleanly, and the next call is whole.
    chat.reset(ChatReply(tool_calls=[("call_1", "Read", _deep(levels)), ("call_2", "Read", '{"p": 1}')], pieces=3))
    status, body = _post(gateway, stream=True)
    assert status == 200 and body.rstrip().endswith(b'data: {"type":"message_stop"}')
    events = [json.loads(line[6:]) for line in body.split(b"\n") if line.startswith(b"data: ")]
    second = [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta" and e["index"] == 1]
    assert json.loads("".join(second)) == {"p": 1}


@pytest.mark.parametrize("levels", [1_200, 100_000])
def test_object_arguments_nested_too_deep_make_an_unreadable_answer(env, levels: int) -> None:  # noqa: ANN001
    gateway, chat = env
    call = '{"id":"c1","type":"function","function":{"name":"Read","arguments":' + _deep(levels) + "}}"
    answer = ('{"id":"x","object":"chat.completion","model":"gpt","choices":[{"index":0,"finish_reason":"tool_calls",'
              '"message":{"role":"assistant","content":null,"tool_calls":[' + call + "]}}]}")
    chat.reset(RawBody(answer.encode(), "application/json"))
    status, body = _post(gateway, stream=False)
    assert status == 529 and json.loads(body)["error"]["type"] == "overloaded_error"

    chunk = ('data: {"id":"x","object":"chat.completion.chunk","model":"gpt","choices":[{"index":0,"delta":'
             '{"role":"assistant","tool_calls":[' + call.replace('"id":"c1",', '"index":0,"id":"c1",') + "]}}]}\n\n")
    chat.reset(RawStream([chunk.encode()]))
    status, body = _post(gateway, stream=True)  # nothing had gone out yet: a 529, as for the JSON answer
    error = json.loads(body)["error"]
    assert status == 529 and error["type"] == "overloaded_error" and "nested deeper" in error["message"]
