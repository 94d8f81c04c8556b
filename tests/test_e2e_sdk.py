"""End to end: the official `anthropic` SDK (and raw HTTP where the SDK hides the wire) against a gateway
process whose upstream is the scripted OpenAI Chat server. Every assertion here is about real sockets."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import anthropic
import pytest

from tests.gateway import ROUTE_NAME, UPSTREAM_KEY, Gateway, free_port
from tests.shared_fixtures import CLAUDE_CODE_FIXTURES
from tests.upstreams import ChatReply, Disconnect, ErrorReply, Hang, RawStream

pytestmark = pytest.mark.timeout(60)

FIXTURES = CLAUDE_CODE_FIXTURES

USER_HI = [{"role": "user", "content": "hi"}]


# ---- helpers --------------------------------------------------------------------------------------


@pytest.fixture
def client(gateway: Gateway):
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="anything", max_retries=0, timeout=30) as sdk:
        yield sdk


def sse_events(raw: bytes) -> list[tuple[str, dict]]:
    """(event name, decoded data) for each SSE event in `raw`."""
    events = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:"):].lstrip())
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


_DELTA_FOR_BLOCK = {
    "text": {"text_delta"},
    "tool_use": {"input_json_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "redacted_thinking": set(),
}


def assert_well_formed(events: list[tuple[str, dict]], *, complete: bool = True) -> None:
    """Anthropic's event grammar: message_start first, dense block indices, every delta inside a started
    block of the matching kind, every start stopped, message_delta with a stop_reason, message_stop last."""
    assert events, "no SSE events"
    assert events[0][0] == "message_start", events[0]
    open_index, next_index, open_type, saw_message_delta = None, 0, None, False
    for position, (name, data) in enumerate(events):
        assert data.get("type") == name, f"event name {name!r} but data type {data.get('type')!r}"
        if name == "message_start":
            assert position == 0, "message_start twice"
            assert data["message"]["content"] == [] and data["message"]["role"] == "assistant", data
        elif name == "content_block_start":
            assert open_index is None, f"block {data['index']} started while block {open_index} is open"
            assert data["index"] == next_index, f"block index {data['index']}, expected {next_index}"
            open_index, open_type, next_index = next_index, data["content_block"]["type"], next_index + 1
            if open_type == "tool_use":
                block = data["content_block"]
                assert block["id"] and block["name"] and block["input"] == {}, block
        elif name == "content_block_delta":
            assert data["index"] == open_index, f"delta for block {data['index']} never started (open: {open_index})"
            assert data["delta"]["type"] in _DELTA_FOR_BLOCK[open_type], (open_type, data["delta"])
        elif name == "content_block_stop":
            assert data["index"] == open_index, f"stop for block {data['index']} (open: {open_index})"
            open_index = None
        elif name == "message_delta":
            assert open_index is None, "message_delta while a block is open"
            assert data["delta"].get("stop_reason"), f"message_delta without stop_reason: {data}"
            saw_message_delta = True
        elif name == "message_stop":
            assert saw_message_delta and position == len(events) - 1, "message_stop must be last, after message_delta"
        elif name == "error":
            assert position == len(events) - 1, "nothing may follow an error event"
            assert set(data) == {"type", "error"} and set(data["error"]) >= {"type", "message"}, data
        else:
            assert name == "ping", f"unexpected event {name!r}"
    if complete:
        assert events[-1][0] == "message_stop", f"stream ended with {events[-1][0]!r}"


def reassemble(events: list[tuple[str, dict]]) -> dict:
    """The message a client rebuilds from the events (blocks as tuples, like `blocks()`)."""
    message: dict[str, Any] = {}
    content: list[dict] = []
    partial: dict[int, str] = {}
    for name, data in events:
        if name == "message_start":
            message = dict(data["message"])
        elif name == "content_block_start":
            content.append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block, delta = content[data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "input_json_delta":
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "content_block_stop" and data["index"] in partial:
            content[data["index"]]["input"] = json.loads(partial[data["index"]] or "{}")
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"] = {**message.get("usage", {}), **data.get("usage", {})}
    message["content"] = content
    return message


class _AnyId:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __repr__(self) -> str:
        return "<any non-empty id>"


ANY_ID = _AnyId()


def blocks(content: list) -> list[tuple]:
    """Content blocks (SDK objects or dicts) as comparable tuples."""
    out = []
    for block in content:
        b = block if isinstance(block, dict) else block.model_dump()
        if b["type"] == "text":
            out.append(("text", b["text"]))
        elif b["type"] == "thinking":
            out.append(("thinking", b["thinking"]))
        elif b["type"] == "tool_use":
            out.append(("tool_use", b["id"], b["name"], b["input"]))
        else:
            out.append((b["type"],))
    return out


def stream_raw(gateway: Gateway, **body: Any) -> tuple[int, list[tuple[str, dict]]]:
    response = gateway.request("POST", "/v1/messages", {"stream": True, **body},
                               {"x-api-key": "anything", "anthropic-version": "2023-06-01"})
    if response.status != 200:
        return response.status, [("http_error", response.json())]
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers
    return response.status, sse_events(response.body)


def chunk(delta: dict, finish_reason: str | None = None) -> dict:
    return {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def usage_chunk(prompt: int = 30, completion: int = 12, cached: int = 0) -> dict:
    return {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": cached}}}


def call_delta(index: int, *, id: str | None = None, name: str | None = None, args: str | None = None) -> dict:
    entry: dict[str, Any] = {"index": index}
    if id is not None:
        entry["id"] = id
        entry["type"] = "function"
    function = {k: v for k, v in (("name", name), ("arguments", args)) if v is not None}
    if function:
        entry["function"] = function
    return entry


def _tool(name: str, properties: dict) -> dict:
    return {"name": name, "description": f"The {name} tool.",
            "input_schema": {"type": "object", "properties": properties}}


SIX_CALLS = [
    ("call_read_1", "Read", {"file_path": "/home/dev/project/README.md"}),
    ("call_bash_2", "Bash", {"command": "ls -la && echo \"done\"", "timeout": 30000}),
    ("call_grep_3", "Grep", {"pattern": "def \\w+\\(", "path": "src", "-n": True}),
    ("call_glob_4", "Glob", {"pattern": "**/*.py"}),
    ("call_mcp_5", "mcp__github__create_issue", {"title": "Ünïcode ✓", "labels": ["bug", "p1"]}),
    ("call_fetch_6", "WebFetch", {"url": "https://example.com", "prompt": "summarise", "nested": {"a": [1, 2.5, None]}}),
]
SIX_TOOLS = [_tool(name, {k: {} for k in args}) for _, name, args in SIX_CALLS]
SIX_REPLY_CALLS = [(cid, name, json.dumps(args)) for cid, name, args in SIX_CALLS]
SIX_BLOCKS = [("tool_use", cid, name, args) for cid, name, args in SIX_CALLS]


# ---- scenarios: one upstream answer, the Anthropic message it must become -------------------------


@dataclass
class Scenario:
    reply: Any
    expected: list[tuple]
    stop_reason: str
    tools: list[dict] = field(default_factory=list)


ROLE = chunk({"role": "assistant", "content": None})

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
        ChatReply(tool_calls=[("call_w", "Bash", json.dumps(json.dumps({"command": "pwd"})))]),
        [("tool_use", "call_w", "Bash", {"command": "pwd"})], "tool_use", [_tool("Bash", {"command": {}})]),
    "empty_arguments_are_an_empty_input": Scenario(
        ChatReply(tool_calls=[("call_e", "TaskList", "")]),
        [("tool_use", "call_e", "TaskList", {})], "tool_use", [_tool("TaskList", {})]),
}

STREAM_ONLY_SCENARIOS: dict[str, Scenario] = {
    "several_tool_calls_in_one_chunk": Scenario(
        RawStream([ROLE, chunk({"tool_calls": [
            call_delta(0, id="call_a", name="Read", args='{"file_path": "/a"}'),
            call_delta(1, id="call_b", name="Read", args='{"file_path": "/b"}'),
            call_delta(2, id="call_c", name="Bash", args='{"command": "ls"}'),
        ]}), chunk({}, "tool_calls"), usage_chunk()]),
        [("tool_use", "call_a", "Read", {"file_path": "/a"}), ("tool_use", "call_b", "Read", {"file_path": "/b"}),
         ("tool_use", "call_c", "Bash", {"command": "ls"})], "tool_use",
        [_tool("Read", {"file_path": {}}), _tool("Bash", {"command": {}})]),
    "interleaved_fragments_across_indices": Scenario(
        RawStream([ROLE,
                   chunk({"tool_calls": [call_delta(0, id="call_x", name="Read", args="")]}),
                   chunk({"tool_calls": [call_delta(1, id="call_y", name="Bash", args="")]}),
                   chunk({"tool_calls": [call_delta(0, args='{"file_')]}),
                   chunk({"tool_calls": [call_delta(1, args='{"comm')]}),
                   chunk({"tool_calls": [call_delta(0, args='path": "/x"}')]}),
                   chunk({"tool_calls": [call_delta(1, args='and": "make"}')]}),
                   chunk({}, "tool_calls"), usage_chunk()]),
        [("tool_use", "call_x", "Read", {"file_path": "/x"}), ("tool_use", "call_y", "Bash", {"command": "make"})],
        "tool_use", [_tool("Read", {"file_path": {}}), _tool("Bash", {"command": {}})]),
    "cumulative_argument_snapshots": Scenario(
        RawStream([ROLE,
                   chunk({"tool_calls": [call_delta(0, id="call_s", name="Bash", args="")]}),
                   chunk({"tool_calls": [call_delta(0, args='{"command": "ls')]}),
                   chunk({"tool_calls": [call_delta(0, args='{"command": "ls -la"')]}),
                   chunk({"tool_calls": [call_delta(0, args='{"command": "ls -la"}')]}),
                   chunk({}, "tool_calls"), usage_chunk()]),
        [("tool_use", "call_s", "Bash", {"command": "ls -la"})], "tool_use", [_tool("Bash", {"command": {}})]),
    "late_tool_call_id": Scenario(
        RawStream([ROLE,
                   chunk({"tool_calls": [{"index": 0, "type": "function", "function": {"name": "Bash", "arguments": ""}}]}),
                   chunk({"tool_calls": [call_delta(0, id="call_late", args='{"command"')]}),
                   chunk({"tool_calls": [call_delta(0, args=': "whoami"}')]}),
                   chunk({}, "tool_calls"), usage_chunk()]),
        [("tool_use", ANY_ID, "Bash", {"command": "whoami"})], "tool_use", [_tool("Bash", {"command": {}})]),
    "usage_chunk_with_finish_reason_in_the_same_chunk": Scenario(
        RawStream([ROLE, chunk({"content": "Hi"}), {**chunk({}, "stop"), "usage": usage_chunk()["usage"]}]),
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
    assert_well_formed(events)
    message = reassemble(events)
    assert blocks(message["content"]) == scenario.expected
    assert message["stop_reason"] == scenario.stop_reason


@pytest.mark.parametrize("stream", [False, True])
def test_think_tags_become_thinking_on_routes_that_ask(stream, gateway_for, chat_upstream):
    # An opt-in per route (translation.think_tags): only reasoning models on OpenAI-compatible servers emit them.
    reasoning_server = gateway_for(chat_upstream, translation={"think_tags": True})
    chat_upstream.script(ChatReply(text="<think>Short greeting needed.</think>Hello!", pieces=9))
    with anthropic.Anthropic(base_url=reasoning_server.base_url, api_key="x", max_retries=0, timeout=30) as sdk:
        if stream:
            with sdk.messages.stream(model=ROUTE_NAME, max_tokens=100, messages=USER_HI) as s:
                message = s.get_final_message()
        else:
            message = sdk.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert blocks(message.content) == [("thinking", "Short greeting needed."), ("text", "Hello!")]


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


def test_six_tool_uses_and_shuffled_results_become_one_assistant_and_six_tool_messages(client, chat_upstream):
    chat_upstream.script(ChatReply(text="All six done."))
    results = [{"type": "tool_result", "tool_use_id": cid, "content": f"result of {name}"} for cid, name, _ in SIX_CALLS]
    random.Random(7).shuffle(results)
    assert [r["tool_use_id"] for r in results] != [c[0] for c in SIX_CALLS]
    assistant = [{"type": "text", "text": "Running six tools."},
                 *({"type": "tool_use", "id": cid, "name": name, "input": args} for cid, name, args in SIX_CALLS)]
    message = client.messages.create(
        model=ROUTE_NAME, max_tokens=200, tools=SIX_TOOLS,
        messages=[{"role": "user", "content": "do six things"},
                  {"role": "assistant", "content": assistant},
                  {"role": "user", "content": results}])
    assert blocks(message.content) == [("text", "All six done.")]
    sent = chat_upstream.last_body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant"] + ["tool"] * 6
    call_message = sent[1]
    assert _text_of(call_message.get("content")) == "Running six tools."
    calls = call_message["tool_calls"]
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == SIX_CALLS
    assert all(c["type"] == "function" for c in calls)
    answered = {m["tool_call_id"]: _text_of(m["content"]) for m in sent[2:]}
    assert answered == {cid: f"result of {name}" for cid, name, _ in SIX_CALLS}
    tools = chat_upstream.last_body["tools"]
    assert [t["function"]["name"] for t in tools] == [name for _, name, _ in SIX_CALLS]


LONG_NAME = "mcp__some_very_long_server_name__" + "a_tool_with_an_exceedingly_descriptive_name_" * 2


@pytest.mark.parametrize("stream", [False, True])
def test_tool_names_longer_than_openai_allows_round_trip(stream, client, chat_upstream):
    offered: list[str] = []

    def answer(body: dict) -> ChatReply:
        offered.extend(t["function"]["name"] for t in body["tools"])
        return ChatReply(tool_calls=[("call_long", offered[0], '{"q": 1}'), ("call_bash", "Bash", '{"command": "ls"}')])

    chat_upstream.script(answer)
    request = dict(model=ROUTE_NAME, max_tokens=100, messages=USER_HI,
                   tools=[_tool(LONG_NAME, {"q": {}}), _tool("Bash", {"command": {}})])
    if stream:
        with client.messages.stream(**request) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**request)
    assert len(offered[0]) <= 64 and offered[1] == "Bash"
    assert blocks(message.content) == [("tool_use", "call_long", LONG_NAME, {"q": 1}),
                                       ("tool_use", "call_bash", "Bash", {"command": "ls"})]


def test_tool_choice_and_parallel_calls_map_to_openai(client, chat_upstream):
    chat_upstream.script(ChatReply(text="ok"))
    tools = [_tool("Bash", {"command": {}})]
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


def test_concurrent_streams_do_not_mix(client, chat_upstream):
    chat_upstream.script(lambda body: ChatReply(text=f"echo {body['messages'][-1]['content']}", chunk_delay=0.01))

    def one(i: int) -> str:
        with client.messages.stream(model=ROUTE_NAME, max_tokens=100,
                                    messages=[{"role": "user", "content": f"n{i}"}]) as s:
            return s.get_final_message().content[0].text

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(16))) == [f"echo n{i}" for i in range(16)]


def _text_of(content: Any) -> str:
    """The text of an OpenAI message content: a string or a list of text parts."""
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


# ---- failures -------------------------------------------------------------------------------------


def test_mid_stream_disconnect_is_an_error_never_a_clean_end(client, gateway, chat_upstream):
    cut = RawStream([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"})],
                    disconnect_after=3)
    chat_upstream.script(cut)
    with pytest.raises(anthropic.APIStatusError):
        with client.messages.stream(model=ROUTE_NAME, max_tokens=100, messages=USER_HI) as stream:
            stream.get_final_message()
    status, events = stream_raw(gateway, model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert status == 200
    assert_well_formed(events, complete=False)
    assert events[-1][0] == "error", [e for e, _ in events]
    assert events[-1][1]["error"]["type"] in {"api_error", "overloaded_error"}
    assert not any(e == "message_delta" and d["delta"].get("stop_reason") == "end_turn" for e, d in events)


def test_mid_tool_call_disconnect_is_an_error(gateway, chat_upstream):
    chat_upstream.script(RawStream([ROLE, chunk({"tool_calls": [call_delta(0, id="call_1", name="Bash", args='{"comm')]})],
                                   disconnect_after=2))
    status, events = stream_raw(gateway, model=ROUTE_NAME, max_tokens=100, messages=USER_HI,
                                tools=[_tool("Bash", {"command": {}})])
    assert status == 200
    assert_well_formed(events, complete=False)
    assert events[-1][0] == "error"


def _rate_limited() -> ErrorReply:
    return ErrorReply(429, {"error": {"message": "Rate limit reached for gpt-5 on tokens per min (TPM).",
                                      "type": "tokens", "code": "rate_limit_exceeded"}}, {"retry-after": "3"})


def test_upstream_429_is_a_rate_limit_error_keeping_retry_after(client, chat_upstream):
    chat_upstream.script(_rate_limited())
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert caught.value.response.headers.get("retry-after") == "3"
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_upstream_429_before_the_first_byte_of_a_stream_is_an_http_error(client, chat_upstream):
    chat_upstream.script(_rate_limited())
    with pytest.raises(anthropic.RateLimitError) as caught:
        with client.messages.stream(model=ROUTE_NAME, max_tokens=100, messages=USER_HI) as stream:
            stream.get_final_message()
    assert caught.value.response.headers.get("retry-after") == "3"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_500_is_overloaded(stream, gateway, chat_upstream):
    chat_upstream.script(ErrorReply(500, {"error": {"message": "The server had an error", "type": "server_error"}}))
    _assert_anthropic_error(gateway, stream, 529, "overloaded_error")


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_disconnect_before_answering_is_overloaded(stream, gateway, chat_upstream):
    chat_upstream.script(Disconnect())
    _assert_anthropic_error(gateway, stream, 529, "overloaded_error")


def test_upstream_401_is_an_api_error_that_does_not_leak_the_upstream_key(client, chat_upstream):
    chat_upstream.script(ErrorReply(401, {"error": {
        "message": f"Incorrect API key provided: {UPSTREAM_KEY}. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error", "code": "invalid_api_key"}}))
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert caught.value.status_code == 500
    assert caught.value.body["error"]["type"] == "api_error"
    assert UPSTREAM_KEY not in caught.value.response.text


def test_upstream_400_is_an_invalid_request_naming_the_upstream_reason(client, chat_upstream):
    chat_upstream.script(ErrorReply(400, {"error": {
        "message": "Invalid 'messages[2].tool_call_id': no matching tool call.",
        "type": "invalid_request_error", "code": "invalid_value"}}))
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "tool_call_id" in caught.value.body["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_unreachable_upstream_is_overloaded(stream, gateway_for):
    closed = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    _assert_anthropic_error(gateway_for(closed), stream, 529, "overloaded_error")


def test_upstream_silent_past_first_byte_timeout_is_overloaded(gateway_for, chat_upstream):
    slow = gateway_for(chat_upstream, timeout={"connect": 2, "first_byte": 1, "idle": 1})
    chat_upstream.script(Hang(20))
    _assert_anthropic_error(slow, False, 529, "overloaded_error")


def test_upstream_idle_mid_stream_ends_with_an_error_event(gateway_for, chat_upstream):
    slow = gateway_for(chat_upstream, timeout={"connect": 2, "first_byte": 1, "idle": 1})
    chat_upstream.script(RawStream([ROLE, chunk({"content": "Hel"}), chunk({"content": "lo"})], delay=5))
    status, events = stream_raw(slow, model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert status == 200
    assert_well_formed(events, complete=False)
    assert events[-1][0] == "error"


def _assert_anthropic_error(gateway: Gateway, stream: bool, status: int, error_type: str) -> None:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="anything", max_retries=0, timeout=30) as sdk:
        with pytest.raises(anthropic.APIStatusError) as caught:
            if stream:
                with sdk.messages.stream(model=ROUTE_NAME, max_tokens=100, messages=USER_HI) as s:
                    s.get_final_message()
            else:
                sdk.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert caught.value.status_code == status, caught.value.response.text
    assert caught.value.body["error"]["type"] == error_type
    assert set(caught.value.body) == {"type", "error"} and caught.value.body["type"] == "error"


# ---- the rest of the surface ----------------------------------------------------------------------


def test_count_tokens_is_positive_and_grows_with_the_text(client):
    short = client.messages.count_tokens(model=ROUTE_NAME, messages=USER_HI).input_tokens
    longer = client.messages.count_tokens(
        model=ROUTE_NAME, messages=[{"role": "user", "content": "hi " + "tell me about the sea. " * 50}]).input_tokens
    with_tools = client.messages.count_tokens(model=ROUTE_NAME, messages=USER_HI, tools=SIX_TOOLS,
                                              system="You are a careful assistant.").input_tokens
    assert 0 < short < longer
    assert with_tools > short


def test_models_lists_the_routes(client):
    ids = [model.id for model in client.models.list()]
    assert ROUTE_NAME in ids


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_root_answers_200(method, gateway):
    assert gateway.request(method, "/").status == 200


# ---- Claude Code's own request bodies, as captured --------------------------------------------------


FIXTURE_FILES = sorted(p.name for p in FIXTURES.glob("claude_code_*.json"))


def _claude_code_headers(body: dict) -> dict[str, str]:
    session = json.loads(body["metadata"]["user_id"])["session_id"]
    return {"x-api-key": "sk-ant-anything", "anthropic-version": "2023-06-01",
            "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
                              "mid-conversation-system-2026-04-07,advanced-tool-use-2025-11-20",
            "x-claude-code-session-id": session, "user-agent": "claude-cli/2.1.328 (external, sdk-cli)"}


def _expected_tool_names(body: dict) -> set[str]:
    referenced = {ref["tool_name"] for m in body["messages"] if isinstance(m["content"], list)
                  for block in m["content"] if block.get("type") == "tool_result" and isinstance(block.get("content"), list)
                  for ref in block["content"] if ref.get("type") == "tool_reference"}
    return {t["name"] for t in body["tools"] if not t.get("defer_loading") or t["name"] in referenced}


def test_claude_code_fixtures_are_present():
    assert len(FIXTURE_FILES) == 10, FIXTURE_FILES


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fixture", FIXTURE_FILES)
def test_claude_code_request_as_captured(fixture, stream, gateway, chat_upstream):
    body = json.loads((FIXTURES / fixture).read_text())
    body["stream"] = stream
    chat_upstream.script(ChatReply(text="Done: hi!", usage=(900, 12, 512)))
    response = gateway.request("POST", "/v1/messages?beta=true", body, _claude_code_headers(body))
    assert response.status == 200, response.text
    if stream:
        events = sse_events(response.body)
        assert_well_formed(events)
        message = reassemble(events)
    else:
        message = response.json()
        assert message["type"] == "message" and message["role"] == "assistant"
    assert blocks(message["content"]) == [("text", "Done: hi!")]
    assert message["stop_reason"] == "end_turn" and message["model"] == body["model"]

    sent = chat_upstream.last_body
    assert "cache_control" not in json.dumps(sent)
    assert sent["model"] == "gpt-5"
    assert 0 < sent["max_completion_tokens"] <= body["max_tokens"] and "max_tokens" not in sent
    assert {t["function"]["name"] for t in sent["tools"]} == _expected_tool_names(body)
    _assert_message_order(body, sent["messages"])
    if "after_toolsearch" in fixture:
        tool_texts = [_text_of(m["content"]) for m in sent["messages"] if m["role"] == "tool"]
        assert any("CronList" in text for text in tool_texts), tool_texts


def _assert_message_order(anthropic_body: dict, messages: list[dict]) -> None:
    assert messages[0]["role"] in {"system", "developer"}, "the system prompt comes first"
    assert anthropic_body["system"][1]["text"] in _text_of(messages[0]["content"])
    mid_system = sum(m["role"] == "system" for m in anthropic_body["messages"])
    assert sum(m["role"] in {"system", "developer"} for m in messages[1:]) == mid_system
    for i, message in enumerate(messages):
        if message["role"] == "tool":
            assert _text_of(message["content"]).strip(), f"empty tool message at {i}"
        if message.get("tool_calls"):
            ids = [c["id"] for c in message["tool_calls"]]
            following = messages[i + 1: i + 1 + len(ids)]
            assert [m["role"] for m in following] == ["tool"] * len(ids), f"tool messages must follow message {i}"
            assert sorted(m["tool_call_id"] for m in following) == sorted(ids)
    called = [c["id"] for m in messages for c in m.get("tool_calls") or []]
    answered = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert sorted(called) == sorted(answered)
    used = [b["id"] for m in anthropic_body["messages"] if isinstance(m["content"], list)
            for b in m["content"] if b["type"] == "tool_use"]
    assert called == used


# ---- the grammar check itself must catch what other gateways got wrong (design §8) ------------------


def _ev(name: str, **data: Any) -> tuple[str, dict]:
    return name, {"type": name, **data}


_START = _ev("message_start", message={"role": "assistant", "content": []})


@pytest.mark.parametrize("events", [
    [_START, _ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "x"})],
    [_START, _ev("content_block_start", index=1, content_block={"type": "text", "text": ""})],
    [_START, _ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
     _ev("message_delta", delta={"stop_reason": "end_turn"}), _ev("message_stop")],
    [_START, _ev("message_delta", delta={"stop_reason": None}), _ev("message_stop")],
    [_START, _ev("message_delta", delta={"stop_reason": "end_turn"})],
], ids=["delta_before_start", "sparse_index", "block_never_stopped", "no_stop_reason", "no_message_stop"])
def test_grammar_check_rejects_broken_streams(events):
    with pytest.raises(AssertionError):
        assert_well_formed(events)
