"""One request per scenario before any timing: is the answer what that scenario should get back?

A gateway that answers fast but wrong (an error, a stream cut short, nothing translated) must not show up in
the table as fast, so each answer is checked against the fake upstream's known reply.
"""

from __future__ import annotations

import http.client
import json

from upstream import ANSWER_TEXT, STREAM_CHUNKS, fixture_tool_calls, stream_pieces

STREAM_TEXT = "".join(stream_pieces(STREAM_CHUNKS))  # what every streamed answer must reassemble to
# what the tools scenarios' answers must carry: (id, name, input) of each call, in order
TOOL_CALLS = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in fixture_tool_calls()]


def post(
    port: int, path: str, body: bytes, headers: tuple[tuple[str, str], ...], timeout: float = 60
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"content-type": "application/json", **dict(headers)})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _sse_data(raw: bytes) -> list[dict]:
    events = []
    for line in raw.decode().splitlines():
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            events.append(json.loads(line[5:]))
    return events


def _sse_names(raw: bytes) -> list[str]:
    return [line[6:].strip() for line in raw.decode().splitlines() if line.startswith("event:")]


def check_anthropic(body: bytes, stream: bool) -> str | None:
    """None when `body` is the Anthropic form of the upstream's answer, else what is wrong."""
    if not stream:
        msg = json.loads(body)
        if msg.get("type") != "message":
            return f"not a message: {body[:300]!r}"
        text = "".join(b.get("text", "") for b in msg.get("content", []) if b.get("type") == "text")
        if text != ANSWER_TEXT:
            return f"text {text[:80]!r} != upstream's"
        if msg.get("stop_reason") != "end_turn":
            return f"stop_reason {msg.get('stop_reason')!r}"
        return None
    events = _sse_data(body)
    kinds = [e.get("type") for e in events]
    deltas = [e for e in events if e.get("type") == "content_block_delta"]
    text = "".join(e["delta"].get("text", "") for e in deltas)
    if not kinds or kinds[0] != "message_start" or kinds[-1] != "message_stop":
        return f"event order {kinds[:3]}..{kinds[-3:]}"
    if "error" in kinds:
        return f"error event: {events[kinds.index('error')]}"
    if text != STREAM_TEXT:  # all 60 pieces, in order, nothing added or lost
        return f"streamed text {text[:60]!r}..{text[-30:]!r} != the upstream's {STREAM_CHUNKS} pieces"
    stops = [e["delta"].get("stop_reason") for e in events if e.get("type") == "message_delta"]
    if stops != ["end_turn"]:
        return f"message_delta stop_reason {stops}"
    return None


def check_anthropic_tools(body: bytes, stream: bool) -> str | None:
    """None when `body` is the Anthropic form of the upstream's six tool calls (ids, names, inputs), stop tool_use."""
    if not stream:
        msg = json.loads(body)
        calls = [(b["id"], b["name"], b["input"]) for b in msg.get("content", []) if b.get("type") == "tool_use"]
        stop = msg.get("stop_reason")
    else:
        events = _sse_data(body)
        kinds = [e.get("type") for e in events]
        if not kinds or kinds[0] != "message_start" or kinds[-1] != "message_stop" or "error" in kinds:
            return f"event order {kinds[:3]}..{kinds[-3:]}"
        blocks: dict[int, list] = {}
        for e in events:
            if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use":
                blocks[e["index"]] = [e["content_block"]["id"], e["content_block"]["name"], ""]
            elif e["type"] == "content_block_delta" and e["delta"].get("type") == "input_json_delta":
                blocks[e["index"]][2] += e["delta"]["partial_json"]
        calls = [(i, n, json.loads(args or "{}")) for i, n, args in blocks.values()]
        stop = next((e["delta"].get("stop_reason") for e in events if e["type"] == "message_delta"), None)
    if calls != TOOL_CALLS:
        return f"tool calls {[c[:2] for c in calls]} != the upstream's {[c[:2] for c in TOOL_CALLS]}"
    return None if stop == "tool_use" else f"stop_reason {stop!r}"


def check_chat(body: bytes, stream: bool, tools: bool = False) -> str | None:
    if not stream:
        msg = json.loads(body)["choices"][0]["message"]
        ok = len(msg.get("tool_calls") or ()) == len(TOOL_CALLS) if tools else msg["content"] == ANSWER_TEXT
        return None if ok else f"unexpected {body[:200]!r}"
    events = _sse_data(body)
    expected = (len(TOOL_CALLS) if tools else STREAM_CHUNKS) + 2
    return None if len(events) == expected else f"{len(events)} events"


def check_responses(body: bytes, stream: bool) -> str | None:
    """The fake upstream's Responses answer, as direct (and the forwarder) receive it."""
    if not stream:
        out = json.loads(body)["output"]
        text = "".join(c["text"] for item in out if item["type"] == "message" for c in item["content"])
        return None if text == ANSWER_TEXT else f"unexpected {body[:200]!r}"
    events = _sse_data(body)
    kinds = [e.get("type") for e in events]
    if _sse_names(body) != kinds:
        return "event: lines do not match the data types"
    if not kinds or kinds[0] != "response.created" or kinds[-1] != "response.completed":
        return f"event order {kinds[:3]}..{kinds[-3:]}"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    return None if text == STREAM_TEXT else f"streamed text {text[:60]!r}"


def validate(
    port: int,
    path: str,
    body: bytes,
    headers: tuple[tuple[str, str], ...],
    stream: bool,
    anthropic: bool,
    api: str = "chat",
    tools: bool = False,
) -> str | None:
    """Send one request; None when the answer is right, else a one-line reason. `api`: what a non-Anthropic
    answer is (chat | responses); `tools`: the answer is the upstream's tool calls, not its text."""
    try:
        status, answer = post(port, path, body, headers)
    except OSError as exc:
        return f"request failed: {exc!r}"
    if status != 200:
        return f"HTTP {status}: {answer[:300]!r}"
    try:
        if anthropic:
            return (check_anthropic_tools if tools else check_anthropic)(answer, stream)
        return check_responses(answer, stream) if api == "responses" else check_chat(answer, stream, tools)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"unparseable answer ({exc!r}): {answer[:200]!r}"
