"""One request per scenario before any timing: is the answer what that scenario should get back?

A gateway that answers fast but wrong (an error, a stream cut short, nothing translated) must not show up in
the table as fast, so each answer is checked against the fake upstream's known reply.
"""

from __future__ import annotations

import http.client
import json

from upstream import ANSWER_TEXT, STREAM_CHUNKS, stream_pieces

STREAM_TEXT = "".join(stream_pieces(STREAM_CHUNKS))  # what every streamed answer must reassemble to


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


def check_chat(body: bytes, stream: bool) -> str | None:
    if not stream:
        msg = json.loads(body)
        return None if msg["choices"][0]["message"]["content"] == ANSWER_TEXT else f"unexpected {body[:200]!r}"
    events = _sse_data(body)
    return None if len(events) == STREAM_CHUNKS + 2 else f"{len(events)} events"


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
) -> str | None:
    """Send one request; None when the answer is right, else a one-line reason. `api`: what a non-Anthropic
    answer is (chat | responses)."""
    try:
        status, answer = post(port, path, body, headers)
    except OSError as exc:
        return f"request failed: {exc!r}"
    if status != 200:
        return f"HTTP {status}: {answer[:300]!r}"
    try:
        check = check_anthropic if anthropic else check_responses if api == "responses" else check_chat
        return check(answer, stream)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"unparseable answer ({exc!r}): {answer[:200]!r}"
