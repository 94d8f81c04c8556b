"""Each OpenAI Chat answer shape becomes the Anthropic message it means: content blocks, stop reason and usage,
the same whether the client asks for JSON, streams through the `anthropic` SDK, or reads the SSE events itself.
The gateway is a process, the upstream the scripted Chat server, every assertion about real sockets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.anthropic_events import check_sse_grammar, reassemble
from tests.gateway import ROUTE_NAME
from tests.routing_helpers import USER_HI, sdk
from tests.sdk_helpers import SIX_BLOCKS, SIX_REPLY_CALLS, SIX_TOOLS, ask, blocks, stream_raw, tool
from tests.upstreams import ChatReply, RawStream
from tests.upstreams.chat_chunks import ROLE_CHUNK, chat_chunk, tool_call_delta, usage_chunk

pytestmark = pytest.mark.timeout(60)


class _AnyId:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __repr__(self) -> str:
        return "<any non-empty id>"


ANY_ID = _AnyId()


# ---- scenarios: one upstream answer, the Anthropic message it must become -------------------------


@dataclass
class Scenario:
    reply: Any
    expected: list[tuple]
    stop_reason: str
    tools: list[dict] = field(default_factory=list)


SCENARIOS: dict[str, Scenario] = {
    "text": Scenario(ChatReply(text="The answer is 42. Anything else?"),
                     [("text", "The answer is 42. Anything else?")], "end_turn"),
    "six_parallel_tool_calls": Scenario(ChatReply(tool_calls=SIX_REPLY_CALLS), SIX_BLOCKS, "tool_use", SIX_TOOLS),
    "text_then_tool_calls": Scenario(ChatReply(text="Let me look.", tool_calls=SIX_REPLY_CALLS[:2]),
                                     [("text", "Let me look."), *SIX_BLOCKS[:2]], "tool_use", SIX_TOOLS),
    "reasoning_becomes_thinking_before_text": Scenario(
        ChatReply(reasoning="The user greets me; greet back.", text="Hello!"),
        [("thinking", "The user greets me; greet back."), ("text", "Hello!")], "end_turn"),
    "finish_length_is_max_tokens": Scenario(ChatReply(text="This answer was cut", finish_reason="length"),
                                            [("text", "This answer was cut")], "max_tokens"),
    "content_filter_is_refusal": Scenario(ChatReply(text="I can't", finish_reason="content_filter"),
                                          [("text", "I can't")], "refusal"),
    "arguments_wrapped_in_a_json_string": Scenario(
        ChatReply(tool_calls=[("call_w_Qm7tRz4kLp2Vw8Nf", "Bash", json.dumps(json.dumps({"command": "pwd"})))]),
        [("tool_use", "call_w_Qm7tRz4kLp2Vw8Nf", "Bash", {"command": "pwd"})], "tool_use", [tool("Bash", {"command": {}})]),
    "empty_arguments_are_an_empty_input": Scenario(
        ChatReply(tool_calls=[("call_e_Qm7tRz4kLp2Vw8Nf", "TaskList", "")]),
        [("tool_use", "call_e_Qm7tRz4kLp2Vw8Nf", "TaskList", {})], "tool_use", [tool("TaskList", {})]),
}

STREAM_ONLY_SCENARIOS: dict[str, Scenario] = {
    "several_tool_calls_in_one_chunk": Scenario(
        RawStream([ROLE_CHUNK, chat_chunk({"tool_calls": [
            tool_call_delta(0, id="call_a_Qm7tRz4kLp2Vw8Nf", name="Read", args='{"file_path": "/a"}'),
            tool_call_delta(1, id="call_b_Qm7tRz4kLp2Vw8Nf", name="Read", args='{"file_path": "/b"}'),
            tool_call_delta(2, id="call_c_Qm7tRz4kLp2Vw8Nf", name="Bash", args='{"command": "ls"}'),
        ]}), chat_chunk({}, "tool_calls"), usage_chunk()]),
        [("tool_use", "call_a_Qm7tRz4kLp2Vw8Nf", "Read", {"file_path": "/a"}), ("tool_use", "call_b_Qm7tRz4kLp2Vw8Nf", "Read", {"file_path": "/b"}),
         ("tool_use", "call_c_Qm7tRz4kLp2Vw8Nf", "Bash", {"command": "ls"})], "tool_use",
        [tool("Read", {"file_path": {}}), tool("Bash", {"command": {}})]),
    "interleaved_fragments_across_indices": Scenario(
        RawStream([ROLE_CHUNK,
                   chat_chunk({"tool_calls": [tool_call_delta(0, id="call_x_Qm7tRz4kLp2Vw8Nf", name="Read", args="")]}),
                   chat_chunk({"tool_calls": [tool_call_delta(1, id="call_y_Qm7tRz4kLp2Vw8Nf", name="Bash", args="")]}),
                   chat_chunk({"tool_calls": [tool_call_delta(0, args='{"file_')]}),
                   chat_chunk({"tool_calls": [tool_call_delta(1, args='{"comm')]}),
                   chat_chunk({"tool_calls": [tool_call_delta(0, args='path": "/x"}')]}),
                   chat_chunk({"tool_calls": [tool_call_delta(1, args='and": "make"}')]}),
                   chat_chunk({}, "tool_calls"), usage_chunk()]),
        [("tool_use", "call_x_Qm7tRz4kLp2Vw8Nf", "Read", {"file_path": "/x"}), ("tool_use", "call_y_Qm7tRz4kLp2Vw8Nf", "Bash", {"command": "make"})],
        "tool_use", [tool("Read", {"file_path": {}}), tool("Bash", {"command": {}})]),
    "cumulative_argument_snapshots": Scenario(
        RawStream([ROLE_CHUNK,
                   chat_chunk({"tool_calls": [tool_call_delta(0, id="call_s_Qm7tRz4kLp2Vw8Nf", name="Bash", args="")]}),
                   chat_chunk({"tool_calls": [tool_call_delta(0, args='{"command": "ls')]}),
                   chat_chunk({"tool_calls": [tool_call_delta(0, args='{"command": "ls -la"')]}),
                   chat_chunk({"tool_calls": [tool_call_delta(0, args='{"command": "ls -la"}')]}),
                   chat_chunk({}, "tool_calls"), usage_chunk()]),
        [("tool_use", "call_s_Qm7tRz4kLp2Vw8Nf", "Bash", {"command": "ls -la"})], "tool_use", [tool("Bash", {"command": {}})]),
    "late_tool_call_id": Scenario(
        RawStream([ROLE_CHUNK,
                   chat_chunk({"tool_calls": [{"index": 0, "type": "function",
                                               "function": {"name": "Bash", "arguments": ""}}]}),
                   chat_chunk({"tool_calls": [tool_call_delta(0, id="call_late_Qm7tRz4kLp2Vw8Nf", args='{"command"')]}),
                   chat_chunk({"tool_calls": [tool_call_delta(0, args=': "whoami"}')]}),
                   chat_chunk({}, "tool_calls"), usage_chunk()]),
        [("tool_use", ANY_ID, "Bash", {"command": "whoami"})], "tool_use", [tool("Bash", {"command": {}})]),
    "usage_chunk_with_finish_reason_in_the_same_chunk": Scenario(
        RawStream([ROLE_CHUNK, chat_chunk({"content": "Hi"}),
                   {**chat_chunk({}, "stop"), "usage": usage_chunk()["usage"]}]),
        [("text", "Hi")], "end_turn"),
}


def _request(scenario: Scenario, **extra: Any) -> dict:
    body: dict[str, Any] = {"model": ROUTE_NAME, "max_tokens": 1024, "messages": USER_HI, **extra}
    if scenario.tools:
        body["tools"] = scenario.tools
    return body


# ---- answers: non-streamed, streamed through the SDK, streamed on the wire ---------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_non_streamed_answer(name, client, chat_upstream):
    scenario = SCENARIOS[name]
    chat_upstream.script(scenario.reply)
    message = client.messages.create(**_request(scenario))
    assert blocks(message.content) == scenario.expected
    assert message.stop_reason == scenario.stop_reason
    assert message.role == "assistant" and message.type == "message" and message.model == ROUTE_NAME


@pytest.mark.parametrize("name", [*SCENARIOS, *STREAM_ONLY_SCENARIOS])
def test_streamed_answer_through_the_sdk(name, client, chat_upstream):
    scenario = {**SCENARIOS, **STREAM_ONLY_SCENARIOS}[name]
    chat_upstream.script(scenario.reply)
    with client.messages.stream(**_request(scenario)) as stream:
        message = stream.get_final_message()
    assert blocks(message.content) == scenario.expected
    assert message.stop_reason == scenario.stop_reason
    assert message.model == ROUTE_NAME


@pytest.mark.parametrize("name", [*SCENARIOS, *STREAM_ONLY_SCENARIOS])
def test_streamed_events_are_well_formed(name, gateway, chat_upstream):
    scenario = {**SCENARIOS, **STREAM_ONLY_SCENARIOS}[name]
    chat_upstream.script(scenario.reply)
    status, events = stream_raw(gateway, **_request(scenario))
    assert status == 200, events
    assert check_sse_grammar(events) == "message_stop"
    message = reassemble([data for _, data in events])
    assert blocks(message["content"]) == scenario.expected
    assert message["stop_reason"] == scenario.stop_reason


# ---- usage, and reasoning written inline as <think> tags -------------------------------------------


def test_text_answer_usage_and_model(client, chat_upstream):
    chat_upstream.script(ChatReply(text="Hello from upstream.", usage=(120, 7, 100)))
    message = client.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert blocks(message.content) == [("text", "Hello from upstream.")]
    assert message.stop_reason == "end_turn" and message.model == ROUTE_NAME
    assert message.id
    assert message.usage.input_tokens == 20
    assert message.usage.cache_read_input_tokens == 100
    assert message.usage.output_tokens == 7


def test_streamed_usage_is_real_at_the_end(client, chat_upstream):
    chat_upstream.script(ChatReply(text="Hello from upstream.", usage=(120, 7, 100)))
    with client.messages.stream(model=ROUTE_NAME, max_tokens=100, messages=USER_HI) as stream:
        message = stream.get_final_message()
    assert message.usage.input_tokens == 20
    assert message.usage.cache_read_input_tokens == 100
    assert message.usage.output_tokens == 7


@pytest.mark.parametrize("stream", [False, True])
def test_think_tags_become_thinking_on_routes_that_ask(stream, gateway_for, chat_upstream):
    # An opt-in per route (translation.think_tags): only reasoning models on OpenAI-compatible servers emit them.
    reasoning_server = gateway_for(chat_upstream, translation={"think_tags": True})
    chat_upstream.script(ChatReply(text="<think>Short greeting needed.</think>Hello!", pieces=9))
    with sdk(reasoning_server, api_key="x", timeout=30) as reasoning_client:
        message = ask(reasoning_client, stream, max_tokens=100)
    assert blocks(message.content) == [("thinking", "Short greeting needed."), ("text", "Hello!")]
