"""What a Messages request becomes on an OpenAI Chat route: the key, model, messages and token budget sent
upstream, usage asked for when streaming, tool choice and parallel calls mapped, and server tools refused before
anything reaches the upstream."""

from __future__ import annotations

import anthropic
import pytest

from tests.gateway import ROUTE_NAME, UPSTREAM_KEY
from tests.routing_helpers import USER_HI
from tests.sdk_helpers import tool
from tests.upstreams import ChatReply

pytestmark = pytest.mark.timeout(60)


def test_upstream_request_for_a_simple_turn(client, chat_upstream):
    chat_upstream.script(ChatReply(text="ok"))
    client.messages.create(model=ROUTE_NAME, max_tokens=4000, system="You are terse.", messages=USER_HI)
    request = chat_upstream.requests[-1]
    assert request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    body = request.body
    assert body["model"] == "gpt-5"
    assert body["messages"] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]
    assert body["max_completion_tokens"] == 4000 and "max_tokens" not in body
    assert not body.get("stream")


def test_max_tokens_1_probe_succeeds(client, chat_upstream):
    # Claude Code's /model check asks for max_tokens 1; GPT-5-class upstreams reject tiny budgets (design §8).
    chat_upstream.script(ChatReply(text="h", finish_reason="length"))
    message = client.messages.create(model=ROUTE_NAME, max_tokens=1, messages=USER_HI)
    assert message.type == "message" and message.stop_reason == "max_tokens"
    assert chat_upstream.last_body["max_completion_tokens"] >= 1


def test_upstream_request_when_streaming_asks_for_usage(client, chat_upstream):
    chat_upstream.script(ChatReply(text="ok"))
    with client.messages.stream(model=ROUTE_NAME, max_tokens=100, messages=USER_HI) as stream:
        stream.get_final_message()
    body = chat_upstream.last_body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_tool_choice_and_parallel_calls_map_to_openai(client, chat_upstream):
    chat_upstream.script(ChatReply(text="ok"))
    tools = [tool("Bash", {"command": {}})]
    client.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI, tools=tools)
    assert chat_upstream.last_body.get("parallel_tool_calls", True) is True, "never serialise Claude Code's fan-outs"
    client.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI, tools=tools,
                           tool_choice={"type": "any", "disable_parallel_tool_use": True})
    assert chat_upstream.last_body["tool_choice"] == "required"
    assert chat_upstream.last_body["parallel_tool_calls"] is False
    client.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI, tools=tools,
                           tool_choice={"type": "tool", "name": "Bash"})
    assert chat_upstream.last_body["tool_choice"] == {"type": "function", "function": {"name": "Bash"}}


def test_server_tools_are_refused_with_a_clear_400(client, chat_upstream):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI,
                               tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}])
    assert "web_search" in caught.value.body["error"]["message"]
    assert chat_upstream.requests == []
