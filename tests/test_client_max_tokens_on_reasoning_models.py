"""The client's max_tokens is a contract, end to end with the `anthropic` SDK against scripted upstreams.

A reasoning model (gpt-5) gets at least 1024 output tokens upstream, since it spends tokens thinking before it
answers; the client still gets no more visible output than its max_tokens (~4 characters a token), then
stop_reason "max_tokens". A tool call that does not fit is dropped whole, never sent half. Usage — in the
answer and in the audit record — is the upstream's real count, what the customer is billed for. A model that
does not reason gets the client's max_tokens as is and cuts its answer itself. Chat and Responses upstreams,
JSON and streamed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from dragoman.translate.output_budget import NOTE
from tests.anthropic_events import check_sse_grammar, sse_events
from tests.audit_helpers import BothApis, both_apis, route, wait_record
from tests.routing_helpers import USER_HI, post_messages
from tests.upstreams import ChatReply
from tests.upstreams.openai_responses import ResponsesReply

pytestmark = pytest.mark.timeout(30)

ANSWER = "Hello! How can I help you today?"
REASONING = "The user greets me; answer briefly."
LONG_ARGS = '{"file_path": "/srv/app/src/handlers/payments/refunds.py", "offset": 120, "limit": 400}'  # 73 chars
UPSTREAM_OUTPUT = 230  # output tokens the upstream reports (reasoning included): what is billed


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BothApis]:
    def routes(chat: str, responses: str) -> list[dict[str, Any]]:
        return [route("gpt-5-chat", chat, model="gpt-5"), route("gpt-5-responses", responses, model="gpt-5"),
                route("gpt-4.1-chat", chat, model="gpt-4.1")]

    with both_apis(tmp_path_factory.mktemp("audit"), routes, "max-tokens-e2e-signing-key-32-characters") as running:
        yield running


@pytest.fixture(params=["chat", "responses"])
def api(request: pytest.FixtureRequest, env: BothApis) -> str:
    env.chat.reset()
    env.responses.reset()
    return request.param


def _script(env: BothApis, api: str, *, text: str | None, calls: list[tuple[str, str, str]] = (), reasoning: str | None = REASONING) -> None:
    if api == "chat":
        env.chat.reset(ChatReply(text=text, reasoning=reasoning, tool_calls=list(calls), usage=(12, UPSTREAM_OUTPUT, 0)))
    else:
        env.responses.reset(ResponsesReply(text=text, reasoning=reasoning, function_calls=list(calls),
                                           usage=(12, UPSTREAM_OUTPUT, 0, 200)))


def _upstream_budget(env: BothApis, api: str) -> int:
    body = env.chat.last_body if api == "chat" else env.responses.last_body
    return body["max_completion_tokens"] if api == "chat" else body["max_output_tokens"]


def _ask(env: BothApis, model: str, max_tokens: int, stream: bool, **extra: Any) -> tuple[anthropic.types.Message, str]:
    """(the message the SDK builds, the gateway's request id)."""
    return env.ask(stream, model=model, max_tokens=max_tokens, messages=USER_HI, **extra)


def _text(message: anthropic.types.Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_max_tokens_1_probe_gets_a_valid_answer_cut_at_its_budget(env: BothApis, api: str, stream: bool) -> None:
    _script(env, api, text=ANSWER)
    message, request_id = _ask(env, f"gpt-5-{api}", 1, stream)
    assert _upstream_budget(env, api) == 1024  # the reasoning model still gets room to think
    assert _text(message) == ANSWER[:4]
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == UPSTREAM_OUTPUT
    record = wait_record(env.store, request_id)
    assert record["output_tokens"] == UPSTREAM_OUTPUT and NOTE in record["notes"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_call_past_the_budget_is_dropped_whole(env: BothApis, api: str, stream: bool) -> None:
    _script(env, api, text="Let me read it.", calls=[("call_1_Qm7tRz4kLp2Vw8Nf", "Read", LONG_ARGS)])
    message, _ = _ask(env, f"gpt-5-{api}", 20, stream, tools=[READ])  # 80 characters: 15 of text, then 73
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert _text(message) == "Let me read it."
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == UPSTREAM_OUTPUT


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_call_within_the_budget_arrives_whole(env: BothApis, api: str, stream: bool) -> None:
    _script(env, api, text="Let me read it.", calls=[("call_1_Qm7tRz4kLp2Vw8Nf", "Read", LONG_ARGS)])
    message, _ = _ask(env, f"gpt-5-{api}", 30, stream, tools=[READ])  # 120 characters: both fit
    tool_uses = [block for block in message.content if block.type == "tool_use"]
    assert [(t.id, t.name, t.input) for t in tool_uses] == [("call_1_Qm7tRz4kLp2Vw8Nf", "Read", {
        "file_path": "/srv/app/src/handlers/payments/refunds.py", "offset": 120, "limit": 400})]
    assert message.stop_reason == "tool_use"


def test_cut_stream_is_a_valid_event_sequence(env: BothApis, api: str) -> None:
    """On the wire: every started block stops, the message_delta says max_tokens, message_stop ends it."""
    _script(env, api, text=ANSWER, calls=[("call_1_Qm7tRz4kLp2Vw8Nf", "Read", LONG_ARGS)])
    resp = post_messages(env.gateway, {"model": f"gpt-5-{api}", "max_tokens": 2, "stream": True,
                                       "messages": USER_HI, "tools": [READ]})
    assert resp.status == 200
    parsed = sse_events(resp.body)
    assert check_sse_grammar(parsed) == "message_stop"
    events = [data for _, data in parsed]
    deltas = [ev for ev in events if ev["type"] == "message_delta"]
    assert [d["delta"]["stop_reason"] for d in deltas] == ["max_tokens"]
    assert deltas[0]["usage"]["output_tokens"] == UPSTREAM_OUTPUT
    assert not any(ev["type"] == "content_block_start" and ev["content_block"]["type"] == "tool_use" for ev in events)
    text = "".join(ev["delta"].get("text", "") for ev in events if ev["type"] == "content_block_delta")
    assert text == ANSWER[:8]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_model_that_does_not_reason_gets_the_client_max_tokens_and_is_not_cut(env: BothApis, stream: bool) -> None:
    env.chat.reset(ChatReply(text=ANSWER, finish_reason="length", usage=(12, 9, 0)))
    message, _ = _ask(env, "gpt-4.1-chat", 1, stream)
    assert env.chat.last_body["max_completion_tokens"] == 1  # no floor: the upstream cuts its answer itself
    assert _text(message) == ANSWER  # what the upstream sent, untouched
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 9


READ = {"name": "Read", "description": "Read a file.",
        "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}, "offset": {"type": "integer"},
                                                          "limit": {"type": "integer"}}, "required": ["file_path"]}}
