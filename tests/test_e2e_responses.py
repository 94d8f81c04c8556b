"""End to end over real sockets: the official `anthropic` SDK against a gateway process whose route speaks the
OpenAI Responses API (design §4) to the scripted Responses upstream.

What the client gets (text, parallel calls, reasoning as thinking, incomplete, failures, usage), what the
upstream is sent (items, tools, reasoning settings, identity), and the reasoning round trip across turns,
gateway restarts and worker processes: turn 2's upstream request carries turn 1's reasoning item unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from aiohttp import web

from dragoman.translate.reasoning_signature import seal
from tests.gateway import (
    ROUTE_NAME,
    UPSTREAM_ENV,
    UPSTREAM_KEY,
    Gateway,
    _healthy,
    _stop,
    free_port,
    gateway_config,
    run_gateway,
)
from tests.shared_fixtures import CLAUDE_CODE_FIXTURES
from tests.test_e2e_sdk import assert_well_formed, blocks, reassemble, sse_events
from tests.upstreams.openai_responses import (
    ErrorReply,
    RawStream,
    ResponsesReply,
    ScriptedResponsesUpstream,
    openai_error,
    render_events,
    render_response,
)
from tests.upstreams.openai_responses import sse_events as responses_sse

pytestmark = pytest.mark.timeout(30)

FIXTURES = CLAUDE_CODE_FIXTURES
FIXTURE_FILES = sorted(p.name for p in FIXTURES.glob("claude_code_*.json"))

USER_HI = [{"role": "user", "content": "hi"}]
ENCRYPTED = "enc-XYZ"
# What a real Anthropic model's thinking signature looks like: not ours, so never replayed upstream.
ANTHROPIC_SIGNATURE = (
    "EqQBCkYIBxgCKkDd8cQ0Fh1Uo6mYkGqj0cYb5b3yV9rjQXh6B0tVQ3dO9jAPmGqN3xJ1a2E0dP1c9s7m4Z2yHq8pXw3nK5sLc0VpEgxF"
    "Kz3q8r6T1v0Y2wUaDHjL9xq2pQ7mN4sR1yIwL0a8cB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ3kL5mN7pQ9rS1tU3v"
)
READ_TOOL = {"name": "Read", "description": "Read a file from the local filesystem.",
             "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                              "required": ["file_path"], "additionalProperties": False}}
EDIT_TOOL = {"name": "Edit", "description": "Replace text in a file.",
             "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"},
                                                               "old_string": {"type": "string"},
                                                               "new_string": {"type": "string"}},
                              "required": ["file_path", "old_string", "new_string"]}}
TOOLS = [READ_TOOL, EDIT_TOOL]
SESSION = "7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b"
METADATA = {"user_id": json.dumps({"device_id": "d" * 64, "account_uuid": "acct-1234", "session_id": SESSION})}


# ---- upstream, gateway, client ----------------------------------------------------------------------------


class Upstream(ScriptedResponsesUpstream):
    """The scripted Responses server, also noting which process sent each request (for the worker test)."""

    track_senders = False

    def __init__(self) -> None:
        self.senders: list[int | None] = []
        super().__init__()

    def reset(self, script: Any = None) -> None:
        super().reset(script)
        self.senders.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.track_senders:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.senders.append(_process_with_local_port(peer[1]) if peer else None)
        return await super()._handle(request)


def _process_with_local_port(port: int) -> int | None:
    """The pid owning the 127.0.0.1:`port` end of a TCP connection (found through /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # ESTABLISHED
                inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                return int(pid)
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def _module_upstream() -> Iterator[Upstream]:
    with Upstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(_module_upstream: Upstream) -> Iterator[Upstream]:
    _module_upstream.reset()
    yield _module_upstream
    _module_upstream.track_senders = False
    _module_upstream.reset()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The signing key file of this module's gateways (never the developer's ~/.config/dragoman/signing.key)."""
    return tmp_path_factory.mktemp("signing") / "signing.key"


def gateway_env(key_file: Path) -> dict[str, str]:
    # DRAGOMAN_SIGNING_KEY would win over the file: blank it, whatever the developer's shell has.
    return {**UPSTREAM_ENV, "DRAGOMAN_SIGNING_KEY": "", "DRAGOMAN_SIGNING_KEY_FILE": str(key_file)}


@pytest.fixture(scope="module")
def gateway(_module_upstream: Upstream, key_file: Path) -> Iterator[Gateway]:
    with run_gateway(gateway_config(_module_upstream.responses_url), env=gateway_env(key_file)) as running:
        yield running


@pytest.fixture
def client(gateway: Gateway, upstream: Upstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="anything", max_retries=0, timeout=20) as sdk:
        yield sdk


def sdk_for(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key="anything", max_retries=0, timeout=20)


def ask(sdk: anthropic.Anthropic, stream: bool, **kwargs: Any) -> anthropic.types.Message:
    """One Messages call, as JSON or streamed and reassembled by the SDK."""
    body = {"model": ROUTE_NAME, "max_tokens": 2000, "messages": USER_HI, **kwargs}
    if stream:
        with sdk.messages.stream(**body) as events:
            return events.get_final_message()
    return sdk.messages.create(**body)


def exactly(reply: ResponsesReply, response_id: str):
    """A script answering `reply` under a fixed response id, so the test knows the exact output items."""
    def answer(body: dict) -> Any:
        if body.get("stream"):
            return RawStream(responses_sse(render_events(reply, response_id)), done=False)
        return ErrorReply(200, render_response(reply, response_id))  # a 200 "error" is a verbatim JSON body
    return answer


def stream_raw(gateway: Gateway, **body: Any) -> tuple[int, list[tuple[str, dict]]]:
    response = gateway.request("POST", "/v1/messages", {"stream": True, **body},
                               {"x-api-key": "anything", "anthropic-version": "2023-06-01"})
    if response.status != 200:
        return response.status, [("http_error", response.json())]
    return response.status, sse_events(response.body)


def walk_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return list(value) + [k for v in value.values() for k in walk_keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in walk_keys(v)]
    return []


def kinds(body: dict) -> list[str]:
    return [item.get("type", "message") for item in body["input"]]


both = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])


# ---- what the client gets ---------------------------------------------------------------------------------


@both
def test_text_answer(stream, client, upstream):
    upstream.script(ResponsesReply(text="Hello from the Responses API.", usage=(120, 9, 0, 0)))
    message = ask(client, stream)
    assert blocks(message.content) == [("text", "Hello from the Responses API.")]
    assert message.stop_reason == "end_turn"
    assert message.model == ROUTE_NAME and message.role == "assistant"
    assert message.usage.input_tokens == 120 and message.usage.output_tokens == 9
    assert len(upstream.bodies) == 1 and bool(upstream.last_body.get("stream")) is stream


@both
def test_usage_reports_cached_tokens_as_cache_reads(stream, client, upstream):
    upstream.script(ResponsesReply(text="ok", usage=(1000, 42, 768, 30)))
    usage = ask(client, stream).usage
    assert usage.cache_read_input_tokens == 768
    assert usage.input_tokens == 1000 - 768
    assert usage.output_tokens == 42


@both
def test_six_parallel_function_calls_with_fragmented_arguments(stream, client, upstream):
    calls = [(f"call_{'abcdef'[n]}{n}x7Qp", "Read", json.dumps({"file_path": f"/home/dev/project/{'abcdef'[n]}.txt",
                                                                  "limit": 100 + n}))
             for n in range(6)]
    upstream.script(ResponsesReply(text="Reading all six.", function_calls=calls, pieces=9))
    message = ask(client, stream, tools=TOOLS)
    assert blocks(message.content) == [("text", "Reading all six.")] + [
        ("tool_use", call_id, name, json.loads(args)) for call_id, name, args in calls]
    assert message.stop_reason == "tool_use"


def test_streamed_parallel_calls_are_well_formed_events(gateway, upstream):
    calls = [(f"call_{n}", "Read", json.dumps({"file_path": f"/tmp/{n}.py"})) for n in range(6)]
    upstream.script(ResponsesReply(reasoning="Read them all.", function_calls=calls, pieces=6))
    status, events = stream_raw(gateway, model=ROUTE_NAME, max_tokens=2000, messages=USER_HI, tools=TOOLS)
    assert status == 200
    assert_well_formed(events)
    message = reassemble(events)
    assert [b["type"] for b in message["content"]] == ["thinking"] + ["tool_use"] * 6
    assert [b["id"] for b in message["content"][1:]] == [c[0] for c in calls]
    assert message["stop_reason"] == "tool_use"
    fragments = [d for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
    assert len(fragments) > 6, "arguments are bridged as they arrive, not buffered whole"


@both
def test_reasoning_becomes_thinking_with_an_opaque_signature(stream, client, upstream):
    upstream.script(ResponsesReply(reasoning=["**Planning**", "Read the file, then answer."],
                                   encrypted_content=ENCRYPTED, text="The answer is 4.", usage=(50, 80, 0, 64)))
    message = ask(client, stream, thinking={"type": "enabled", "budget_tokens": 8000})
    assert [b.type for b in message.content] == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.thinking == "**Planning**\n\nRead the file, then answer."
    signature = thinking.signature
    assert isinstance(signature, str) and len(signature) > 20
    # Opaque: neither OpenAI's blob nor the item id appear as such.
    assert ENCRYPTED not in signature and "rs_" not in signature
    assert ENCRYPTED not in thinking.thinking
    assert message.content[1].text == "The answer is 4."
    assert message.stop_reason == "end_turn"


@both
def test_incomplete_is_max_tokens(stream, client, upstream):
    upstream.script(ResponsesReply(text="The story begins", status="incomplete", incomplete_reason="max_output_tokens"))
    message = ask(client, stream)
    assert blocks(message.content) == [("text", "The story begins")]
    assert message.stop_reason == "max_tokens"


def test_failed_response_mid_stream_raises_in_the_sdk(client, gateway, upstream):
    # Paced, so the gateway has sent the first bytes before the failure arrives (a failure in the very first read
    # is still the gateway's to retry and comes back as an HTTP error instead).
    upstream.script(ResponsesReply(status="failed", error=("server_error", "The model failed to generate a response."),
                                   chunk_delay=0.1))
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(client, True)
    assert "failed to generate" in str(caught.value)
    status, events = stream_raw(gateway, model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert status == 200
    assert_well_formed(events, complete=False)
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "api_error"
    assert "message_stop" not in [name for name, _ in events]


def test_error_event_mid_stream_raises_in_the_sdk(client, gateway, upstream):
    # The text is already flowing when the upstream gives up: an `error` event, never a clean end_turn.
    reply = ResponsesReply(text="a partial answer that never ends", error_after=7,
                           error=("rate_limit_exceeded", "Rate limit reached mid-stream."), chunk_delay=0.05)
    upstream.script(reply)
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(client, True)
    assert "Rate limit reached mid-stream." in str(caught.value)
    status, events = stream_raw(gateway, model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert status == 200
    assert_well_formed(events, complete=False)
    names = [name for name, _ in events]
    assert "content_block_delta" in names, "the failure came after text had been bridged"
    assert names[-1] == "error" and events[-1][1]["error"]["type"] == "rate_limit_error"
    assert "message_delta" not in names and "message_stop" not in names


def test_failed_json_response_is_an_http_error(client, upstream):
    upstream.script(ResponsesReply(status="failed", error=("server_error", "boom")))
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(client, False)
    assert caught.value.status_code == 529 and caught.value.body["error"]["type"] == "overloaded_error"


@both
def test_http_429_before_the_first_byte_is_a_rate_limit_error(stream, client, upstream):
    upstream.script(ErrorReply(429, openai_error("Rate limit reached for gpt-5 on tokens per min (TPM).", "tokens",
                                                 "rate_limit_exceeded"), {"retry-after": "1"}))
    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(client, stream)
    assert caught.value.status_code == 429
    assert caught.value.body == {"type": "error", "error": caught.value.body["error"]}
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert caught.value.response.headers.get("retry-after") == "1"


@both
def test_http_500_before_the_first_byte_is_overloaded(stream, client, upstream):
    upstream.script(ErrorReply(500, openai_error("The server had an error while processing your request.", "server_error")))
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(client, stream)
    assert caught.value.status_code == 529
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "overloaded_error"


# ---- what the upstream is sent ----------------------------------------------------------------------------


def test_upstream_request_shape(client, upstream):
    upstream.script(ResponsesReply(text="ok"))
    client.messages.create(
        model=ROUTE_NAME, max_tokens=4096, tools=TOOLS, metadata=METADATA,
        system=[{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.328"},
                {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        thinking={"type": "enabled", "budget_tokens": 20000},
        messages=[{"role": "user", "content": [{"type": "text", "text": "fix it", "cache_control": {"type": "ephemeral"}}]}],
    )
    sent = upstream.last_body
    assert sent["model"] == "gpt-5"
    assert sent["instructions"] == "x-anthropic-billing-header: cc_version=2.1.328\n\nYou are Claude Code."
    assert sent["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix it"}]}]
    assert sent["store"] is False
    assert sent["include"] == ["reasoning.encrypted_content"]
    assert sent["max_output_tokens"] == 4096 and "max_tokens" not in sent and "max_completion_tokens" not in sent
    assert sent["reasoning"]["effort"] == "high"
    assert sent["prompt_cache_key"] == SESSION
    assert sent.get("safety_identifier") and "acct-1234" not in json.dumps(sent)
    assert sent["tools"] == [
        {"type": "function", "name": t["name"], "description": t["description"], "parameters": t["input_schema"],
         "strict": False} for t in TOOLS]
    assert "cache_control" not in walk_keys(sent)
    assert "messages" not in sent and "stream_options" not in sent
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_reasoning_effort_from_output_config(effort, client, upstream):
    upstream.script(ResponsesReply(text="ok"))
    client.messages.create(model=ROUTE_NAME, max_tokens=2000, messages=USER_HI,
                           thinking={"type": "adaptive"}, extra_body={"output_config": {"effort": effort}})
    assert upstream.last_body["reasoning"]["effort"] == effort


@pytest.mark.parametrize("budget, effort", [(2048, "low"), (8000, "medium"), (31999, "high")])
def test_reasoning_effort_from_thinking_budget(budget, effort, client, upstream):
    upstream.script(ResponsesReply(text="ok"))
    client.messages.create(model=ROUTE_NAME, max_tokens=32000, messages=USER_HI,
                           thinking={"type": "enabled", "budget_tokens": budget})
    assert upstream.last_body["reasoning"]["effort"] == effort


def test_mid_conversation_system_message_keeps_its_place(gateway, upstream):
    upstream.script(ResponsesReply(text="ok"))
    response = gateway.request("POST", "/v1/messages", {
        "model": ROUTE_NAME, "max_tokens": 1000, "system": "You are Claude Code.",
        "messages": [{"role": "user", "content": "first"},
                     {"role": "system", "content": "<system-reminder>cwd is /home/dev</system-reminder>"},
                     {"role": "assistant", "content": "noted"},
                     {"role": "user", "content": "second"}]}, {"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert response.status == 200, response.text
    sent = upstream.last_body
    assert sent["instructions"] == "You are Claude Code."
    roles = [(item["role"], item["content"][0].get("text")) for item in sent["input"]]
    assert roles[0] == ("user", "first")
    assert roles[1][0] in ("system", "developer") and "cwd is /home/dev" in roles[1][1]
    assert roles[2:] == [("assistant", "noted"), ("user", "second")]


def test_tool_uses_and_results_become_paired_items(client, upstream):
    upstream.script(ResponsesReply(text="done"))
    uses = [{"type": "tool_use", "id": f"call_{n}", "name": "Read", "input": {"file_path": f"/p/{n}.txt"}}
            for n in range(6)]
    results = [{"type": "tool_result", "tool_use_id": f"call_{n}", "content": f"contents of {n}"}
               for n in (3, 0, 5, 1, 4, 2)]  # Claude Code answers in completion order
    client.messages.create(model=ROUTE_NAME, max_tokens=2000, tools=TOOLS, messages=[
        {"role": "user", "content": "read six files"},
        {"role": "assistant", "content": [{"type": "text", "text": "Reading."}, *uses]},
        {"role": "user", "content": results},
    ])
    items = upstream.last_body["input"]
    assert kinds(upstream.last_body) == ["message", "message"] + ["function_call"] * 6 + ["function_call_output"] * 6
    assert items[1] == {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Reading."}]}
    calls, outputs = items[2:8], items[8:]
    assert [(c["call_id"], c["name"], json.loads(c["arguments"])) for c in calls] == [
        (u["id"], "Read", u["input"]) for u in uses]
    assert sorted(o["call_id"] for o in outputs) == sorted(c["call_id"] for c in calls)
    assert {o["call_id"]: o["output"] for o in outputs} == {f"call_{n}": f"contents of {n}" for n in range(6)}


# ---- the reasoning round trip -----------------------------------------------------------------------------


TURN_1 = ResponsesReply(reasoning=["**Reading both files**", "I need a.txt and b.txt before editing."],
                        encrypted_content=ENCRYPTED,
                        function_calls=[("call_rt_A", "Read", json.dumps({"file_path": "/p/a.txt"})),
                                        ("call_rt_B", "Read", json.dumps({"file_path": "/p/b.txt"}))],
                        usage=(300, 120, 0, 96))
TURN_1_ID = "resp_turn1"
TURN_1_REASONING = render_response(TURN_1, TURN_1_ID)["output"][0]


def _turn_1(sdk: anthropic.Anthropic, upstream: Upstream, stream: bool) -> anthropic.types.Message:
    upstream.script(exactly(TURN_1, TURN_1_ID))
    message = ask(sdk, stream, tools=TOOLS, metadata=METADATA, messages=[{"role": "user", "content": "edit a and b"}])
    assert [b.type for b in message.content] == ["thinking", "tool_use", "tool_use"], message.content
    assert message.stop_reason == "tool_use"
    return message


def _turn_2(sdk: anthropic.Anthropic, upstream: Upstream, assistant_content: list, stream: bool) -> dict:
    """Send turn 2 with the assistant content as given; return the upstream request it caused."""
    upstream.script(ResponsesReply(text="Both files read.", reasoning="Now summarise.", encrypted_content="enc-turn2"))
    before = len(upstream.bodies)
    message = ask(sdk, stream, tools=TOOLS, metadata=METADATA, messages=[
        {"role": "user", "content": "edit a and b"},
        {"role": "assistant", "content": assistant_content},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_rt_B", "content": "b = OLD"},
            {"type": "tool_result", "tool_use_id": "call_rt_A", "content": "a = OLD"},
        ]},
    ])
    assert message.stop_reason == "end_turn" and message.content[-1].text == "Both files read."
    assert len(upstream.bodies) == before + 1
    return upstream.last_body


def _assert_replayed_in_place(sent: dict) -> None:
    assert kinds(sent) == ["message", "reasoning", "function_call", "function_call",
                           "function_call_output", "function_call_output"], sent["input"]
    reasoning = sent["input"][1]
    assert reasoning == TURN_1_REASONING, "turn 1's reasoning item must go back upstream unchanged"
    assert reasoning["id"] == TURN_1_REASONING["id"] and reasoning["encrypted_content"] == ENCRYPTED
    assert [i["call_id"] for i in sent["input"][2:4]] == ["call_rt_A", "call_rt_B"]
    assert [i["call_id"] for i in sent["input"][4:]] == ["call_rt_A", "call_rt_B"]
    assert sent["include"] == ["reasoning.encrypted_content"] and sent["store"] is False


def _assert_not_replayed(sent: dict) -> None:
    assert "reasoning" not in kinds(sent), sent["input"]
    assert ENCRYPTED not in json.dumps(sent)
    assert kinds(sent) == ["message", "function_call", "function_call", "function_call_output", "function_call_output"]


@pytest.mark.parametrize("turn_2_stream", [False, True], ids=["turn2_json", "turn2_stream"])
@pytest.mark.parametrize("turn_1_stream", [False, True], ids=["turn1_json", "turn1_stream"])
def test_turn_2_carries_turn_1_reasoning_unchanged_in_place(turn_1_stream, turn_2_stream, client, upstream):
    first = _turn_1(client, upstream, turn_1_stream)
    assert first.content[0].thinking == "**Reading both files**\n\nI need a.txt and b.txt before editing."
    # The assistant content exactly as the SDK returned it (SDK objects, signature included).
    sent = _turn_2(client, upstream, first.content, turn_2_stream)
    _assert_replayed_in_place(sent)


@both
def test_reasoning_without_a_summary_still_round_trips(stream, client, upstream):
    # GPT-5 often returns a reasoning item with an empty summary: an empty thinking block that must still carry it.
    reply = ResponsesReply(reasoning=[], encrypted_content=ENCRYPTED, function_calls=TURN_1.function_calls)
    upstream.script(exactly(reply, TURN_1_ID))
    first = ask(client, stream, tools=TOOLS, messages=[{"role": "user", "content": "edit a and b"}])
    assert [b.type for b in first.content] == ["thinking", "tool_use", "tool_use"]
    assert first.content[0].thinking == "" and first.content[0].signature
    sent = _turn_2(client, upstream, first.content, not stream)
    assert kinds(sent)[:3] == ["message", "reasoning", "function_call"], sent["input"]
    assert sent["input"][1] == render_response(reply, TURN_1_ID)["output"][0]


def test_json_and_streamed_turns_seal_the_same_signature(client, upstream):
    assert _turn_1(client, upstream, False).content[0].signature == _turn_1(client, upstream, True).content[0].signature


def test_tampered_signature_is_not_replayed_and_the_turn_succeeds(client, upstream):
    content = [b.model_dump() for b in _turn_1(client, upstream, True).content]
    signature = content[0]["signature"]
    middle = len(signature) // 2
    content[0]["signature"] = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1:]
    _assert_not_replayed(_turn_2(client, upstream, content, False))


def test_signature_with_altered_mac_is_not_replayed(client, upstream):
    content = [b.model_dump() for b in _turn_1(client, upstream, False).content]
    signature = content[0]["signature"]
    content[0]["signature"] = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    _assert_not_replayed(_turn_2(client, upstream, content, True))


def test_foreign_anthropic_signature_is_not_replayed_and_the_turn_succeeds(client, upstream):
    content = [{"type": "thinking", "thinking": "Claude's own thoughts.", "signature": ANTHROPIC_SIGNATURE},
               {"type": "tool_use", "id": "call_rt_A", "name": "Read", "input": {"file_path": "/p/a.txt"}},
               {"type": "tool_use", "id": "call_rt_B", "name": "Read", "input": {"file_path": "/p/b.txt"}}]
    sent = _turn_2(client, upstream, content, True)
    _assert_not_replayed(sent)
    assert "Claude's own thoughts." not in json.dumps(sent)


def test_signature_opens_after_a_gateway_restart(upstream, key_file):
    restart_key = key_file.with_name("restart.key")
    config = gateway_config(upstream.responses_url)
    with run_gateway(config, env=gateway_env(restart_key)) as first_gateway, sdk_for(first_gateway) as sdk:
        content = _turn_1(sdk, upstream, True).content
    assert restart_key.exists() and restart_key.stat().st_mode & 0o777 == 0o600
    with run_gateway(config, env=gateway_env(restart_key)) as second_gateway, sdk_for(second_gateway) as sdk:
        _assert_replayed_in_place(_turn_2(sdk, upstream, content, False))
    # Another deployment (another key) cannot open it.
    with run_gateway(config, env=gateway_env(key_file.with_name("other.key"))) as other, sdk_for(other) as sdk:
        _assert_not_replayed(_turn_2(sdk, upstream, content, False))


def test_an_empty_key_file_never_becomes_an_empty_signing_key(upstream, tmp_path):
    # What a worker sees when another worker has just created the key file (O_EXCL) but not yet written it.
    # Signing with that empty key would let any client forge signatures, and other workers could not open them.
    empty = tmp_path / "signing.key"
    empty.write_text("")
    empty.chmod(0o600)
    forged_item = {"type": "reasoning", "summary": [], "id": "rs_forged", "encrypted_content": "enc-forged-by-client"}
    forged = seal(json.dumps(forged_item).encode(), b"")
    content = [{"type": "thinking", "thinking": "", "signature": forged},
               {"type": "tool_use", "id": "call_rt_A", "name": "Read", "input": {"file_path": "/p/a.txt"}},
               {"type": "tool_use", "id": "call_rt_B", "name": "Read", "input": {"file_path": "/p/b.txt"}}]
    with contextlib.ExitStack() as stack:
        try:
            running = stack.enter_context(run_gateway(gateway_config(upstream.responses_url), env=gateway_env(empty)))
        except RuntimeError:
            return  # refusing to start without a usable key is a correct answer too
        with sdk_for(running) as sdk:
            sent = _turn_2(sdk, upstream, content, False)
    assert "enc-forged-by-client" not in json.dumps(sent), (
        "a signature forged with an empty key was accepted: the gateway signs with b'' when the key file is empty")


@pytest.fixture
def two_workers(upstream: Upstream, tmp_path: Path) -> Iterator[tuple[Gateway, list[int]]]:
    """`dragoman serve --workers 2` (run_gateway cannot pass --workers), with a fresh signing key file."""
    config_path = tmp_path / "dragoman.yaml"
    config_path.write_text(gateway_config(upstream.responses_url))
    stderr_path = tmp_path / "stderr.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DRAGOMAN_API_KEYS"}
    env.update({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                **gateway_env(tmp_path / "keys" / "signing.key")})
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "dragoman", "serve", "--config", str(config_path),
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, env=env, cwd=tmp_path)
    gateway = Gateway(port=port, proc=proc, stderr_path=stderr_path)
    try:
        deadline = time.monotonic() + 15
        while not (_healthy(port) and len(_children(proc.pid)) >= 2):
            assert proc.poll() is None, f"gateway exited with {proc.returncode}:\n{gateway.stderr_text()}"
            assert time.monotonic() < deadline, f"gateway not up with 2 workers:\n{gateway.stderr_text()}"
            time.sleep(0.05)
        yield gateway, _children(proc.pid)
    finally:
        _stop(proc)


def _children(pid: int) -> list[int]:
    """The worker processes of the supervisor `pid` (multiprocessing's resource tracker is a child too)."""
    try:
        children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    workers = []
    for child in children:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(child)
        except OSError:
            continue
    return workers


def test_signatures_open_on_every_worker(two_workers, upstream):
    # Which worker accepts a connection is the kernel's choice, so the turns below may or may not cross
    # workers; the deterministic cross-process check is the next test (two gateways, one key file).
    gateway, workers = two_workers
    upstream.track_senders = True
    for i in range(6):
        # A fresh connection for each request, so the kernel picks a worker each time.
        with sdk_for(gateway) as sdk:
            content = _turn_1(sdk, upstream, i % 2 == 0).content
        with sdk_for(gateway) as sdk:
            sent = _turn_2(sdk, upstream, content, i % 2 == 1)
        assert {upstream.senders[-2], upstream.senders[-1]} <= set(workers), (upstream.senders, workers)
        _assert_replayed_in_place(sent)


def test_two_gateways_on_one_key_file_open_each_others_signatures(upstream, tmp_path):
    # The first creates the key file; the second reads it: a turn sealed on one opens on the other.
    key = tmp_path / "fresh" / "signing.key"
    config = gateway_config(upstream.responses_url)
    with run_gateway(config, env=gateway_env(key)) as first, run_gateway(config, env=gateway_env(key)) as second:
        with sdk_for(first) as sdk:
            content = _turn_1(sdk, upstream, True).content
        with sdk_for(second) as sdk:
            _assert_replayed_in_place(_turn_2(sdk, upstream, content, False))


# ---- Claude Code's own request bodies, as captured --------------------------------------------------------


def _claude_code_headers(body: dict) -> dict[str, str]:
    session = json.loads(body["metadata"]["user_id"])["session_id"]
    return {"x-api-key": "sk-ant-anything", "anthropic-version": "2023-06-01",
            "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
                              "mid-conversation-system-2026-04-07,advanced-tool-use-2025-11-20",
            "x-claude-code-session-id": session, "user-agent": "claude-cli/2.1.328 (external, sdk-cli)"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(part.get("text", "") for part in content)


def test_claude_code_fixtures_are_present():
    assert len(FIXTURE_FILES) == 10, FIXTURE_FILES


@both
@pytest.mark.parametrize("fixture", FIXTURE_FILES)
def test_claude_code_request_as_captured(fixture, stream, gateway, upstream):
    body = json.loads((FIXTURES / fixture).read_text())
    body["stream"] = stream
    upstream.script(ResponsesReply(reasoning="Looking at the task.", text="Done: hi!", usage=(900, 12, 512, 8)))
    response = gateway.request("POST", "/v1/messages?beta=true", body, _claude_code_headers(body))
    assert response.status == 200, response.text
    if stream:
        events = sse_events(response.body)
        assert_well_formed(events)
        message = reassemble(events)
    else:
        message = response.json()
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert message["content"][1]["text"] == "Done: hi!"
    assert message["stop_reason"] == "end_turn" and message["model"] == body["model"]
    assert message["usage"]["cache_read_input_tokens"] == 512 and message["usage"]["input_tokens"] == 388

    sent = upstream.last_body
    assert sent["model"] == "gpt-5" and bool(sent.get("stream")) is stream
    assert "cache_control" not in walk_keys(sent)
    assert sent["store"] is False and sent["include"] == ["reasoning.encrypted_content"]
    assert 16 <= sent["max_output_tokens"] <= body["max_tokens"]
    assert sent["prompt_cache_key"] == json.loads(body["metadata"]["user_id"])["session_id"]
    assert sent["instructions"] == "\n\n".join(b["text"] for b in body["system"])
    for tool in sent["tools"]:
        assert tool["type"] == "function" and tool["strict"] is False and "function" not in tool
        assert isinstance(tool["parameters"], dict) and tool["name"]
    offered = {t["name"] for t in body["tools"] if not t.get("defer_loading")}
    assert offered <= {t["name"] for t in sent["tools"]}
    # The mid-conversation system messages keep their place among the input items.
    mid_system = [_text(m["content"]) for m in body["messages"] if m["role"] == "system"]
    sent_system = [_text(i["content"]) for i in sent["input"]
                   if i.get("type", "message") == "message" and i["role"] in ("system", "developer")]
    assert sent_system == mid_system
    # Every tool_use goes up as a function_call, each answered by its function_call_output, in pairs by call_id.
    used = [b["id"] for m in body["messages"] if isinstance(m["content"], list)
            for b in m["content"] if b["type"] == "tool_use"]
    calls = [i for i in sent["input"] if i.get("type") == "function_call"]
    outputs = [i for i in sent["input"] if i.get("type") == "function_call_output"]
    assert [c["call_id"] for c in calls] == used
    assert sorted(o["call_id"] for o in outputs) == sorted(used)
    position = {id(item): n for n, item in enumerate(sent["input"])}
    for call in calls:
        answer = next(o for o in outputs if o["call_id"] == call["call_id"])
        assert position[id(call)] < position[id(answer)]
        assert isinstance(answer["output"], str) and answer["output"].strip()
        assert isinstance(json.loads(call["arguments"]), dict)
    if "after_toolsearch" in fixture:
        assert any("CronList" in o["output"] for o in outputs), outputs
