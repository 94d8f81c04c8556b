"""Golden-style cases for the Responses upstream (design §2 rules, §4 shapes): Responses answer → Anthropic message:
text, parallel calls with their names restored, reasoning sealed into a thinking signature, refusals,
incomplete answers, usage, unknown items, failures as the matching error.
(Requests: tests/test_responses_request_translation.py.)"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from dragoman.errors import InvalidRequest, Overloaded, RateLimited
from dragoman.protocols import openai_responses as R
from dragoman.translate.reasoning_signature import open_reasoning
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.response import translate_response
from dragoman.translate.tool_names import ToolNameMap, shorten

KEY = b"translation-test-key"
MODEL = "claude-sonnet-4-5"
LONG_NAME = "mcp__some_server_with_a_long_name__and_a_tool_whose_name_is_also_rather_long"


def _response(output: list[dict], **fields: Any) -> R.Response:
    body = {"id": "resp_1", "object": "response", "status": "completed", "model": "gpt-5", "output": output,
            "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40}, "output_tokens": 9,
                      "output_tokens_details": {"reasoning_tokens": 4}}, **fields}
    return msgspec.convert(body, R.Response)


def _message(ctx_names: tuple[str, ...] = ()) -> RequestContext:
    ctx = RequestContext(message_id="msg_golden", requested_model=MODEL, tool_names=ToolNameMap(64), input_estimate=77)
    for name in ctx_names:
        ctx.tool_names.upstream(name)
    return ctx


def _translate(resp: R.Response, ctx: RequestContext | None = None) -> dict:
    return msgspec.to_builtins(translate_response(resp, ctx or _message(), KEY))


def _expected(content: list[dict], stop_reason: str, usage: dict | None = None) -> dict:
    return {"type": "message", "id": "msg_golden", "model": MODEL, "role": "assistant", "content": content,
            "stop_reason": stop_reason, "stop_sequence": None,
            "usage": usage or {"input_tokens": 60, "output_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 40}}


TEXT = {"id": "msg_a", "type": "message", "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": "Hello.", "annotations": []}]}


def test_text_answer_with_cached_usage() -> None:
    assert _translate(_response([TEXT])) == _expected([{"type": "text", "text": "Hello."}], "end_turn")


def test_parallel_function_calls_become_tool_use_with_call_ids_and_restored_names() -> None:
    ctx = _message((LONG_NAME,))
    calls = [
        {"id": "fc_1", "type": "function_call", "call_id": "call_1Qm7tRz4kLp2Vw8Nf5Hs3Jx", "name": "Read", "arguments": '{"file_path":"a"}'},
        {"id": "fc_2", "type": "function_call", "call_id": "call_2Qm7tRz4kLp2Vw8Nf5Hs3Jx", "name": shorten(LONG_NAME, 64), "arguments": '"{\\"x\\":1}"'},
        {"id": "fc_3Qm7tRz4kLp2Vw8Nf5Hs3JxYd", "type": "function_call", "name": "Read", "arguments": ""},
    ]
    assert _translate(_response([TEXT, *calls]), ctx) == _expected([
        {"type": "text", "text": "Hello."},
        {"type": "tool_use", "id": "call_1Qm7tRz4kLp2Vw8Nf5Hs3Jx", "name": "Read", "input": {"file_path": "a"}},
        {"type": "tool_use", "id": "call_2Qm7tRz4kLp2Vw8Nf5Hs3Jx", "name": LONG_NAME, "input": {"x": 1}},
        {"type": "tool_use", "id": "fc_3Qm7tRz4kLp2Vw8Nf5Hs3JxYd", "name": "Read", "input": {}},
    ], "tool_use")
    assert ctx.notes == ["tool arguments unwrapped"]


def test_reasoning_becomes_thinking_with_a_sealed_signature() -> None:
    reasoning = {"id": "rs_1", "type": "reasoning", "encrypted_content": "ENC",
                 "summary": [{"type": "summary_text", "text": "One."}, {"type": "summary_text", "text": "Two."}]}
    got = _translate(_response([reasoning, TEXT]))
    thinking = got["content"][0]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "One.\n\nTwo."
    item = open_reasoning(thinking["signature"], KEY)
    assert item is not None and (item.id, item.encrypted_content, [s.text for s in item.summary]) == ("rs_1", "ENC", ["One.", "Two."])
    assert got["content"][1:] == [{"type": "text", "text": "Hello."}]


def test_refusal_part_is_text_with_stop_reason_refusal() -> None:
    refusal = {"id": "msg_r", "type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]}
    assert _translate(_response([refusal])) == _expected([{"type": "text", "text": "I can't help with that."}], "refusal")


@pytest.mark.parametrize(("reason", "stop_reason"), [("max_output_tokens", "max_tokens"), ("content_filter", "refusal")])
def test_incomplete_answer_stop_reason(reason: str, stop_reason: str) -> None:
    resp = _response([TEXT], status="incomplete", incomplete_details={"reason": reason})
    assert _translate(resp)["stop_reason"] == stop_reason


def test_missing_usage_falls_back_to_the_estimate() -> None:
    resp = _response([TEXT], usage=None)
    usage = {"input_tokens": 77, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    assert _translate(resp) == _expected([{"type": "text", "text": "Hello."}], "end_turn", usage)


def test_unknown_output_items_dropped_and_recorded() -> None:
    ctx = _message()
    got = _translate(_response([{"id": "ws_1", "type": "web_search_call", "status": "completed"}, TEXT]), ctx)
    assert got["content"] == [{"type": "text", "text": "Hello."}]
    assert ctx.notes == ["output web_search_call item dropped"]


@pytest.mark.parametrize(("code", "error"), [("server_error", Overloaded), ("rate_limit_exceeded", RateLimited), ("invalid_prompt", InvalidRequest)])
def test_failed_response_raises_the_matching_error(code: str, error: type) -> None:
    resp = _response([], status="failed", error={"code": code, "message": "went wrong"}, usage=None)
    with pytest.raises(error, match="went wrong"):
        translate_response(resp, _message(), KEY)
