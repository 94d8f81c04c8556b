"""Reasoning on a route on the OpenAI Responses API: the upstream's reasoning item becomes a thinking block whose
signature seals the item opaquely, and turn 2's upstream request carries turn 1's reasoning item unchanged, in
place, whichever way each turn was delivered."""

from __future__ import annotations

import pytest

from tests.responses_helpers import (
    ENCRYPTED,
    TOOLS,
    TURN_1,
    TURN_1_ID,
    assert_replayed_in_place,
    exactly,
    kinds,
    turn_1,
    turn_2,
)
from tests.sdk_helpers import ask, json_and_stream
from tests.upstreams.openai_responses import ResponsesReply, render_response

pytestmark = pytest.mark.timeout(30)


@json_and_stream
def test_reasoning_becomes_thinking_with_an_opaque_signature(stream, responses_client, responses_upstream):
    responses_upstream.script(ResponsesReply(reasoning=["**Planning**", "Read the file, then answer."],
                                             encrypted_content=ENCRYPTED, text="The answer is 4.",
                                             usage=(50, 80, 0, 64)))
    message = ask(responses_client, stream, thinking={"type": "enabled", "budget_tokens": 8000})
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


@pytest.mark.parametrize("turn_2_stream", [False, True], ids=["turn2_json", "turn2_stream"])
@pytest.mark.parametrize("turn_1_stream", [False, True], ids=["turn1_json", "turn1_stream"])
def test_turn_2_carries_turn_1_reasoning_unchanged_in_place(turn_1_stream, turn_2_stream, responses_client,
                                                            responses_upstream):
    first = turn_1(responses_client, responses_upstream, turn_1_stream)
    assert first.content[0].thinking == "**Reading both files**\n\nI need a.txt and b.txt before editing."
    # The assistant content exactly as the SDK returned it (SDK objects, signature included).
    sent = turn_2(responses_client, responses_upstream, first.content, turn_2_stream)
    assert_replayed_in_place(sent)


@json_and_stream
def test_reasoning_without_a_summary_still_round_trips(stream, responses_client, responses_upstream):
    # GPT-5 often returns a reasoning item with an empty summary: an empty thinking block that must still carry it.
    reply = ResponsesReply(reasoning=[], encrypted_content=ENCRYPTED, function_calls=TURN_1.function_calls)
    responses_upstream.script(exactly(reply, TURN_1_ID))
    first = ask(responses_client, stream, tools=TOOLS, messages=[{"role": "user", "content": "edit a and b"}])
    assert [b.type for b in first.content] == ["thinking", "tool_use", "tool_use"]
    assert first.content[0].thinking == "" and first.content[0].signature
    sent = turn_2(responses_client, responses_upstream, first.content, not stream)
    assert kinds(sent)[:3] == ["message", "reasoning", "function_call"], sent["input"]
    assert sent["input"][1] == render_response(reply, TURN_1_ID)["output"][0]


def test_json_and_streamed_turns_seal_the_same_signature(responses_client, responses_upstream):
    as_json = turn_1(responses_client, responses_upstream, False).content[0].signature
    assert turn_1(responses_client, responses_upstream, True).content[0].signature == as_json

