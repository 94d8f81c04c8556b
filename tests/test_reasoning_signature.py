"""The reasoning round trip: an upstream reasoning item travels to the client inside a thinking block's
signature (sealed with the gateway's key) and comes back, unchanged and in place, on the next turn."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_responses as R
from dragoman.translate.responses.request import translate_request
from dragoman.translate.options import TranslationOptions
from dragoman.translate.reasoning_signature import (
    PREFIX,
    open_,
    open_reasoning,
    seal,
    seal_reasoning,
)
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.stream import ResponsesStreamBridge
from dragoman.translate.responses.response import translate_response
from dragoman.translate.tool_names import ToolNameMap
from tests.anthropic_events import reassemble, wire_events
from tests.upstreams.openai_responses import (
    ResponsesReply,
    render_events,
    render_response,
)
from tests.wire import as_sent, messages_request

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
# What a real Anthropic model puts in a thinking block's signature (opaque base64, no dgm1. prefix).
ANTHROPIC_SIGNATURE = "EqQBCkYIBxgCKkBzdGF0aWMtc2lnbmF0dXJlLWZyb20tYW50aHJvcGljAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def _ctx() -> RequestContext:
    return RequestContext(message_id="msg_round", requested_model="claude-opus-4-8", tool_names=ToolNameMap(64))


# ---- seal / open_ -----------------------------------------------------------------------------------------


@given(st.binary(max_size=2048))
def test_seal_then_open_returns_the_bytes(payload: bytes) -> None:
    signature = seal(payload, KEY)
    assert signature.startswith(PREFIX) and signature.isascii()
    assert open_(signature, KEY) == payload


def test_seal_is_deterministic_so_streamed_and_json_answers_agree() -> None:
    assert seal(b"item", KEY) == seal(b"item", KEY)


@given(st.binary(min_size=1, max_size=256), st.data())
def test_any_altered_character_fails_to_open(payload: bytes, data: st.DataObject) -> None:
    signature = seal(payload, KEY)
    position = data.draw(st.integers(0, len(signature) - 1))
    replacement = data.draw(st.sampled_from("AQgw_-.x=+/ é"))
    tampered = signature[:position] + replacement + signature[position + 1:]
    if tampered != signature:
        assert open_(tampered, KEY) is None


@pytest.mark.parametrize(
    "signature",
    ["", "dgm1.", "dgm1..", "dgm1.abc", "dgm2.eyJ9.AAAA", ANTHROPIC_SIGNATURE, "dgm1.e30." + "A" * 43, "dgm1.e30." + "A" * 43 + "\n"],
)
def test_foreign_or_malformed_signatures_do_not_open(signature: str) -> None:
    assert open_(signature, KEY) is None


def test_another_key_does_not_open() -> None:
    assert open_(seal(b"item", OTHER_KEY), KEY) is None


def test_a_sealed_payload_that_is_not_a_reasoning_item_is_not_replayed() -> None:
    assert open_reasoning(seal(b"not json", KEY), KEY) is None
    assert open_reasoning(None, KEY) is None


# ---- the multi-turn round trip ----------------------------------------------------------------------------

ENCRYPTED = "gAAAAABo-opaque-encrypted-reasoning-" + "x" * 200
TURN_1 = ResponsesReply(
    reasoning=["**Planning the read**\n\nI should read the file first.", "Then run the tests."],
    encrypted_content=ENCRYPTED,
    text="Reading it now.",
    function_calls=[("call_A_Qm7tRz4kLp2Vw8Nf", "Read", '{"file_path":"/tmp/a.py"}'), ("call_B_Qm7tRz4kLp2Vw8Nf", "Bash", '{"command":"pytest"}')],
)
TOOLS = [
    {"name": "Read", "description": "Read a file", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}},
    {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
]


def _turn_1_json() -> dict:
    response = msgspec.convert(render_response(TURN_1, "resp_turn1"), R.Response)
    return msgspec.to_builtins(translate_response(response, _ctx(), KEY))


def _turn_1_streamed() -> dict:
    bridge = ResponsesStreamBridge(_ctx(), KEY)
    events: list[A.StreamEvent] = []
    for event in render_events(TURN_1, "resp_turn1"):
        decoded = R.decode_event(json.dumps(event).encode())
        assert decoded is not None
        events += bridge.on_event(decoded)
    return reassemble(wire_events(events))


def _turn_2(assistant_content: list[dict], key: bytes = KEY) -> tuple[dict, RequestContext]:
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 32000,
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "fix the tests"},
            {"role": "assistant", "content": assistant_content},
            {"role": "user", "content": [
                # Claude Code answers in completion order, not call order.
                {"type": "tool_result", "tool_use_id": "call_B_Qm7tRz4kLp2Vw8Nf", "content": "1 failed"},
                {"type": "tool_result", "tool_use_id": "call_A_Qm7tRz4kLp2Vw8Nf", "content": "def f(): ..."},
            ]},
        ],
    }
    ctx = _ctx()
    req = translate_request(messages_request(body), "gpt-5", TranslationOptions(), ctx, reasoning_key=key)
    return as_sent(req), ctx


def _turn_1_reasoning_item() -> dict:
    return render_response(TURN_1, "resp_turn1")["output"][0]


@pytest.mark.parametrize("turn_1", [_turn_1_json, _turn_1_streamed], ids=["json", "streamed"])
def test_turn_2_replays_turn_1_reasoning_item_unchanged_in_place(turn_1) -> None:
    message = turn_1()
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    thinking = message["content"][0]
    assert thinking["thinking"] == "**Planning the read**\n\nI should read the file first.\n\nThen run the tests."
    assert ENCRYPTED not in thinking["thinking"]
    request, ctx = _turn_2(message["content"])
    assert [item["type"] for item in request["input"]] == [
        "message", "reasoning", "message", "function_call", "function_call", "function_call_output", "function_call_output",
    ]
    original = _turn_1_reasoning_item()
    assert request["input"][1] == {
        "type": "reasoning", "id": original["id"], "summary": original["summary"], "encrypted_content": ENCRYPTED,
    }
    assert [i["call_id"] for i in request["input"][3:]] == ["call_A_Qm7tRz4kLp2Vw8Nf", "call_B_Qm7tRz4kLp2Vw8Nf", "call_A_Qm7tRz4kLp2Vw8Nf", "call_B_Qm7tRz4kLp2Vw8Nf"]
    assert request["include"] == ["reasoning.encrypted_content"] and request["store"] is False
    assert not any("thinking" in note for note in ctx.notes)


def test_json_and_streamed_turns_carry_the_same_signature() -> None:
    assert _turn_1_json()["content"][0]["signature"] == _turn_1_streamed()["content"][0]["signature"]


def test_edited_thinking_signature_is_dropped_not_replayed() -> None:
    content = _turn_1_json()["content"]
    signature = content[0]["signature"]
    payload = json.loads(open_(signature, KEY))  # type: ignore[arg-type]
    payload["encrypted_content"] = "forged"
    content[0]["signature"] = seal(json.dumps(payload).encode(), OTHER_KEY)
    request, ctx = _turn_2(content)
    assert "reasoning" not in [item["type"] for item in request["input"]]
    assert "thinking dropped (signature not from this gateway)" in ctx.notes


def test_another_deployments_signature_is_dropped() -> None:
    request, ctx = _turn_2(_turn_1_json()["content"], key=OTHER_KEY)
    assert "reasoning" not in [item["type"] for item in request["input"]]
    assert "thinking dropped (signature not from this gateway)" in ctx.notes


def test_anthropic_thinking_and_redacted_thinking_are_dropped() -> None:
    content = [
        {"type": "thinking", "thinking": "Claude's own thoughts", "signature": ANTHROPIC_SIGNATURE},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"},
        {"type": "text", "text": "Reading it now."},
        {"type": "tool_use", "id": "call_A_Qm7tRz4kLp2Vw8Nf", "name": "Read", "input": {"file_path": "/tmp/a.py"}},
        {"type": "tool_use", "id": "call_B_Qm7tRz4kLp2Vw8Nf", "name": "Bash", "input": {"command": "pytest"}},
    ]
    request, ctx = _turn_2(content)
    assert [item["type"] for item in request["input"]][:3] == ["message", "message", "function_call"]
    assert "Claude's own thoughts" not in json.dumps(request)
    assert "thinking dropped (signature not from this gateway)" in ctx.notes
    assert "redacted_thinking dropped" in ctx.notes


def test_reasoning_without_encrypted_content_is_not_replayed() -> None:
    # With store: false OpenAI answers "Item with id 'rs_…' not found" for a reasoning item it cannot decrypt.
    item = R.OutputItem(type="reasoning", id="rs_plain", summary=[R.Summary(text="thought")])
    content = [
        {"type": "thinking", "thinking": "thought", "signature": seal_reasoning(item, KEY)},
        {"type": "tool_use", "id": "call_A_Qm7tRz4kLp2Vw8Nf", "name": "Read", "input": {}},
        {"type": "tool_use", "id": "call_B_Qm7tRz4kLp2Vw8Nf", "name": "Bash", "input": {}},
    ]
    request, ctx = _turn_2(content)
    assert "reasoning" not in [i["type"] for i in request["input"]]
    assert "thinking dropped (reasoning item without encrypted_content)" in ctx.notes


def test_interleaved_thinking_keeps_each_reasoning_item_before_its_call() -> None:
    first = R.OutputItem(type="reasoning", id="rs_1", summary=[], encrypted_content="E1")
    second = R.OutputItem(type="reasoning", id="rs_2", summary=[], encrypted_content="E2")
    content = [
        {"type": "thinking", "thinking": "", "signature": seal_reasoning(first, KEY)},
        {"type": "tool_use", "id": "call_A_Qm7tRz4kLp2Vw8Nf", "name": "Read", "input": {}},
        {"type": "thinking", "thinking": "", "signature": seal_reasoning(second, KEY)},
        {"type": "tool_use", "id": "call_B_Qm7tRz4kLp2Vw8Nf", "name": "Bash", "input": {}},
    ]
    request, _ = _turn_2(content)
    kinds = [(i["type"], i.get("id") or i.get("call_id")) for i in request["input"][1:5]]
    assert kinds == [("reasoning", "rs_1"), ("function_call", "call_A_Qm7tRz4kLp2Vw8Nf"), ("reasoning", "rs_2"), ("function_call", "call_B_Qm7tRz4kLp2Vw8Nf")]


def test_a_reasoning_item_with_nothing_after_it_is_dropped() -> None:
    # OpenAI rejects "reasoning was provided without its required following item".
    item = R.OutputItem(type="reasoning", id="rs_1", summary=[], encrypted_content="E1")
    body = {
        "model": "claude-opus-4-8", "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "", "signature": seal_reasoning(item, KEY)}]},
            {"role": "user", "content": "again"},
        ],
    }
    ctx = _ctx()
    req = translate_request(messages_request(body), "gpt-5", TranslationOptions(), ctx, reasoning_key=KEY)
    assert not any(isinstance(i, R.ReasoningItem) for i in req.input)
    assert "trailing reasoning item dropped" in ctx.notes
