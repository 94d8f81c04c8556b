"""Checks on Anthropic stream events, as a client sees them: SSE parsing, the event grammar, and reassembly into
a message.

Events are taken as plain dicts (what the client decodes from the SSE `data:` lines), so the checks see
exactly what goes on the wire. Reassembly follows the anthropic SDK's accumulator: text and thinking deltas
concatenated, `partial_json` concatenated per block and parsed once the block stops.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from dragoman.protocols import anthropic as A

_DELTA_FOR_BLOCK = {"text": "text_delta", "thinking": "thinking_delta", "tool_use": "input_json_delta"}


def wire_events(events: list[A.StreamEvent]) -> list[dict[str, Any]]:
    """The events as the client decodes them (JSON round trip, as sse.encode_events writes them)."""
    return [msgspec.json.decode(msgspec.json.encode(ev)) for ev in events]


def sse_events(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """(event name, decoded data) for each SSE event in `raw`; a data payload that is not JSON fails loudly."""
    events = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:"):].lstrip())
        if data:
            payload = "\n".join(data)
            try:
                events.append((name, json.loads(payload)))
            except ValueError:
                raise AssertionError(f"SSE event {name!r} carries data that is not JSON: {payload!r}") from None
    return events


def check_sse_grammar(events: list[tuple[str | None, dict[str, Any]]]) -> str:
    """`check_grammar` on events parsed by `sse_events`, each SSE event name also matching its data's type."""
    for name, data in events:
        assert data.get("type") == name, f"event {name!r} carries data of type {data.get('type')!r}"
    return check_grammar([data for _, data in events])


def check_grammar(events: list[dict[str, Any]]) -> str:
    """Assert the stream is well formed; return how it ended: "message_stop" or "error"."""
    assert events, "no events at all"
    kinds = [ev["type"] for ev in events]
    assert kinds[0] == "message_start", kinds
    end = kinds[-1]
    assert end in ("message_stop", "error"), f"stream ends with {end}: {kinds}"
    assert kinds.count(end) == 1 and kinds.count("message_stop") + kinds.count("error") == 1, kinds
    open_index: int | None = None
    open_type: str | None = None
    next_index = 0
    delta_seen = False
    for position, ev in enumerate(events):
        kind = ev["type"]
        where = f"event {position} ({kind}) in {kinds}"
        if kind == "message_start":
            assert position == 0, where
            message = ev["message"]
            assert message["content"] == [] and message["role"] == "assistant", where
        elif kind == "ping":
            pass  # allowed anywhere: Anthropic sends them as keep-alives
        elif kind == "content_block_start":
            assert not delta_seen, f"block opened after message_delta: {where}"
            assert open_index is None, f"block {open_index} still open: {where}"
            assert ev["index"] == next_index, f"index {ev['index']}, expected {next_index}: {where}"
            block = ev["content_block"]
            open_index, open_type = ev["index"], block["type"]
            next_index += 1
            if open_type == "tool_use":
                assert block["input"] == {} and block["id"], where
            elif open_type == "text":
                assert block["text"] == "", where
            elif open_type == "thinking":
                assert block["thinking"] == "", where
        elif kind == "content_block_delta":
            assert open_index is not None and ev["index"] == open_index, f"delta for a block not open: {where}"
            delta_type = ev["delta"]["type"]
            allowed = {_DELTA_FOR_BLOCK[open_type]} | ({"signature_delta"} if open_type == "thinking" else set())
            assert delta_type in allowed, f"{delta_type} in a {open_type} block: {where}"
        elif kind == "content_block_stop":
            assert open_index is not None and ev["index"] == open_index, f"stop for a block not open: {where}"
            open_index = open_type = None
        elif kind == "message_delta":
            assert not delta_seen, f"second message_delta: {where}"
            assert open_index is None, f"message_delta with block {open_index} open: {where}"
            assert ev["delta"]["stop_reason"] in ("end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"), where
            delta_seen = True
        elif kind == "message_stop":
            assert delta_seen, f"message_stop without message_delta: {where}"
        elif kind == "error":
            assert set(ev) == {"type", "error"} and ev["error"]["type"] and ev["error"]["message"], where
        else:
            raise AssertionError(f"unknown event type: {where}")
    return end


def reassemble(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The message a client builds from the events (the SDK's `get_final_message()`), as a plain dict."""
    message: dict[str, Any] = dict(events[0]["message"])
    message["content"] = []
    usage = dict(message["usage"])
    json_parts: dict[int, list[str]] = {}
    for ev in events[1:]:
        kind = ev["type"]
        if kind == "content_block_start":
            message["content"].append(dict(ev["content_block"]))
        elif kind == "content_block_delta":
            block = message["content"][ev["index"]]
            delta = ev["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                json_parts.setdefault(ev["index"], []).append(delta["partial_json"])
        elif kind == "content_block_stop":
            block = message["content"][ev["index"]]
            if block["type"] == "tool_use":
                text = "".join(json_parts.get(ev["index"], []))
                block["input"] = json.loads(text) if text else {}
        elif kind == "message_delta":
            message["stop_reason"] = ev["delta"]["stop_reason"]
            message["stop_sequence"] = ev["delta"].get("stop_sequence")
            usage.update(ev["usage"])  # cumulative totals: they overwrite
    message["usage"] = usage
    return message
