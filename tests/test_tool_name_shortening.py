"""Tool names round-trip exactly (router-for-me/CLIProxyAPI#1741): names over the upstream's limit (OpenAI: 64)
are shortened reversibly on the way up and restored in the JSON answer and the stream; others are untouched."""

from __future__ import annotations

import msgspec

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.translate.chat.request import translate_request
from dragoman.translate.chat.stream import ChatStreamBridge
from dragoman.translate.chat.response import translate_response
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap, shorten
from tests.wire import messages_request

PREFIX = "mcp__claude_ai_Google_Drive__google_drive_search_files_by_name_and_owner_"
LONG_A, LONG_B = PREFIX + "v1", PREFIX + "v2"  # same first 64 characters


def _ctx(limit: int = 64) -> RequestContext:
    return RequestContext(message_id="msg_names", requested_model="claude", tool_names=ToolNameMap(limit))


def _request(*names: str) -> A.MessagesRequest:
    return messages_request({
            "model": "claude", "max_tokens": 100,
            "tools": [{"name": n, "input_schema": {"type": "object", "properties": {}}} for n in names],
            "messages": [{"role": "user", "content": "go"}],
        })


def test_short_names_untouched_even_odd_ones() -> None:
    names = ["Bash", "bash", "mcp__github__create_issue", "x" * 64, "Tool-With.Dots"]
    ctx = _ctx()
    chat = translate_request(_request(*names), "gpt-4.1", TranslationOptions(), ctx)
    assert [t.function.name for t in chat.tools or ()] == names
    assert ctx.tool_names.restored == {}


def test_long_names_shortened_distinct_and_stable() -> None:
    a, b = shorten(LONG_A, 64), shorten(LONG_B, 64)
    assert len(a) == len(b) == 64 and a != b
    assert shorten(LONG_A, 64) == a  # the same every request: the upstream's prompt cache keeps hitting
    ctx = _ctx()
    chat = translate_request(_request(LONG_A, LONG_B), "gpt-4.1", TranslationOptions(), ctx)
    assert [t.function.name for t in chat.tools or ()] == [a, b]


def test_restored_in_json_answer() -> None:
    ctx = _ctx()
    translate_request(_request(LONG_A, LONG_B, "Read"), "gpt-4.1", TranslationOptions(), ctx)
    calls = [{"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": "{}"}}
             for i, n in enumerate([shorten(LONG_B, 64), "Read", shorten(LONG_A, 64)])]
    resp = msgspec.convert({"choices": [{"message": {"role": "assistant", "tool_calls": calls}, "finish_reason": "tool_calls"}]}, C.ChatResponse)
    message = translate_response(resp, ctx)
    assert [b.name for b in message.content if isinstance(b, A.ToolUseOut)] == [LONG_B, "Read", LONG_A]


def test_restored_in_stream() -> None:
    ctx = _ctx()
    translate_request(_request(LONG_A), "gpt-4.1", TranslationOptions(), ctx)
    bridge = ChatStreamBridge(ctx)
    chunk = {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_0", "function": {"name": shorten(LONG_A, 64), "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}
    events = bridge.on_chunk(msgspec.convert(chunk, C.ChatChunk)) + bridge.on_done()
    starts = [e for e in events if isinstance(e, A.ContentBlockStart)]
    assert [s.content_block.name for s in starts] == [LONG_A]  # type: ignore[union-attr]


def test_history_uses_the_same_short_name() -> None:
    req = messages_request({
            "model": "claude", "max_tokens": 100,
            "tools": [{"name": LONG_A, "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": LONG_A},
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": LONG_A, "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
            ],
        })
    chat = translate_request(req, "gpt-4.1", TranslationOptions(), _ctx())
    short = shorten(LONG_A, 64)
    assert chat.tools and chat.tools[0].function.name == short
    assert chat.messages[1].tool_calls and chat.messages[1].tool_calls[0].function.name == short
    assert isinstance(chat.tool_choice, C.NamedToolChoice) and chat.tool_choice.function.name == short


def test_unknown_upstream_name_passes_through() -> None:
    ctx = _ctx()
    assert ctx.tool_names.client("SomethingElse") == "SomethingElse"
