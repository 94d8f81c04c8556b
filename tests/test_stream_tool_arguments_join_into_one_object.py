"""Property (design §7): however a server splits a call's arguments into fragments, sends them as cumulative
snapshots, resends them whole (or a prefix of them) once they are complete, and however it numbers its calls (each
its own index, every call at index 0 with its own id as Ollama's /v1 does, or no index), each call is one tool_use
block whose input_json_delta fragments join into exactly one JSON object equal to its arguments: what the client's
SDK parses once (the TypeScript SDK fails the whole turn on `{...}{...}`)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import hypothesis
from hypothesis import given
from hypothesis import strategies as st

from dragoman.protocols import openai_chat as C
from dragoman.translate.chat.stream import ChatStreamBridge
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from tests.anthropic_events import check_grammar, wire_events
from tests.property_strategies import SETTINGS, tool_arguments

NAMES = ["Read", "Bash", "Edit"]


def _pieces(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(1, max(len(text) - 1, 1)), max_size=6)))
    bounds = [0, *[c for c in cuts if c < len(text)], len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


@st.composite
def _call(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A call's arguments and the fragments a server sends them in."""
    arguments = draw(tool_arguments)
    text = json.dumps(arguments, ensure_ascii=False, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    pieces = _pieces(draw, text)
    cumulative = draw(st.booleans())
    # A second fragment starting with the whole first reads as a snapshot (tests/test_stream_properties.py `_calls`).
    hypothesis.assume(cumulative or len(pieces) < 2 or not pieces[1].startswith(pieces[0]))
    if cumulative:
        pieces = ["".join(pieces[: i + 1]) for i in range(len(pieces))]
    resend = draw(st.sampled_from(["none", "whole", "prefix", "whole twice"]))
    if resend == "whole":
        pieces.append(text)
    elif resend == "whole twice":
        pieces += [text, text]
    elif resend == "prefix":
        pieces.append(text[: draw(st.integers(1, len(text)))])
    return arguments, pieces


def _deltas(calls: list[tuple[dict[str, Any], list[str]]], numbering: str) -> list[dict[str, Any]]:
    """The tool-call deltas, one call after another: each call's first delta names it and carries its id."""
    deltas = []
    for n, (_, pieces) in enumerate(calls):
        index = {"own": {"index": n}, "all at 0": {"index": 0}, "none": {}}[numbering]
        first = {"name": NAMES[n], "arguments": ""}
        deltas.append({**index, "id": f"call_{n}a1b2c3d4", "type": "function", "function": first})
        deltas += [{**index, "function": {"arguments": piece}} for piece in pieces]
    return deltas


@SETTINGS
@given(st.lists(_call(), min_size=1, max_size=3), st.sampled_from(["own", "all at 0", "none"]), st.integers(1, 3))
def test_each_call_streams_its_arguments_as_exactly_one_json_object(calls, numbering: str, per_chunk: int) -> None:
    ctx = RequestContext(message_id="msg_args", requested_model="m", tool_names=ToolNameMap(64))
    bridge = ChatStreamBridge(ctx)
    deltas = _deltas(calls, numbering)
    events = bridge.on_chunk(msgspec.convert({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}, C.ChatChunk))
    for at in range(0, len(deltas), per_chunk):
        chunk = {"choices": [{"index": 0, "delta": {"tool_calls": deltas[at: at + per_chunk]}}]}
        events += bridge.on_chunk(msgspec.convert(chunk, C.ChatChunk))
    events += bridge.on_chunk(msgspec.convert({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
                                              C.ChatChunk))
    events += bridge.on_done()
    wire = wire_events(events)
    assert check_grammar(wire) == "message_stop"
    starts = [e for e in wire if e["type"] == "content_block_start"]
    assert [(s["content_block"]["id"], s["content_block"]["name"]) for s in starts] == \
        [(f"call_{n}a1b2c3d4", NAMES[n]) for n in range(len(calls))]
    for start, (arguments, _) in zip(starts, calls):
        joined = "".join(e["delta"]["partial_json"] for e in wire
                         if e["type"] == "content_block_delta" and e["index"] == start["index"])
        assert json.loads(joined) == arguments, joined  # json.loads refuses a second object after the first
    assert next(e for e in wire if e["type"] == "message_delta")["delta"]["stop_reason"] == "tool_use"
