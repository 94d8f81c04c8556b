"""Property tests for the Responses stream bridge (design §4, §7): whatever event sequence the upstream sends —
deltas split anywhere, items interleaved, deltas or added/done events missing, unknown event types mixed in —
the Anthropic events are well formed, and a completed stream reassembles to exactly the message the
non-streamed translation builds from the final response. A stream that fails or is cut ends in an `error`."""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dragoman.protocols import openai_responses as R
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.stream import ResponsesStreamBridge
from dragoman.translate.responses.response import translate_response
from dragoman.translate.tool_names import ToolNameMap
from tests.anthropic_events import check_grammar, reassemble, wire_events

KEY = b"property-test-key"
LONG_NAME = "mcp__a_server_with_a_rather_long_name__and_a_tool_with_an_even_longer_name"
# DRAGOMAN_HYPOTHESIS_EXAMPLES=5000 for a longer search than the suite's.
SETTINGS = settings(max_examples=int(os.environ.get("DRAGOMAN_HYPOTHESIS_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_UNKNOWN = [
    {"type": "response.output_text.annotation.added", "annotation": {"type": "url_citation"}},
    {"type": "response.web_search_call.searching", "item_id": "ws_0", "output_index": 99},
    {"type": "response.in_progress", "response": {"id": "resp_p", "status": "in_progress", "output": []}},
    {"type": "response.code_interpreter_call_code.delta", "item_id": "ci_0", "output_index": 98, "delta": "print()"},
    {"type": "keepalive"},
]


def _ctx(visible_max_tokens: int = 0) -> RequestContext:
    ctx = RequestContext(message_id="msg_prop", requested_model="claude-x", tool_names=ToolNameMap(64), input_estimate=50)
    ctx.tool_names.upstream(LONG_NAME)
    if visible_max_tokens:  # the client's max_tokens, the upstream given 1024 (a reasoning floor)
        ctx.max_tokens, ctx.visible_max_tokens = 1024, visible_max_tokens
    return ctx


@st.composite
def _items(draw: st.DrawFn) -> list[dict]:
    items: list[dict] = []
    for index in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["reasoning", "message", "function_call"]))
        if kind == "reasoning":
            item: dict[str, Any] = {"id": f"rs_{index}", "type": "reasoning",
                                    "summary": [{"type": "summary_text", "text": t} for t in draw(st.lists(_text, max_size=3))]}
            encrypted = draw(st.none() | st.text(min_size=1, max_size=40))
            if encrypted is not None:
                item["encrypted_content"] = encrypted
        elif kind == "message":
            parts = draw(st.lists(st.tuples(st.sampled_from(["output_text", "refusal"]), _text), min_size=1, max_size=2))
            content = [{"type": t, "text": x, "annotations": []} if t == "output_text" else {"type": t, "refusal": x} for t, x in parts]
            item = {"id": f"msg_{index}", "type": "message", "role": "assistant", "status": "completed", "content": content}
        else:
            arguments = json.dumps(draw(st.dictionaries(st.text(max_size=8), _json, max_size=4)), ensure_ascii=draw(st.booleans()))
            if draw(st.integers(0, 9)) == 0:
                arguments = json.dumps(arguments)  # wrapped in an extra JSON string (some servers)
            elif draw(st.integers(0, 9)) == 0:
                arguments = ""
            name = draw(st.sampled_from(["Read", "Bash", "Edit", LONG_NAME]))
            upstream_name = _ctx().tool_names.upstream(name)
            item = {"id": f"fc_{index}", "type": "function_call", "status": "completed", "call_id": f"call_{index}",
                    "name": upstream_name, "arguments": arguments}
        items.append(item)
    return items


def _pieces(draw: st.DrawFn, text: str) -> list[str]:
    if not text:
        return []
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=4))) if len(text) > 1 else []
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if a < b]


def _item_events(draw: st.DrawFn, item: dict, index: int, final_done: bool) -> list[dict]:
    """The events of one item: added, deltas (possibly missing), done (possibly missing)."""
    kind = item["type"]
    deltas = draw(st.integers(0, 7)) != 0
    events: list[dict] = []
    if kind == "reasoning":
        events.append({"type": "response.output_item.added", "output_index": index, "item": {"id": item["id"], "type": "reasoning", "summary": []}})
        for s, part in enumerate(item["summary"]):
            where = {"item_id": item["id"], "output_index": index, "summary_index": s}
            events.append({"type": "response.reasoning_summary_part.added", **where, "part": {"type": "summary_text", "text": ""}})
            if deltas:
                events += [{"type": "response.reasoning_summary_text.delta", **where, "delta": d} for d in _pieces(draw, part["text"])]
            events.append({"type": "response.reasoning_summary_text.done", **where, "text": part["text"]})
    elif kind == "message":
        events.append({"type": "response.output_item.added", "output_index": index, "item": {**item, "content": [], "status": "in_progress"}})
        for c, part in enumerate(item["content"]):
            where = {"item_id": item["id"], "output_index": index, "content_index": c}
            text_kind = "output_text" if part["type"] == "output_text" else "refusal"
            text = part.get("text", part.get("refusal", ""))
            events.append({"type": "response.content_part.added", **where, "part": {"type": part["type"], "text": ""}})
            if deltas:
                events += [{"type": f"response.{text_kind}.delta", **where, "delta": d} for d in _pieces(draw, text)]
            events.append({"type": "response.content_part.done", **where, "part": part})
    else:
        events.append({"type": "response.output_item.added", "output_index": index, "item": {**item, "arguments": "", "status": "in_progress"}})
        where = {"item_id": item["id"], "output_index": index}
        if deltas:
            events += [{"type": "response.function_call_arguments.delta", **where, "delta": d} for d in _pieces(draw, item["arguments"])]
        events.append({"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]})
    if draw(st.integers(0, 11)) == 0:
        events.pop(0)  # a server that skips output_item.added
    elif final_done and draw(st.integers(0, 9)) == 0:
        return events  # no output_item.done: the final response still holds the whole item
    events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    return events


def _merge(draw: st.DrawFn, sequences: list[list[dict]]) -> list[dict]:
    """Interleave the items' events, keeping each item's order and opening the items in output order."""
    queues = [list(seq) for seq in sequences if seq]
    merged: list[dict] = []
    opened = 0
    while queues:
        # Items already opened may go on; the next item may open; later ones wait.
        ready = list(range(min(opened + 1, len(queues))))
        pick = ready[0] if draw(st.integers(0, 3)) else draw(st.sampled_from(ready))
        merged.append(queues[pick].pop(0))
        if pick == opened:
            opened += 1
        if not queues[pick]:
            queues.pop(pick)
            opened -= 1
    return merged


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[list[dict], dict, str]:
    items = draw(_items())
    ending = draw(st.sampled_from(["completed", "completed", "completed", "incomplete", "failed", "error_event", "cut", "transport"]))
    clean = ending in ("completed", "incomplete")
    events = _merge(draw, [_item_events(draw, item, i, clean) for i, item in enumerate(items)])
    for unknown in draw(st.lists(st.sampled_from(_UNKNOWN), max_size=3)):
        events.insert(draw(st.integers(0, len(events))), unknown)
    input_tokens = draw(st.integers(0, 10_000))
    usage = {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": draw(st.integers(0, input_tokens))},
             "output_tokens": draw(st.integers(0, 5000)), "output_tokens_details": {"reasoning_tokens": 0}}
    final = {"id": "resp_p", "object": "response", "status": "completed", "model": "gpt-5", "output": items, "usage": usage}
    if ending == "incomplete":
        final = {**final, "status": "incomplete", "incomplete_details": {"reason": draw(st.sampled_from(["max_output_tokens", "content_filter"]))}}
    created = {"type": "response.created", "response": {"id": "resp_p", "status": "in_progress", "output": []}}
    if clean:
        events = [created, *events, {"type": f"response.{ending}", "response": final}]
    else:
        events = [created, *events[: draw(st.integers(0, len(events)))]]
        if ending == "failed":
            events.append({"type": "response.failed", "response": {**final, "status": "failed", "output": [],
                                                                   "error": {"code": "server_error", "message": "boom"}}})
        elif ending == "error_event":
            events.append({"type": "error", "code": "rate_limit_exceeded", "message": "slow down", "param": None})
    return [{**ev, "sequence_number": n} for n, ev in enumerate(events)], final, ending


def _bridge(events: list[dict], ending: str, visible_max_tokens: int = 0) -> tuple[list[dict], ResponsesStreamBridge]:
    ctx = _ctx(visible_max_tokens)
    bridge = ResponsesStreamBridge(ctx, KEY)
    out = []
    opening = True  # only the events a stream opens with so far: the client's stream has not begun
    for event in events:
        decoded = R.decode_event(json.dumps(event).encode())
        if decoded is not None:
            out += bridge.on_event(decoded)
        opening = opening and (decoded is None or decoded.type in ("response.created", "response.in_progress",
                                                                   "response.queued"))
        assert bridge.started != opening and bool(out) != opening
    if ending == "transport":
        out += bridge.on_error("api_error", "the upstream connection failed mid-stream (ClientPayloadError)")
    out += bridge.on_eof()
    assert bridge.ended and bridge.on_eof() == [] and bridge.on_error("api_error", "again") == []
    return wire_events(out), bridge


@SETTINGS
@given(_scenario())
def test_any_event_sequence_bridges_to_a_valid_stream(scenario: tuple[list[dict], dict, str]) -> None:
    events, final, ending = scenario
    anthropic, bridge = _bridge(events, ending)
    end = check_grammar(anthropic)
    if ending not in ("completed", "incomplete"):
        assert end == "error"
        return
    assert end == "message_stop"
    expected = msgspec.to_builtins(translate_response(msgspec.convert(final, R.Response), _ctx(), KEY))
    assert reassemble(anthropic) == expected
    assert (msgspec.to_builtins(bridge.final_usage), bridge.stop_reason) == (expected["usage"], expected["stop_reason"])


@SETTINGS
@given(_scenario(), st.integers(1, 12))
def test_stream_cut_at_the_client_max_tokens_reassembles_to_the_json_translation(scenario: tuple[list[dict], dict, str], budget: int) -> None:
    """A raised budget: the visible answer (text and whole tool calls) stays within the client's max_tokens,
    streamed exactly as the JSON answer is cut; usage stays the upstream's."""
    events, final, ending = scenario
    anthropic, bridge = _bridge(events, ending, budget)
    if check_grammar(anthropic) == "error":
        return
    response = msgspec.convert(final, R.Response)
    expected = msgspec.to_builtins(translate_response(response, _ctx(budget), KEY))
    streamed = reassemble(anthropic)
    assert streamed == expected
    assert (msgspec.to_builtins(bridge.final_usage), bridge.stop_reason) == (expected["usage"], expected["stop_reason"])
    visible = sum(len(b["text"]) for b in streamed["content"] if b["type"] == "text")
    visible += sum(len(json.dumps(b["input"], ensure_ascii=False, separators=(",", ":"))) for b in streamed["content"] if b["type"] == "tool_use")
    assert visible <= budget * 4
    uncut = msgspec.to_builtins(translate_response(response, _ctx(), KEY))
    assert streamed["usage"] == uncut["usage"]
    if streamed["content"] != uncut["content"]:
        assert streamed["stop_reason"] == "max_tokens"
    else:
        assert streamed["stop_reason"] == uncut["stop_reason"]


@SETTINGS
@given(_items())
def test_openai_ordered_stream_streams_every_fragment_as_it_arrives(items: list[dict]) -> None:
    """No buffering to the end: in OpenAI's own order, each delta event yields its delta at once."""
    bridge = ResponsesStreamBridge(_ctx(), KEY)
    bridge.on_event(R.decode_event(b'{"type":"response.created","response":{"output":[]}}'))  # type: ignore[arg-type]
    for index, item in enumerate(items):
        added = {"type": "response.output_item.added", "output_index": index, "item": {**item, "summary": [], "content": [], "arguments": ""}}
        bridge.on_event(msgspec.convert(added, R.OutputItemEvent))
        if item["type"] == "function_call" and item["arguments"] and not item["arguments"].startswith('"'):
            delta = {"type": "response.function_call_arguments.delta", "output_index": index, "delta": item["arguments"]}
            assert bridge.on_event(msgspec.convert(delta, R.DeltaEvent))
        elif item["type"] == "message":
            text = item["content"][0].get("text", item["content"][0].get("refusal", ""))
            kind = "output_text" if item["content"][0]["type"] == "output_text" else "refusal"
            delta = {"type": f"response.{kind}.delta", "output_index": index, "delta": text}
            assert bool(bridge.on_event(msgspec.convert(delta, R.DeltaEvent))) == bool(text)
        bridge.on_event(msgspec.convert({"type": "response.output_item.done", "output_index": index, "item": item}, R.OutputItemEvent))


def test_reasoning_block_gets_its_signature_before_it_stops() -> None:
    item = {"id": "rs_0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}], "encrypted_content": "E"}
    events = [
        {"type": "response.created", "response": {"output": []}},
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "summary": []}},
        {"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0, "delta": "hm"},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
    ]
    anthropic, _ = _bridge(events, "cut")
    kinds = [(e["type"], e.get("delta", {}).get("type")) for e in anthropic]
    assert kinds[2:] == [("content_block_start", None), ("content_block_delta", "thinking_delta"),
                         ("content_block_delta", "signature_delta"), ("content_block_stop", None), ("error", None)]


@pytest.mark.parametrize("payload", [b"not json", b'{"type": "response.output_item.added", "item": 3}'])
def test_malformed_known_events_raise_for_the_server_to_report(payload: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        R.decode_event(payload)


def test_unknown_event_types_decode_to_none() -> None:
    assert R.decode_event(b'{"type": "response.mcp_call.in_progress", "whatever": [1]}') is None
    assert R.decode_event(b'{"no_type": true}') is None
