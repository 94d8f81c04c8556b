"""A streamed tool call's arguments are closed once: both bridges close them with the one shared function
(`StreamBridge._close_arguments`), which marks the call closed, so a second close sends nothing — no duplicate
arguments in a block that already has them. The Responses bridge had its own copy that never marked the call."""

from __future__ import annotations

import pytest

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_responses as R
from dragoman.translate.chat.stream import ChatStreamBridge, _ToolCall
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.stream import ResponsesStreamBridge, _Item
from dragoman.translate.tool_names import ToolNameMap

WRAPPED = '"{\\"file_path\\": \\"a.py\\"}"'  # arguments wrapped in a JSON string: held, sent whole at the close
TRUNCATED = '{"file_path": "a.p'  # arguments a cut stream left open: closed at the close


def _ctx() -> RequestContext:
    return RequestContext(message_id="msg_once", requested_model="m", tool_names=ToolNameMap(64))


def _chat_call(arguments: str) -> tuple[ChatStreamBridge, _ToolCall]:
    call = _ToolCall()
    call.block = 0
    call.add(arguments)
    return ChatStreamBridge(_ctx()), call


def _responses_call(arguments: str) -> tuple[ResponsesStreamBridge, _Item]:
    item = _Item(0, "tool", R.OutputItem(type="function_call", name="Read", call_id="call_1"))
    item.block = 0
    item.wrapped = arguments.startswith('"')
    item.parts.append(arguments)
    return ResponsesStreamBridge(_ctx(), b"key"), item


@pytest.mark.parametrize("arguments", [WRAPPED, TRUNCATED], ids=["wrapped", "truncated"])
@pytest.mark.parametrize("make", [_chat_call, _responses_call], ids=["chat", "responses"])
def test_closing_a_call_twice_sends_its_closing_fragment_once(make, arguments: str) -> None:  # noqa: ANN001
    bridge, call = make(arguments)
    first: list[A.StreamEvent] = []
    bridge._close_arguments(call, first)
    assert call.closed
    assert [type(ev.delta) for ev in first] == [A.InputJsonDelta]  # type: ignore[union-attr]
    again: list[A.StreamEvent] = []
    bridge._close_arguments(call, again)
    assert again == []

