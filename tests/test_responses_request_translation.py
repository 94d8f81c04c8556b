"""Golden-style cases for the Responses upstream (design §2 rules, §4 shapes): Anthropic request → Responses
request. Each case is an input and the whole expected output, so a changed rule shows up as a readable diff.
(Answers: tests/test_responses_answer_translation.py.)"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest

from dragoman.errors import GatewayError, InvalidRequest
from dragoman.translate.responses.request import translate_request
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap, shorten
from tests.wire import as_sent, messages_request

KEY = b"translation-test-key"
MODEL = "claude-sonnet-4-5"
LONG_NAME = "mcp__some_server_with_a_long_name__and_a_tool_whose_name_is_also_rather_long"
READ = {"name": "Read", "description": "Read a file", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}
READ_OUT = {"type": "function", "name": "Read", "parameters": READ["input_schema"], "description": "Read a file", "strict": False}
PNG = "iVBORw0KGgo="
NO_PARAMETERS = {"type": "object", "properties": {}}


def _request(upstream_model: str, request: dict, options: dict | None = None, **kw: Any) -> tuple[dict, list[str]]:
    opts = msgspec.convert(options or {}, TranslationOptions)
    req = messages_request({"model": MODEL, "max_tokens": 1024, **request})
    ctx = RequestContext(message_id="msg_golden", requested_model=MODEL, tool_names=ToolNameMap(opts.max_tool_name_length))
    out = translate_request(req, upstream_model, opts, ctx, reasoning_key=KEY, **kw)
    return as_sent(out), ctx.notes


def _user(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _said(text: str) -> dict:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def _base(*items: dict, **fields: Any) -> dict:
    return {"model": "gpt-4.1", "input": list(items), "max_output_tokens": 1024, "store": False, **fields}


REQUEST_CASES: list[tuple[str, str, dict, dict, dict, list[str]]] = [
    # (case, upstream model, Anthropic request, options, expected Responses request, expected notes)
    (
        "system_blocks_become_instructions",
        "gpt-4.1",
        {"system": [{"type": "text", "text": "x-billing"}, {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
         "messages": [{"role": "user", "content": "hi"}]},
        {},
        _base(_user("hi"), instructions="x-billing\n\nYou are Claude Code."),
        ["cache_control dropped"],
    ),
    (
        "mid_conversation_system_keeps_its_place_with_the_route_role",
        "gpt-4.1",
        {"system": "top", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "# Environment", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": "hello"},
            {"role": "system", "content": "later"},
            {"role": "user", "content": "go on"},
        ]},
        {"system_role": "developer"},
        _base(_user("hi"), {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "# Environment"}]},
              _said("hello"), {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "later"}]},
              _user("go on"), instructions="top"),
        ["cache_control dropped"],
    ),
    (
        "user_images_and_pdf_become_input_parts",
        "gpt-4.1",
        {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            {"type": "document", "title": "spec", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
        ]}]},
        {},
        _base({"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
            {"type": "input_image", "image_url": "https://example.com/a.jpg", "detail": "auto"},
            {"type": "input_file", "filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
        ]}),
        [],
    ),
    (
        "parallel_tool_use_and_results_out_of_order",
        "gpt-4.1",
        {"tools": [READ], "messages": [
            {"role": "user", "content": "read both"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"file_path": "a"}},
                {"type": "tool_use", "id": "call_2", "name": "Read", "input": {"file_path": "b"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_2", "content": "B"},
                {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "A"}]},
                {"type": "text", "text": "thanks"},
            ]},
        ]},
        {},
        _base(_user("read both"), _said("Reading."),
              {"type": "function_call", "call_id": "call_1", "name": "Read", "arguments": '{"file_path":"a"}'},
              {"type": "function_call", "call_id": "call_2", "name": "Read", "arguments": '{"file_path":"b"}'},
              {"type": "function_call_output", "call_id": "call_1", "output": "A"},
              {"type": "function_call_output", "call_id": "call_2", "output": "B"},
              _user("thanks"), tools=[READ_OUT]),
        [],
    ),
    (
        "tool_result_error_reference_and_images",
        "gpt-4.1",
        {"tools": [READ], "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "c1", "name": "Read", "input": {}},
                {"type": "tool_use", "id": "c2", "name": "ToolSearch", "input": {"query": "select:CronList"}},
                {"type": "tool_use", "id": "c3", "name": "Read", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "c1", "is_error": True, "content": "no such file"},
                {"type": "tool_result", "tool_use_id": "c2", "content": [{"type": "tool_reference", "tool_name": "CronList"}]},
                {"type": "tool_result", "tool_use_id": "c3", "content": [
                    {"type": "text", "text": "screenshot"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                ]},
            ]},
        ]},
        {},
        _base(_user("go"),
              {"type": "function_call", "call_id": "c1", "name": "Read", "arguments": "{}"},
              {"type": "function_call", "call_id": "c2", "name": "ToolSearch", "arguments": '{"query":"select:CronList"}'},
              {"type": "function_call", "call_id": "c3", "name": "Read", "arguments": "{}"},
              {"type": "function_call_output", "call_id": "c1", "output": "[tool error] no such file"},
              {"type": "function_call_output", "call_id": "c2", "output": "Loaded tools: CronList"},
              {"type": "function_call_output", "call_id": "c3", "output": "screenshot\n[1 attachment(s) follow in the next message]"},
              {"type": "message", "role": "user", "content": [
                  {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"}]},
              tools=[READ_OUT]),
        [],
    ),
    (
        "orphan_and_missing_results",
        "gpt-4.1",
        {"tools": [READ], "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "Read", "input": {}},
                                              {"type": "tool_use", "id": "c2", "name": "Read", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c2", "content": "B"},
                                         {"type": "tool_result", "tool_use_id": "gone", "content": "old"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c3", "name": "Read", "input": {}}]},
        ]},
        {},
        _base(_user("go"),
              {"type": "function_call", "call_id": "c1", "name": "Read", "arguments": "{}"},
              {"type": "function_call", "call_id": "c2", "name": "Read", "arguments": "{}"},
              {"type": "function_call_output", "call_id": "c1", "output": "[no result was returned for this tool call]"},
              {"type": "function_call_output", "call_id": "c2", "output": "B"},
              _user("[result of tool call gone]\nold"),
              {"type": "function_call", "call_id": "c3", "name": "Read", "arguments": "{}"},
              {"type": "function_call_output", "call_id": "c3", "output": "[no result was returned for this tool call]"},
              tools=[READ_OUT]),
        ["orphan tool_result sent as text", "missing tool_result filled in"],
    ),
    (
        "deferred_tools_offered_once_referenced_long_names_shortened",
        "gpt-4.1",
        {"tools": [
            {"name": "ToolSearch", "input_schema": NO_PARAMETERS},
            {"name": "CronList", "defer_loading": True, "input_schema": NO_PARAMETERS},
            {"name": "DeferredToolPlaceholder", "defer_loading": True, "description": "never call this tool"},
            {"name": LONG_NAME, "input_schema": NO_PARAMETERS},
        ], "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "ToolSearch", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": [{"type": "tool_reference", "tool_name": "CronList"}]}]},
        ]},
        {},
        _base(_user("go"),
              {"type": "function_call", "call_id": "c1", "name": "ToolSearch", "arguments": "{}"},
              {"type": "function_call_output", "call_id": "c1", "output": "Loaded tools: CronList"},
              tools=[{"type": "function", "name": "ToolSearch", "parameters": NO_PARAMETERS, "strict": False},
                     {"type": "function", "name": "CronList", "parameters": NO_PARAMETERS, "strict": False},
                     {"type": "function", "name": shorten(LONG_NAME, 64), "parameters": NO_PARAMETERS, "strict": False}]),
        [],
    ),
    (
        "tool_input_schemas_without_type_or_properties_become_object_schemas",
        "gpt-4.1",
        {"tools": [{"name": "ListServers", "input_schema": {}},
                   {"name": "Search", "input_schema": {"properties": {"q": {"type": "string"}}}},
                   {"name": "ListTables", "input_schema": {"type": "object", "additionalProperties": False}},
                   READ],
         "messages": [{"role": "user", "content": "hi"}]},
        {},
        _base(_user("hi"), tools=[
            {"type": "function", "name": "ListServers", "parameters": NO_PARAMETERS, "strict": False},
            {"type": "function", "name": "Search", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}, "strict": False},
            {"type": "function", "name": "ListTables", "parameters": {**NO_PARAMETERS, "additionalProperties": False}, "strict": False},
            READ_OUT]),
        ["tool input_schema completed"],
    ),
    (
        "server_tool_dropped_when_the_route_says_so",
        "gpt-4.1",
        {"tools": [READ, {"type": "web_search_20250305", "name": "web_search"}], "messages": [{"role": "user", "content": "hi"}]},
        {"server_tools": "drop"},
        _base(_user("hi"), tools=[READ_OUT]),
        ["server tool web_search_20250305 dropped"],
    ),
    (
        "tool_choice_tool_and_disable_parallel",
        "gpt-4.1",
        {"tools": [READ], "tool_choice": {"type": "tool", "name": "Read", "disable_parallel_tool_use": True},
         "messages": [{"role": "user", "content": "hi"}]},
        {},
        _base(_user("hi"), tools=[READ_OUT], tool_choice={"type": "function", "name": "Read"}, parallel_tool_calls=False),
        [],
    ),
    (
        "tool_choice_any_is_required_and_parallel_left_alone",
        "gpt-4.1",
        {"tools": [READ], "tool_choice": {"type": "any"}, "messages": [{"role": "user", "content": "hi"}]},
        {},
        _base(_user("hi"), tools=[READ_OUT], tool_choice="required"),
        [],
    ),
    (
        "reasoning_model_gets_effort_summary_encrypted_content_and_a_clamp",
        "gpt-5",
        {"max_tokens": 200000, "thinking": {"type": "adaptive", "display": "updates"}, "output_config": {"effort": "high"},
         "temperature": 0.5, "top_k": 5, "stop_sequences": ["END"], "context_management": {"edits": []},
         "messages": [{"role": "user", "content": "hi"}]},
        {},
        {"model": "gpt-5", "input": [_user("hi")], "max_output_tokens": 128000, "store": False,
         "reasoning": {"effort": "high", "summary": "auto"}, "include": ["reasoning.encrypted_content"]},
        ["max_tokens clamped", "top_k dropped", "temperature/top_p dropped", "stop_sequences dropped",
         "thinking.display dropped", "context_management dropped"],
    ),
    (
        "probe_with_max_tokens_1_on_a_reasoning_model",
        "gpt-5-mini",
        {"max_tokens": 1, "stream": True, "messages": [{"role": "user", "content": "test"}]},
        {},
        {"model": "gpt-5-mini", "input": [_user("test")], "stream": True, "max_output_tokens": 1024, "store": False,
         "reasoning": {"summary": "auto"}, "include": ["reasoning.encrypted_content"]},
        ["max_tokens raised"],
    ),
    (
        "probe_on_a_non_reasoning_model_meets_the_responses_minimum",
        "gpt-4.1",
        {"max_tokens": 1, "temperature": 0.2, "messages": [{"role": "user", "content": "test"}]},
        {},
        {**_base(_user("test")), "max_output_tokens": 16, "temperature": 0.2},
        ["max_tokens raised"],
    ),
    (
        "identity_from_claude_code_metadata",
        "gpt-4.1",
        {"metadata": {"user_id": '{"device_id":"dev-1","account_uuid":"acct-1","session_id":"sess-1"}'},
         "messages": [{"role": "user", "content": "hi"}]},
        {},
        _base(_user("hi"), prompt_cache_key="sess-1", safety_identifier=hashlib.sha256(b"acct-1").hexdigest()),
        [],
    ),
    (
        "unknown_fields_and_blocks_tolerated",
        "gpt-4.1",
        {"betas_of_tomorrow": True, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "hologram", "data": "?"}]}]},
        {},
        _base(_user("hi")),
        ["user hologram block dropped"],
    ),
]


@pytest.mark.parametrize(("upstream_model", "request_", "options", "expected", "notes"),
                         [pytest.param(*case[1:], id=case[0]) for case in REQUEST_CASES])
def test_request_becomes_the_expected_responses_request(upstream_model: str, request_: dict, options: dict, expected: dict, notes: list[str]) -> None:
    got, got_notes = _request(upstream_model, request_, options)
    assert got == expected
    assert sorted(got_notes) == sorted(notes)


def test_openai_only_fields_left_out_for_other_servers() -> None:
    body = {"metadata": {"user_id": "user_abc_session_s1"}, "messages": [{"role": "user", "content": "hi"}]}
    got, _ = _request("qwen3", body, openai_extensions=False)
    assert got == _base(_user("hi"), model="qwen3")


def test_server_tool_rejected_by_default() -> None:
    with pytest.raises(InvalidRequest, match="server tool"):
        _request("gpt-4.1", {"tools": [{"type": "web_search_20250305", "name": "web_search"}], "messages": [{"role": "user", "content": "hi"}]})


def test_unknown_role_rejected() -> None:
    with pytest.raises(GatewayError):
        _request("gpt-4.1", {"messages": [{"role": "robot", "content": "hi"}]})
