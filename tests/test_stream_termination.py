"""How a streamed answer ends (design §3, §8): exactly one message_delta carrying stop_reason before
message_stop; a failure or an EOF before finish_reason ends with an `error` event, never a clean stop;
nothing after the end."""

from __future__ import annotations

import msgspec

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.translate.chat.stream import ChatStreamBridge
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from tests.anthropic_events import check_grammar, wire_events


def _bridge() -> ChatStreamBridge:
    return ChatStreamBridge(RequestContext(message_id="msg_end", requested_model="claude", tool_names=ToolNameMap(64)))


def _chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> C.ChatChunk:
    choices = [] if delta is None and finish is None else [{"delta": delta or {}, "finish_reason": finish}]
    return msgspec.convert({"choices": choices, **({"usage": usage} if usage else {})}, C.ChatChunk)


def test_content_after_the_final_usage_is_dropped() -> None:
    bridge = _bridge()
    events = bridge.on_chunk(_chunk({"content": "Done."}, "stop"))
    events += bridge.on_chunk(_chunk(usage={"prompt_tokens": 5, "completion_tokens": 2}))
    events += bridge.on_chunk(_chunk({"content": "late"}))
    events += bridge.on_done()
    wire = wire_events(events)
    assert check_grammar(wire) == "message_stop"
    assert "content after the end of the answer dropped" in bridge.ctx.notes


def test_content_between_finish_and_usage_is_closed_before_message_delta() -> None:
    bridge = _bridge()
    events = bridge.on_chunk(_chunk({"content": ""}, "stop"))
    events += bridge.on_chunk(_chunk({"content": "more"}))
    events += bridge.on_chunk(_chunk(usage={"prompt_tokens": 5, "completion_tokens": 2}))
    events += bridge.on_done()
    assert check_grammar(wire_events(events)) == "message_stop"


def test_repeated_usage_gives_one_message_delta() -> None:
    bridge = _bridge()
    events = bridge.on_chunk(_chunk({"content": "x"}, "stop", {"prompt_tokens": 5, "completion_tokens": 1}))
    events += bridge.on_chunk(_chunk(usage={"prompt_tokens": 5, "completion_tokens": 1}))
    events += bridge.on_done()
    assert sum(isinstance(e, A.MessageDelta) for e in events) == 1


def test_stop_reason_always_in_message_delta_for_tool_calls() -> None:
    # anthropics/claude-code#16785: without stop_reason tool_use Claude Code never runs the tools.
    bridge = _bridge()
    events = bridge.on_chunk(_chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "Bash", "arguments": "{}"}}]}))
    events += bridge.on_done()  # [DONE] with no finish_reason at all
    delta = next(e for e in events if isinstance(e, A.MessageDelta))
    assert delta.delta.stop_reason == "tool_use"


def test_eof_before_finish_is_an_error() -> None:
    bridge = _bridge()
    events = bridge.on_chunk(_chunk({"content": "partial"})) + bridge.on_eof()
    wire = wire_events(events)
    assert check_grammar(wire) == "error"
    assert bridge.ended and bridge.on_chunk(_chunk({"content": "x"})) == [] and bridge.on_done() == []


def test_error_before_any_chunk_still_starts_the_message() -> None:
    bridge = _bridge()
    wire = wire_events(bridge.on_error("overloaded_error", "upstream timed out"))
    assert [e["type"] for e in wire] == ["message_start", "ping", "error"]


def test_message_start_carries_the_input_estimate() -> None:
    # BerriAI/litellm#24176: usage reported as zero breaks Claude Code's context budgeting.
    bridge = ChatStreamBridge(RequestContext(message_id="m", requested_model="c", tool_names=ToolNameMap(64), input_estimate=777))
    start = bridge.on_chunk(_chunk({"content": "x"}))[0]
    assert isinstance(start, A.MessageStart) and start.message.usage.input_tokens == 777
