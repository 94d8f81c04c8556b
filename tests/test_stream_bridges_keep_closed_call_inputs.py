"""With the correctness loop on, a stream bridge keeps the input object of each tool call it closes
(RequestContext.kept_arguments), decoded once while it tells whether the arguments are whole: the loop's checks
read it instead of joining and decoding the call's deltas again. What is kept must be what the client's arguments
decode to — after a wrapped input is sent unwrapped and a truncated one closed — and, for arguments that do not
decode, the text the client got (the checks name the call's invalid JSON from it)."""

from __future__ import annotations

from typing import Any

import pytest

from dragoman.loop.answer import StreamFacts, _arguments, from_events
from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_responses as R
from dragoman.translate.chat.stream import ChatStreamBridge, _ToolCall
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.stream import ResponsesStreamBridge, _Item
from dragoman.translate.tool_names import ToolNameMap

ARGUMENTS = {
    "whole": '{"file_path": "a.py", "limit": 3}',
    "wrapped": '"{\\"file_path\\": \\"a.py\\"}"',
    "truncated": '{"file_path": "a.p',
    "blank": "  ",
    "not json": "file_path=a.py",
}


def _ctx(kept: bool) -> RequestContext:
    return RequestContext(message_id="msg_kept", requested_model="m", tool_names=ToolNameMap(64),
                          kept_arguments={} if kept else None)


def _chat(ctx: RequestContext, arguments: str) -> tuple[ChatStreamBridge, _ToolCall]:
    call = _ToolCall()
    call.block = 0
    call.add(arguments)
    return ChatStreamBridge(ctx), call


def _responses(ctx: RequestContext, arguments: str) -> tuple[ResponsesStreamBridge, _Item]:
    item = _Item(0, "tool", R.OutputItem(type="function_call", name="Read", call_id="call_1"))
    item.block = 0
    item.wrapped = arguments.startswith('"')
    item.parts.append(arguments)
    return ResponsesStreamBridge(ctx, b"key"), item


def _client_text(arguments: str, wrapped: bool, closing: list[A.StreamEvent]) -> str:
    """The call's arguments as the client puts them together: what streamed before the close, then the close."""
    sent = "" if wrapped else arguments
    return sent + "".join(ev.delta.partial_json for ev in closing)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", list(ARGUMENTS))
@pytest.mark.parametrize("make", [_chat, _responses], ids=["chat", "responses"])
def test_a_closed_calls_input_is_kept_as_the_client_will_decode_it(make, name: str) -> None:  # noqa: ANN001
    ctx = _ctx(kept=True)
    bridge, call = make(ctx, ARGUMENTS[name])
    closing: list[A.StreamEvent] = []
    bridge._close_arguments(call, closing)
    text = _client_text(ARGUMENTS[name], call.wrapped, closing)
    decoded, _ = _arguments(text)
    if decoded is None:
        assert ctx.kept_arguments == {0: text}
    else:
        assert ctx.kept_arguments == {0: decoded}


@pytest.mark.parametrize("make", [_chat, _responses], ids=["chat", "responses"])
def test_nothing_is_kept_when_the_loop_is_off(make) -> None:  # noqa: ANN001
    ctx = _ctx(kept=False)
    bridge, call = make(ctx, ARGUMENTS["whole"])
    bridge._close_arguments(call, [])
    assert ctx.kept_arguments is None


def _stream(arguments: list[str], closed: int) -> list[A.StreamEvent]:
    events: list[A.StreamEvent] = []
    for i, text in enumerate(arguments):
        events.append(A.ContentBlockStart(index=i, content_block=A.ToolUseOut(id=f"toolu_{i}", name="Read", input={})))
        events += [A.ContentBlockDelta(index=i, delta=A.InputJsonDelta(partial_json=text[at : at + 5]))
                   for at in range(0, len(text), 5)]
        if i < closed:
            events.append(A.ContentBlockStop(index=i))
    return events


def test_the_checks_read_a_kept_input_as_they_would_have_read_the_deltas() -> None:
    texts = ['{"file_path": "a.py"}', '{"file_path": "b.py", "limit": 2}', "file_path=c.py", '{"file_path": "d']
    events = _stream(texts, closed=3)  # the fourth call's block never closed: nothing kept for it
    kept = {0: {"file_path": "a.py"}, 1: {"file_path": "b.py", "limit": 2}, 2: "file_path=c.py"}
    read = [(c.id, c.input, c.raw, c.closed) for c in from_events(events).tool_calls]
    assert [(c.id, c.input, c.raw, c.closed) for c in from_events(events, kept).tool_calls][:3] == read[:3]
    assert read[2] == ("toolu_2", None, "file_path=c.py", True)
    # A call whose block never stopped is not judged (the stream failed in it, or the client stopped reading): with
    # kept inputs, its deltas are not gathered for it.
    assert read[3] == ("toolu_3", None, '{"file_path": "d', False)
    assert from_events(events, kept).tool_calls[3].closed is False


def test_a_kept_input_is_what_the_checks_read_even_when_the_deltas_differ() -> None:
    # Not a case the bridges produce: it shows the kept input is read, not the deltas (the checks' cost).
    events = _stream(['{"file_path": "a.py"}'], closed=1)
    [call] = from_events(events, {0: {"file_path": "kept.py"}}).tool_calls
    assert call.input == {"file_path": "kept.py"} and call.closed


def test_a_failed_try_forgets_what_its_events_said_and_the_inputs_kept() -> None:
    # A candidate whose first word was an error: the client got none of its events, so the next try starts afresh.
    inputs: dict[int, Any] = {}
    facts = StreamFacts(inputs)
    facts.see(_stream(['{"file_path": "a.py"}'], closed=0))
    inputs[0] = {"file_path": "a.py"}
    facts.clear()
    assert inputs == {}
    facts.see([A.ContentBlockStart(index=0, content_block=A.TextOut(text="")),
               A.ContentBlockDelta(index=0, delta=A.TextDelta(text="hi")), A.ContentBlockStop(index=0)])
    answer = facts.answer()
    assert (answer.tool_calls, answer.has_text, answer.last_block) == ([], True, "text")
