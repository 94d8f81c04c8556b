"""An upstream's tool-call ids reach the client only when Anthropic takes them, they are new in the answer, and they
are long enough to be unique beyond it (the next-turn join is keyed by them: loop/next_turn.py).

Servers that count calls per turn send `call_0` twice; Kimi-style servers send `functions.read:2`, outside
Anthropic's tool_use id pattern `^[a-zA-Z0-9_-]+$`. Such a call gets a gateway-made id (noted in the audit record),
as does a short one (`call_0` in every answer: not noted, nothing is wrong with it within its answer),
so the client's next turn answers each call by its own id and the upstream gets each result paired with its own
call, under the ids the client was given. End to end with the `anthropic` SDK against the scripted Chat and
Responses upstreams, JSON and streamed; and, as a property of the four translators, for any list of upstream ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragoman.protocols import openai_chat as C
from dragoman.protocols import openai_responses as R
from dragoman.translate.chat.response import translate_response as chat_response
from dragoman.translate.chat.stream import ChatStreamBridge
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.response import translate_response as responses_response
from dragoman.translate.responses.stream import ResponsesStreamBridge
from dragoman.translate.tool_ids import MAX_ID_LENGTH, NOTE_INVALID_ID, NOTE_REPEATED
from dragoman.translate.tool_names import ToolNameMap
from tests.anthropic_events import reassemble, wire_events
from tests.audit_helpers import BothApis, both_apis, route, wait_record
from tests.property_strategies import SETTINGS
from tests.sdk_helpers import json_and_stream, tool
from tests.upstreams import ChatReply
from tests.upstreams.openai_chat import render_chunks, render_completion
from tests.upstreams.openai_responses import ResponsesReply, render_events, render_response

pytestmark = pytest.mark.timeout(30)

ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
# Two calls sharing an id, one with an id Anthropic refuses, one with an OpenAI-style random id: what the upstream
# answers the first turn with.
RANDOM_ID = "call_Qm7tRz4kLp2Vw8Nf5Hs3JxYd"
# A numbered id, as the gateway replaces it (translate/tool_ids.py), up to 20 characters: written out here, not
# imported, as the spec.
NUMBERED = re.compile(r"(?:[A-Za-z]+[_-])?[0-9]{1,6}")
CALLS = [("call_0", "Read", '{"path": "a.txt"}'),
         ("call_0", "Read", '{"path": "b.txt"}'),
         ("functions.read:2", "Read", '{"path": "c.txt"}'),
         (RANDOM_ID, "Read", '{"path": "d.txt"}')]
TOOLS = [tool("Read", {"path": {"type": "string"}})]
FIRST_TURN = [{"role": "user", "content": "read a, b and c"}]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BothApis]:
    def routes(chat: str, responses: str) -> list[dict[str, Any]]:
        return [route("chat", chat, model="gpt-4.1"), route("responses", responses, model="gpt-4.1")]

    with both_apis(tmp_path_factory.mktemp("audit"), routes, "tool-ids-e2e-signing-key-32-characters") as running:
        yield running


@pytest.fixture(params=["chat", "responses"])
def api(request: pytest.FixtureRequest, env: BothApis) -> str:
    env.chat.reset([ChatReply(tool_calls=CALLS), ChatReply(text="All three read.")])
    env.responses.reset([ResponsesReply(function_calls=CALLS), ResponsesReply(text="All three read.")])
    return request.param


def _ask(env: BothApis, api: str, stream: bool, messages: list[dict]) -> tuple[anthropic.types.Message, str]:
    return env.ask(stream, model=api, max_tokens=500, messages=messages, tools=TOOLS)


def _tool_uses(message: anthropic.types.Message) -> list[tuple[str, dict]]:
    return [(block.id, block.input) for block in message.content if block.type == "tool_use"]


def _pairs_sent(env: BothApis, api: str) -> tuple[dict[str, str], dict[str, str]]:
    """What the upstream got on the second turn: (the path each call id reads, the result each call id got)."""
    if api == "chat":
        sent = env.chat.last_body["messages"]
        calls = {c["id"]: json.loads(c["function"]["arguments"])["path"]
                 for m in sent if m["role"] == "assistant" for c in m.get("tool_calls") or ()}
        results = {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"}
    else:
        items = env.responses.last_body["input"]
        calls = {i["call_id"]: json.loads(i["arguments"])["path"] for i in items if i.get("type") == "function_call"}
        results = {i["call_id"]: i["output"] for i in items if i.get("type") == "function_call_output"}
    return calls, results


@json_and_stream
def test_repeated_and_invalid_upstream_call_ids_become_unique_valid_tool_use_ids(env: BothApis, api: str, stream: bool) -> None:
    message, request_id = _ask(env, api, stream, FIRST_TURN)
    uses = _tool_uses(message)
    assert [use[1] for use in uses] == [{"path": "a.txt"}, {"path": "b.txt"}, {"path": "c.txt"}, {"path": "d.txt"}]
    ids = [use[0] for use in uses]
    assert len(set(ids)) == 4 and all(ANTHROPIC_ID.match(i) for i in ids), ids
    # `call_0` would be every answer's first id: made here, unique to the answer; a random id is kept.
    assert ids[0] != "call_0" and ids[3] == RANDOM_ID
    notes = wait_record(env.store, request_id)["notes"]
    assert NOTE_REPEATED in notes and NOTE_INVALID_ID in notes


@json_and_stream
def test_each_result_reaches_its_own_call_on_the_next_turn(env: BothApis, api: str, stream: bool) -> None:
    message, _ = _ask(env, api, stream, FIRST_TURN)
    assistant = [{"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
                 for block in message.content if block.type == "tool_use"]
    results = [{"type": "tool_result", "tool_use_id": block["id"], "content": f"CONTENT OF {block['input']['path']}"}
               for block in assistant]
    conversation = [*FIRST_TURN, {"role": "assistant", "content": assistant}, {"role": "user", "content": results}]
    answer, request_id = _ask(env, api, stream, conversation)
    assert [block.type for block in answer.content] == ["text"]
    calls, got = _pairs_sent(env, api)
    # The upstream gets the ids the client was given, and each call its own file's content.
    assert list(calls) == [block["id"] for block in assistant]
    assert got == {call_id: f"CONTENT OF {path}" for call_id, path in calls.items()}
    notes = wait_record(env.store, request_id)["notes"]
    assert "orphan tool_result sent as text" not in notes and "missing tool_result filled in" not in notes


# ---- any upstream ids, all four translators --------------------------------------------------------------

KEY = b"tool-ids-property"
upstream_ids = st.lists(st.one_of(
    st.none(), st.just(""),
    st.sampled_from(["call_0", "call_1", "functions.read:2", "toolu_prop_0", "toolu_prop_1", "toolu_prop_1_1",
                     "a" * MAX_ID_LENGTH, "a" * (MAX_ID_LENGTH + 1), RANDOM_ID,
                     "call_12", "tool-7", "42", "1234567", "aB3dE6gH9", "abcdefgh1", "a1b2c3d4e",
                     "functioncallnumber_12", "toolcall_123456"]),
    st.text(max_size=8),
), max_size=6)


def _ctx() -> RequestContext:
    return RequestContext(message_id="msg_prop", requested_model="claude-x", tool_names=ToolNameMap(64))


def _ids_of(content: list[dict]) -> list[str]:
    return [block["id"] for block in content if block["type"] == "tool_use"]


def _chat(ids: list[str | None]) -> list[list[str]]:
    reply = ChatReply(tool_calls=[(i, "Read", '{"n": %d}' % n) for n, i in enumerate(ids)])  # type: ignore[misc]
    answer = msgspec.convert(render_completion(reply), C.ChatResponse)
    bridge, events = ChatStreamBridge(_ctx()), []
    for chunk in render_chunks(reply):
        events += bridge.on_chunk(msgspec.convert(chunk, C.ChatChunk))
    events += bridge.on_done()
    json_ids = _ids_of(msgspec.to_builtins(chat_response(answer, _ctx()))["content"])
    return [json_ids, _ids_of(reassemble(wire_events(events))["content"])]


def _responses(ids: list[str | None]) -> list[list[str]]:
    reply = ResponsesReply(function_calls=[(i, "Read", '{"n": %d}' % n) for n, i in enumerate(ids)])  # type: ignore[misc]
    answer = msgspec.convert(render_response(reply), R.Response)
    bridge, events = ResponsesStreamBridge(_ctx(), KEY), []
    for event in render_events(reply):
        events += bridge.on_event(R.decode_event(msgspec.json.encode(event), event["type"].encode()))
    json_ids = _ids_of(msgspec.to_builtins(responses_response(answer, _ctx(), KEY))["content"])
    return [json_ids, _ids_of(reassemble(wire_events(events))["content"])]


@SETTINGS
@given(upstream_ids)
def test_any_upstream_call_ids_give_unique_valid_tool_use_ids(ids: list[str | None]) -> None:
    for translated in (*_chat(ids), *_responses(ids)):
        assert len(translated) == len(ids)
        assert len(set(translated)) == len(translated), translated
        assert all(ANTHROPIC_ID.match(i) and len(i) <= MAX_ID_LENGTH for i in translated), translated
        # An id Anthropic takes, not given to an earlier call of the answer, and not numbered (`call_0`, the same in
        # every answer), reaches the client as the upstream sent it; any other is replaced.
        seen: set[str] = set()
        for upstream, given_id in zip(ids, translated):
            kept = (upstream and upstream not in seen and len(upstream) <= MAX_ID_LENGTH
                    and ANTHROPIC_ID.match(upstream) and not (len(upstream) <= 20 and NUMBERED.fullmatch(upstream)))
            assert (given_id == upstream) == bool(kept), (upstream, given_id)
            seen.add(given_id)
    chat_json, chat_stream, responses_json, responses_stream = (*_chat(ids), *_responses(ids))
    assert chat_stream == chat_json and responses_stream == responses_json  # a stream reassembles to its JSON answer


def test_mistral_style_ids_reach_the_client_unchanged_and_numbered_ones_do_not() -> None:
    """Mistral refuses a next turn whose ids are not its own 9 letters and digits: they must survive translation,
    whatever their characters; `call_0`-style ids, the same in every answer, must not."""
    mistral = ["aB3dE6gH9", "abcdefgh1", "123456789", "Zz0Zz0Zz0"]
    for translated in (*_chat(mistral), *_responses(mistral)):
        assert translated == mistral
    numbered = ["call_0", "tool-12", "7"]
    for translated in (*_chat(numbered), *_responses(numbered)):
        assert all(given.startswith("toolu_prop_") for given in translated), translated
