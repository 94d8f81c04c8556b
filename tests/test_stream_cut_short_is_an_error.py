"""An upstream stream that ends without saying the answer is done is an Anthropic `error` event, never a
clean stop, with the same error type and message on Chat (EOF before any finish_reason) and Responses (EOF
before response.completed): the client must not take a truncated answer for a whole one (design §3)."""

from __future__ import annotations

import msgspec
import pytest

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.protocols import openai_responses as R
from dragoman.translate.chat.stream import ChatStreamBridge
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.stream import ResponsesStreamBridge
from dragoman.translate.tool_names import ToolNameMap
from tests.anthropic_events import check_grammar, wire_events

ERROR = {"type": "api_error", "message": "the upstream closed the stream before the answer was complete"}


def _ctx() -> RequestContext:
    return RequestContext(message_id="msg_cut", requested_model="claude", tool_names=ToolNameMap(64))


def _chat(finished: bool) -> list[A.StreamEvent]:
    bridge = ChatStreamBridge(_ctx())
    choice = {"index": 0, "delta": {"content": "The story"}, "finish_reason": "stop" if finished else None}
    return bridge.on_chunk(msgspec.convert({"choices": [choice]}, C.ChatChunk)) + bridge.on_eof()


def _responses(finished: bool) -> list[A.StreamEvent]:
    bridge = ResponsesStreamBridge(_ctx(), b"k")
    raw = [{"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "m1", "role": "assistant"}},
           {"type": "response.output_text.delta", "output_index": 0, "item_id": "m1", "content_index": 0, "delta": "The story"}]
    if finished:
        raw.append({"type": "response.completed", "response": {"id": "r1", "status": "completed", "output": []}})
    events: list[A.StreamEvent] = []
    for event in raw:
        events += bridge.on_event(R.decode_event(msgspec.json.encode(event)))
    return events + bridge.on_eof()


@pytest.mark.parametrize("stream", [_chat, _responses], ids=["chat", "responses"])
def test_eof_before_the_end_is_an_error_event(stream) -> None:
    wire = wire_events(stream(False))
    assert check_grammar(wire) == "error"
    assert wire[-1]["error"] == ERROR


@pytest.mark.parametrize("stream", [_chat, _responses], ids=["chat", "responses"])
def test_eof_after_the_end_is_a_clean_stop(stream) -> None:
    assert check_grammar(wire_events(stream(True))) == "message_stop"
