"""OpenAI-compatible servers that stray from OpenAI's wire format, over real sockets through a gateway, asked with the
official `anthropic` SDK (review 12):

- Ollama's /v1 streams every call of a parallel batch at index 0, each with its own id: one tool_use per call;
- a server that sends a call's whole arguments and then sends them again: one JSON object in the tool_use block;
- a finish_reason that says the generation failed (vLLM `abort`, DeepSeek `insufficient_system_resource`, `error`)
  is a failure: before the first byte and in a JSON answer it is retried and falls back; after the first byte it is
  an `error` event, never a clean end_turn; Mistral's `model_length` is max_tokens;
- a 200 whose body or choice holds an error (OpenRouter) is the failure it reports (its code 429: a rate limit), and
  a 200 with no choice and no usage is a failure, never an empty, successful message;
- `finish_reason: "tool_calls"` with no call made ends the turn; a usage count written as a float (12.0) is read;
- llama.cpp's server reports a failure mid-stream as an `error: {...}` SSE line (then `data: [DONE]`): before the
  first byte it is the failure it reports (its code 400: the request's fault, never retried; a 500 falls back),
  after it an `error` event carrying the server's message, never a clean end;
- Groq's streamed usage in `x_groq.usage` is the usage reported;
- whitespace-only `content` between two argument fragments of one call leaves the call whole, with no text block;
- a tool call whose id is a number (`"id": 0`), streamed or in a JSON answer, is a tool_use with an id of the gateway's
  own that the next turn can answer (a numbered id is the same in every answer: tool_ids.py);
- a server that sends each call without an index or an id, whole in one fragment: one tool_use per call."""

from __future__ import annotations

import json
from typing import Iterator

import anthropic
import pytest

from tests.anthropic_events import check_sse_grammar
from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, USER_HI, config_yaml, route, sdk
from tests.sdk_helpers import blocks, stream_raw
from tests.upstreams import ChatReply, RawStream, ScriptedChatUpstream
from tests.upstreams.chat_chunks import chat_chunk, tool_call_delta
from tests.upstreams.openai_chat import RawBody

pytestmark = pytest.mark.timeout(60)

BACKUP_TEXT = "from the backup"
RETRY_ONCE = {"attempts": 1}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ScriptedChatUpstream, ScriptedChatUpstream, Gateway]]:
    with ScriptedChatUpstream() as primary, ScriptedChatUpstream(ChatReply(text=BACKUP_TEXT)) as backup:
        routes = [
            route("main", primary.base_url, provider="openai_compatible", fallbacks=["spare"], retry=RETRY_ONCE),
            route("spare", backup.base_url, provider="openai_compatible"),
            route("alone", primary.base_url, provider="openai_compatible", retry=RETRY_ONCE),
        ]
        with run_gateway(config_yaml(routes), env=KEYS_ENV) as gateway:
            yield primary, backup, gateway


@pytest.fixture
def primary(servers) -> Iterator[ScriptedChatUpstream]:
    servers[0].reset()
    servers[1].reset(ChatReply(text=BACKUP_TEXT))
    yield servers[0]


@pytest.fixture
def client(servers) -> anthropic.Anthropic:
    return sdk(servers[2])


def _ask(client: anthropic.Anthropic, stream: bool, model: str = "alone") -> anthropic.types.Message:
    body = {"model": model, "max_tokens": 500, "messages": USER_HI}
    if stream:
        with client.messages.stream(**body) as events:
            return events.get_final_message()
    return client.messages.create(**body)


def _stream(*chunks: dict) -> RawStream:
    return RawStream([chat_chunk({"role": "assistant", "content": ""}), *chunks])


def _tool(index: int, **fields: str) -> dict:
    return chat_chunk({"tool_calls": [tool_call_delta(index, **fields)]})


def _completion(content: str, finish_reason: str, usage: dict | None = None) -> bytes:
    body = {"id": "chatcmpl-1", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}]}
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body).encode()


# ---- tool calls ----------------------------------------------------------------------------------------------


def test_parallel_calls_all_at_index_0_become_one_tool_use_each(primary, client) -> None:
    primary.script(_stream(
        _tool(0, id="call_a1b2c3d4", name="Read", args='{"path": "a.txt"}'),
        _tool(0, id="call_e5f6g7h8", name="Bash", args='{"command": '),
        _tool(0, args='"ls"}'),
        chat_chunk({}, "tool_calls"),
    ))
    message = _ask(client, stream=True)
    assert message.stop_reason == "tool_use"
    assert blocks(message.content) == [("tool_use", "call_a1b2c3d4", "Read", {"path": "a.txt"}),
                                       ("tool_use", "call_e5f6g7h8", "Bash", {"command": "ls"})]


def test_arguments_sent_whole_and_then_again_stream_as_one_json_object(primary, servers) -> None:
    primary.script(_stream(
        _tool(0, id="call_rm", name="Bash", args='{"command":"rm -rf build"}'),
        _tool(0, args='{"command":"rm -rf build"}'),
        chat_chunk({}, "tool_calls"),
    ))
    status, events = stream_raw(servers[2], model="alone", max_tokens=500, messages=USER_HI)
    assert status == 200 and check_sse_grammar(events) == "message_stop"
    fragments = [e["delta"]["partial_json"] for _, e in events
                 if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"]
    # The client joins the fragments and parses them once (the TypeScript SDK failed: "Unexpected non-whitespace
    # character after JSON at position 26").
    assert json.loads("".join(fragments)) == {"command": "rm -rf build"}


def test_tool_calls_finish_reason_without_a_call_ends_the_turn(primary, client) -> None:
    primary.script(_stream(chat_chunk({"content": "<tool_call>{}</tool_call>"}), chat_chunk({}, "tool_calls")))
    assert _ask(client, stream=True).stop_reason == "end_turn"
    primary.script(RawBody(_completion("<tool_call>{}</tool_call>", "tool_calls"), "application/json"))
    assert _ask(client, stream=False).stop_reason == "end_turn"


# ---- finish reasons ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["abort", "insufficient_system_resource", "error"])
def test_a_failed_generation_before_the_first_byte_falls_back(reason: str, primary, client) -> None:
    # vLLM aborting a request before it generated anything: the first event the gateway reads says so
    primary.script(RawStream([chat_chunk({"role": "assistant", "content": ""}, reason)]))
    message = _ask(client, stream=True, model="main")
    assert [b.text for b in message.content] == [BACKUP_TEXT]


@pytest.mark.parametrize("reason", ["abort", "insufficient_system_resource", "error"])
def test_a_failed_generation_in_a_json_answer_falls_back(reason: str, primary, client) -> None:
    primary.script(RawBody(_completion("I will now refactor the ", reason), "application/json"))
    message = _ask(client, stream=False, model="main")
    assert [b.text for b in message.content] == [BACKUP_TEXT]
    with pytest.raises(anthropic.APIStatusError) as raised:
        _ask(client, stream=False)
    assert raised.value.status_code >= 500


def test_a_failed_generation_after_the_first_byte_is_an_error_event(primary, client) -> None:
    primary.script(RawStream([chat_chunk({"role": "assistant", "content": ""}), chat_chunk({"content": "I will "}),
                              chat_chunk({}, "abort")], hold_after=2))
    with pytest.raises(anthropic.APIStatusError) as raised:
        with client.messages.stream(model="alone", max_tokens=500, messages=USER_HI) as events:
            for event in events:
                if event.type == "content_block_delta":
                    primary.release()  # the client has the first bytes: the abort comes after them
    assert "abort" in str(raised.value)


def test_model_length_is_max_tokens(primary, client) -> None:
    primary.script(_stream(chat_chunk({"content": "I will now refactor the "}), chat_chunk({}, "model_length")))
    assert _ask(client, stream=True).stop_reason == "max_tokens"
    primary.script(RawBody(_completion("I will now refactor the ", "model_length"), "application/json"))
    assert _ask(client, stream=False).stop_reason == "max_tokens"


# ---- errors inside a 200 -------------------------------------------------------------------------------------


def test_an_error_body_in_a_200_is_the_failure_it_reports(primary, client) -> None:
    limited = {"error": {"message": "Provider returned error", "code": 429, "metadata": {"provider_name": "X"}}}
    primary.script(RawBody(json.dumps(limited).encode(), "application/json"))
    with pytest.raises(anthropic.RateLimitError):
        _ask(client, stream=False)
    primary.script(RawBody(json.dumps(limited).encode(), "application/json"))
    assert [b.text for b in _ask(client, stream=False, model="main").content] == [BACKUP_TEXT]


def test_a_choice_holding_an_error_is_the_failure_it_reports(primary, client) -> None:
    failed = {"id": "gen-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                                          "finish_reason": "error", "error": {"code": 502, "message": "down"}}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 0}}
    primary.script(RawBody(json.dumps(failed).encode(), "application/json"))
    assert [b.text for b in _ask(client, stream=False, model="main").content] == [BACKUP_TEXT]


def test_a_200_with_no_choice_and_no_usage_is_a_failure(primary, client) -> None:
    primary.script(RawBody(b'{"id": "chatcmpl-1", "choices": []}', "application/json"))
    assert [b.text for b in _ask(client, stream=False, model="main").content] == [BACKUP_TEXT]


# ---- usage ---------------------------------------------------------------------------------------------------


def test_usage_counts_written_as_floats_are_read(primary, client) -> None:
    usage = {"prompt_tokens": 12.0, "completion_tokens": 3.0, "total_tokens": 15.0}
    primary.script(RawStream([chat_chunk({"role": "assistant", "content": "Hi."}),
                              {**chat_chunk({}, "stop"), "usage": usage}]))
    message = _ask(client, stream=True)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 3)
    primary.script(RawBody(_completion("Hi.", "stop", usage), "application/json"))
    message = _ask(client, stream=False)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 3)


def test_groq_usage_in_x_groq_is_the_usage_reported(primary, client) -> None:
    groq = {"id": "req_01jx", "usage": {"prompt_tokens": 1234, "completion_tokens": 567, "total_tokens": 1801}}
    primary.script(_stream(chat_chunk({"content": "hello"}), {**chat_chunk({}, "stop"), "x_groq": groq}))
    message = _ask(client, stream=True)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (1234, 567)


# ---- llama.cpp's `error:` lines ------------------------------------------------------------------------------

CONTEXT_EXCEEDED = (b'error: {"code":400,"message":"the request exceeds the available context size, try increasing '
                    b'it","type":"exceed_context_size_error"}\n\n')


def test_a_llama_cpp_error_line_before_the_first_byte_is_the_failure_it_reports(primary, client) -> None:
    primary.script(RawStream([CONTEXT_EXCEEDED]))
    with pytest.raises(anthropic.BadRequestError) as refused:  # the request's fault: the client hears it as a 400
        _ask(client, stream=True)
    assert "exceeds the available context size" in str(refused.value)
    crashed = b'error: {"code":500,"message":"llama_decode failed","type":"server_error"}\n\n'
    primary.script(RawStream([crashed]))  # served to the retry too
    with pytest.raises(anthropic.APIStatusError) as failed:
        _ask(client, stream=True)
    assert failed.value.status_code >= 500 and "llama_decode failed" in str(failed.value)


def test_a_llama_cpp_error_line_after_the_first_byte_is_an_error_event(primary, client) -> None:
    primary.script(RawStream([chat_chunk({"role": "assistant", "content": ""}), chat_chunk({"content": "I will "}),
                              CONTEXT_EXCEEDED], hold_after=2))
    with pytest.raises(anthropic.APIStatusError) as raised:
        with client.messages.stream(model="alone", max_tokens=500, messages=USER_HI) as events:
            for event in events:
                if event.type == "content_block_delta":
                    primary.release()  # the client has the first bytes: the error line comes after them
    assert "exceeds the available context size" in str(raised.value)


# ---- tool calls ----------------------------------------------------------------------------------------------


def test_whitespace_text_between_argument_fragments_leaves_the_call_whole(primary, client) -> None:
    primary.script(_stream(_tool(0, id="call_a1b2c3d4", name="Bash", args='{"command": '),
                           chat_chunk({"content": "\n"}), chat_chunk({"content": " "}),
                           _tool(0, args='"ls -la"}'), chat_chunk({}, "tool_calls")))
    message = _ask(client, stream=True)
    assert message.stop_reason == "tool_use"
    assert blocks(message.content) == [("tool_use", "call_a1b2c3d4", "Bash", {"command": "ls -la"})]


def test_a_tool_call_id_that_is_a_number_is_an_id_streamed_and_not(primary, client) -> None:
    primary.script(_stream(chat_chunk({"tool_calls": [{"index": 0, "id": 0, "type": "function",
                                                       "function": {"name": "Bash", "arguments": '{"command": "ls"}'}}]}),
                           chat_chunk({}, "tool_calls")))
    streamed = _ask(client, stream=True)
    call = {"id": 0, "type": "function", "function": {"name": "Read", "arguments": '{"file_path": "a.txt"}'}}
    body = {"id": "chatcmpl-1", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]}, "finish_reason": "tool_calls"}]}
    primary.script(RawBody(json.dumps(body).encode(), "application/json"))
    answered = _ask(client, stream=False)
    for message, (name, arguments) in ((streamed, ("Bash", {"command": "ls"})),
                                       (answered, ("Read", {"file_path": "a.txt"}))):
        assert message.stop_reason == "tool_use"
        [(kind, call_id, called, given)] = blocks(message.content)
        assert (kind, called, given) == ("tool_use", name, arguments)
        assert call_id.startswith("toolu_") and call_id.replace("_", "").isalnum()  # Anthropic's id pattern


def test_calls_sent_whole_without_index_or_id_become_one_tool_use_each(primary, client) -> None:
    def whole(name: str, arguments: str) -> dict:
        return chat_chunk({"tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]})

    primary.script(_stream(whole("Read", '{"file_path": "a.txt"}'), whole("Read", '{"file_path": "b.txt"}'),
                           whole("Bash", '{"command": '), chat_chunk({"tool_calls": [{"function": {"arguments": '"ls"}'}}]}),
                           chat_chunk({}, "tool_calls")))
    message = _ask(client, stream=True)
    assert message.stop_reason == "tool_use"
    made = blocks(message.content)
    assert [(kind, name, given) for kind, _, name, given in made] == [
        ("tool_use", "Read", {"file_path": "a.txt"}), ("tool_use", "Read", {"file_path": "b.txt"}),
        ("tool_use", "Bash", {"command": "ls"})]
    assert len({call_id for _, call_id, _, _ in made}) == 3


def test_a_name_repeated_on_each_fragment_of_one_unindexed_call_leaves_one_call(primary, client) -> None:
    def fragment(arguments: str) -> dict:
        return chat_chunk({"tool_calls": [{"type": "function", "function": {"name": "Bash", "arguments": arguments}}]})

    # No index, no id, the name on every fragment; a trailing newline, then the call restated with no arguments.
    primary.script(_stream(fragment('{"command": '), fragment('"ls"}'), fragment("\n"), fragment(""),
                           fragment('{"command": "ls"}'), chat_chunk({}, "tool_calls")))
    message = _ask(client, stream=True)
    assert message.stop_reason == "tool_use"
    assert [(kind, name, given) for kind, _, name, given in blocks(message.content)] == [
        ("tool_use", "Bash", {"command": "ls"})]

