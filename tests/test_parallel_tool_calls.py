"""Claude Code fans out N tool calls per turn. Upstream, they are ONE assistant message answered by N tool
messages in call order; back, N tool_use blocks with every call kept — even when an upstream puts several
calls in one chunk (SHTUCodeProxy#1) or interleaves their fragments — read correctly by the anthropic SDK."""

from __future__ import annotations

import json

import msgspec
from anthropic.lib.streaming._messages import accumulate_event

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.translate.chat.request import translate_request
from dragoman.translate.tool_ids import tool_use_id
from dragoman.translate.chat.stream import ChatStreamBridge
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from tests.anthropic_events import check_grammar, reassemble, wire_events
from tests.wire import as_sent, messages_request

FILES = [f"/home/dev/project/mod{i}.py" for i in range(6)]


def _ctx() -> RequestContext:
    return RequestContext(message_id="msg_par", requested_model="claude", tool_names=ToolNameMap(64))


def _stream(chunks: list[dict]) -> list[dict]:
    bridge = ChatStreamBridge(_ctx())
    events: list[A.StreamEvent] = []
    for chunk in chunks:
        events += bridge.on_chunk(msgspec.convert({"choices": [{"delta": chunk.get("delta", {}), "finish_reason": chunk.get("finish")}]}, C.ChatChunk))
    events += bridge.on_done()
    wire = wire_events(events)
    assert check_grammar(wire) == "message_stop"
    return wire


def _sdk_message(wire: list[dict]) -> object:
    """What anthropic's `messages.stream(...).get_final_message()` builds from these events."""
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in wire:
        if event["type"] == "ping":
            continue
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)  # type: ignore[arg-type]
    return snapshot


def _expected_inputs() -> list[dict]:
    return [{"file_path": path} for path in FILES]


def test_six_calls_in_one_chunk() -> None:
    calls = [{"index": i, "id": f"call_{i}_Qm7tRz4kLp2Vw8Nf5", "type": "function", "function": {"name": "Read", "arguments": json.dumps({"file_path": p})}} for i, p in enumerate(FILES)]
    wire = _stream([{"delta": {"role": "assistant", "tool_calls": calls}}, {"finish": "tool_calls"}])
    message = reassemble(wire)
    assert [b["id"] for b in message["content"]] == [f"call_{i}_Qm7tRz4kLp2Vw8Nf5" for i in range(6)]
    assert [b["input"] for b in message["content"]] == _expected_inputs()
    assert message["stop_reason"] == "tool_use"
    sdk = _sdk_message(wire)
    assert [b.input for b in sdk.content] == _expected_inputs()  # type: ignore[attr-defined]


def test_six_calls_with_fragments_interleaved_across_indices() -> None:
    texts = [json.dumps({"file_path": p}) for p in FILES]
    halves = [(t[: len(t) // 2], t[len(t) // 2 :]) for t in texts]
    first = [{"index": i, "id": f"call_{i}_Qm7tRz4kLp2Vw8Nf5", "type": "function", "function": {"name": "Read", "arguments": halves[i][0]}} for i in range(6)]
    second = [{"index": i, "function": {"arguments": halves[i][1]}} for i in reversed(range(6))]
    wire = _stream([{"delta": {"content": "Reading six files."}}, {"delta": {"tool_calls": first}}, {"delta": {"tool_calls": second}}, {"finish": "tool_calls"}])
    message = reassemble(wire)
    assert message["content"][0] == {"type": "text", "text": "Reading six files."}
    assert [b["input"] for b in message["content"][1:]] == _expected_inputs()  # no input left empty (CLIProxyAPI#3776)
    sdk = _sdk_message(wire)
    assert [b.input for b in sdk.content[1:]] == _expected_inputs()  # type: ignore[attr-defined]


def test_request_one_assistant_message_and_results_in_call_order() -> None:
    uses = [{"type": "tool_use", "id": f"toolu_{i}", "name": "Read", "input": {"file_path": p}} for i, p in enumerate(FILES)]
    order = [3, 0, 5, 1, 4, 2]  # completion order, as Claude Code sends them
    results = [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": f"contents {i}"} for i in order]
    req = messages_request(
        {"model": "claude", "max_tokens": 100, "messages": [
            {"role": "user", "content": "read them"},
            {"role": "assistant", "content": [{"type": "text", "text": "Reading."}, *uses]},
            {"role": "user", "content": results},
        ]},
    )
    chat = as_sent(translate_request(req, "gpt-4.1", TranslationOptions(), _ctx()))
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["user", "assistant"] + ["tool"] * 6
    assistant = chat["messages"][1]
    assert assistant["content"] == "Reading."
    assert [c["id"] for c in assistant["tool_calls"]] == [f"toolu_{i}" for i in range(6)]
    assert [m["tool_call_id"] for m in chat["messages"][2:]] == [f"toolu_{i}" for i in range(6)]
    assert [m["content"] for m in chat["messages"][2:]] == [f"contents {i}" for i in range(6)]
    assert "parallel_tool_calls" not in chat  # never forced off (raine/claude-code-proxy#36)


def test_hundreds_of_calls_keep_their_order_and_ids() -> None:
    # Index-less whole calls (each a new index after the highest), then indexed ones, one without an id: the bridge
    # keeps its place among the calls by counters, not by searching them at each chunk (bench/RESULTS.md,
    # "Interleaved calls, read once": 8,000 calls took it 0.6-1.0 s, now 0.03 s).
    calls = [{"id": f"call_{i}_Qm7tRz4kLp2Vw8Nf5", "type": "function", "function": {"name": "Read", "arguments": json.dumps({"n": i})}}
             for i in range(300)]
    chunks = [{"delta": {"tool_calls": [call]}} for call in calls[:150]]
    chunks += [{"delta": {"tool_calls": [{**call, "index": 150 + i}]}} for i, call in enumerate(calls[150:])]
    del chunks[200]["delta"]["tool_calls"][0]["id"]
    message = reassemble(_stream(chunks + [{"finish": "tool_calls"}]))
    assert [block["input"] for block in message["content"]] == [{"n": i} for i in range(300)]
    ids = [block["id"] for block in message["content"]]
    assert ids[:200] + ids[201:] == [f"call_{i}_Qm7tRz4kLp2Vw8Nf5" for i in range(300) if i != 200]
    assert ids[200] == tool_use_id("msg_par", 200) and len(set(ids)) == 300
