"""A scripted Anthropic Messages server on 127.0.0.1, for passthrough and fallback tests.

`ScriptedAnthropicUpstream` is the Anthropic twin of `ScriptedChatUpstream` (and reuses its machinery: a
real aiohttp server in its own thread, capped sleeps that wake on `reset()`/`stop()`, scripts as a list, one
reply or a callable). It answers `POST /v1/messages` and records every request's body and headers.

Replies:
- `MessageReply`: a well-formed message, as JSON (`stream: false`) or as the SSE event sequence Anthropic
  streams (`render_message_sse(reply)` gives those exact bytes, for byte-identical checks);
- `RawSSE`: a byte sequence served exactly as given, piece by piece (optionally cut mid-stream);
- `AnthropicError`: an HTTP error with Anthropic's error body;
- `Hang`, `Held`, `Hold`, `Disconnect`, `Redirect` and `RawBody` (shared with the Chat upstream).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from aiohttp import web

from .openai_chat import Disconnect, Hang, Held, Hold, RawBody, RecordedRequest, Redirect, ScriptedChatUpstream

__all__ = [
    "AnthropicError",
    "Disconnect",
    "Hang",
    "Held",
    "Hold",
    "MessageReply",
    "RawBody",
    "RawSSE",
    "RecordedRequest",
    "Redirect",
    "ScriptedAnthropicUpstream",
    "anthropic_error_body",
    "render_message",
    "render_message_sse",
]


@dataclass
class MessageReply:
    """A complete assistant message: text and/or tool uses (`(id, name, input_dict)`)."""

    text: str | None = "Hello from the scripted Anthropic upstream."
    tool_uses: list[tuple[str, str, dict]] = field(default_factory=list)
    thinking: str | None = None
    stop_reason: str | None = None  # None: "tool_use" when there are tool uses, else "end_turn"
    usage: tuple[int, int] = (12, 7)  # (input_tokens, output_tokens)
    model: str = "claude-scripted-1"
    message_id: str = "msg_scripted_01"
    pieces: int = 3  # deltas per text / thinking / tool input
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RawSSE:
    """Bytes served verbatim as `text/event-stream`: each item of `pieces` is one write (one TCP send).

    `delay` sleeps between writes; `disconnect_after=N` aborts the connection after N pieces (no chunked
    terminator), which is how an upstream dies mid-stream.
    """

    pieces: list[bytes]
    delay: float = 0.0
    disconnect_after: int | None = None
    hold_after: int | None = None  # wait after N pieces until release(), as RawStream does
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> bytes:
        """What a client reading the whole stream receives."""
        pieces = self.pieces if self.disconnect_after is None else self.pieces[: self.disconnect_after]
        return b"".join(pieces)


@dataclass
class AnthropicError:
    """An HTTP error with Anthropic's body `{"type":"error","error":{"type":…,"message":…}}`."""

    status: int
    error_type: str = "api_error"
    message: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)


Reply = Union[MessageReply, RawSSE, AnthropicError, Hang, Held, Hold, Disconnect, Redirect, RawBody]
Script = Union[Reply, list, Callable[[dict], Reply]]


def anthropic_error_body(error_type: str, message: str) -> dict:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _stop_reason(reply: MessageReply) -> str:
    if reply.stop_reason is not None:
        return reply.stop_reason
    return "tool_use" if reply.tool_uses else "end_turn"


def _split(text: str, pieces: int) -> list[str]:
    if not text:
        return [""]
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _content(reply: MessageReply) -> list[dict]:
    content: list[dict] = []
    if reply.thinking is not None:
        content.append({"type": "thinking", "thinking": reply.thinking, "signature": "sig_scripted"})
    if reply.text is not None:
        content.append({"type": "text", "text": reply.text})
    for tool_id, name, arguments in reply.tool_uses:
        content.append({"type": "tool_use", "id": tool_id, "name": name, "input": arguments})
    return content


def render_message(reply: MessageReply) -> dict:
    """The non-streamed Messages API answer for `reply`."""
    return {
        "id": reply.message_id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": _content(reply),
        "stop_reason": _stop_reason(reply),
        "stop_sequence": None,
        "usage": {"input_tokens": reply.usage[0], "output_tokens": reply.usage[1],
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def render_message_events(reply: MessageReply) -> list[bytes]:
    """The SSE events Anthropic streams for `reply`, one bytes object per event."""
    start = render_message(reply)
    start.update(content=[], stop_reason=None)
    start["usage"] = {**start["usage"], "output_tokens": 1}
    events = [_event("message_start", {"type": "message_start", "message": start}),
              _event("ping", {"type": "ping"})]
    for index, block in enumerate(_content(reply)):
        kind = block["type"]
        if kind == "thinking":
            opening, deltas = {"type": "thinking", "thinking": "", "signature": ""}, [
                {"type": "thinking_delta", "thinking": part} for part in _split(block["thinking"], reply.pieces)
            ] + [{"type": "signature_delta", "signature": block["signature"]}]
        elif kind == "text":
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in _split(block["text"], reply.pieces)]
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": part}
                      for part in _split(json.dumps(block["input"]), reply.pieces)]
        events.append(_event("content_block_start", {"type": "content_block_start", "index": index,
                                                     "content_block": opening}))
        events += [_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
                   for d in deltas]
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(_event("message_delta", {
        "type": "message_delta", "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
        "usage": {"output_tokens": reply.usage[1]}}))
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events


def render_message_sse(reply: MessageReply) -> bytes:
    """The exact bytes the upstream streams for `reply`."""
    return b"".join(render_message_events(reply))


class ScriptedAnthropicUpstream(ScriptedChatUpstream):
    """Anthropic Messages on 127.0.0.1:<ephemeral>: `POST /v1/messages`, scripted, every request recorded."""

    @property
    def base_url(self) -> str:  # what a route's `endpoint:` may say (the gateway appends /v1/messages)
        return f"http://127.0.0.1:{self.port}"

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/v1/messages"

    @property
    def last_request(self) -> RecordedRequest:
        assert self.requests, "the scripted Anthropic upstream received no request"
        return self.requests[-1]

    def _next_reply(self, body: Any) -> Reply:
        with self._script_lock:
            script = self._script
            if isinstance(script, (list, tuple)):
                if not self._queue:
                    return AnthropicError(500, "api_error", "scripted upstream: script exhausted")
                return self._queue.pop(0)
        if script is None:
            return AnthropicError(500, "api_error", "scripted upstream: no script installed")
        if callable(script):
            return script(body if isinstance(body, dict) else {})
        return script

    PATH_SUFFIX = "/v1/messages"

    def _error_body(self, kind: str, message: str) -> dict:
        return anthropic_error_body("not_found_error" if kind == "not_found" else "api_error", message)

    def _include_usage(self, body: dict) -> bool:
        return False

    async def _serve_reply(self, request: web.Request, reply: Any, stream: bool, include_usage: bool
                           ) -> web.StreamResponse:
        if isinstance(reply, AnthropicError):
            return web.json_response(anthropic_error_body(reply.error_type, reply.message), status=reply.status,
                                     headers=reply.headers)
        if isinstance(reply, MessageReply):
            if not stream:
                return web.json_response(render_message(reply), headers=reply.headers)
            return await self._send_raw(request, RawSSE(render_message_events(reply), headers=reply.headers))
        if isinstance(reply, RawSSE):
            return await self._send_raw(request, reply)
        return await super()._serve_reply(request, reply, stream, include_usage)  # Hang, Hold, Redirect, RawBody…

    async def _send_raw(self, request: web.Request, reply: RawSSE) -> web.StreamResponse:
        response = web.StreamResponse(status=reply.status, headers={
            "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", **reply.headers})
        await response.prepare(request)
        for sent, piece in enumerate(reply.pieces):
            if reply.disconnect_after is not None and sent >= reply.disconnect_after:
                return self._drop_connection(request)
            if sent and reply.delay and not await self._sleep(reply.delay):
                return self._drop_connection(request)
            if sent == reply.hold_after and not await self._hold():
                return self._drop_connection(request)
            try:
                await response.write(piece)
            except (ConnectionError, RuntimeError):
                return response
        if reply.disconnect_after is not None and reply.disconnect_after <= len(reply.pieces):
            return self._drop_connection(request)
        try:
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return response
