"""Building evidence of a finished call for the verdict tests: the request a client sent (with tools) and the
answer's Anthropic bytes as the client got them, JSON or SSE (the scripted Anthropic upstream's renderers)."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from dragoman.loop.assess import Assessor
from dragoman.loop.evidence import FINISHED, Evidence, request_part
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import Followups
from dragoman.protocols import anthropic as A
from dragoman.translate.tool_names import ToolNameMap
from tests.upstreams.anthropic_messages import MessageReply, render_message, render_message_events

READ_SCHEMA = {
    "type": "object",
    "properties": {"file_path": {"type": "string"}, "limit": {"type": "integer"}},
    "required": ["file_path"],
    "additionalProperties": False,
}
TOOLS = [{"name": "Read", "description": "read a file", "input_schema": READ_SCHEMA},
         {"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {
             "command": {"type": "string"}}, "required": ["command"]}}]


def request(tools: list[dict] | None = TOOLS, messages: list[dict] | None = None, stream: bool = False) -> bytes:
    """A Messages request body, checked to decode as the exchange decodes it."""
    body: dict[str, Any] = {"model": "m", "max_tokens": 100, "stream": stream,
                            "messages": messages or [{"role": "user", "content": "hi"}]}
    if tools is not None:
        body["tools"] = tools
    raw = json.dumps(body).encode()
    msgspec.json.decode(raw, type=A.MessagesRequest)
    return raw


def json_evidence(reply: MessageReply, req: bytes | None = None) -> Evidence:
    body = json.dumps(render_message(reply)).encode()
    req = req or request()
    return Evidence(**request_part(req), body=body, stop_reason=reply.stop_reason or _stop(reply),
                    tool_names=ToolNameMap(64))


def stream_evidence(reply: MessageReply, req: bytes | None = None, *, cut_after: int | None = None,
                    failure: str | None = None, stream_end: str | None = FINISHED, ended: bool = True,
                    tail: bytes = b"") -> Evidence:
    events = render_message_events(reply)
    if cut_after is not None:
        events = events[:cut_after]
    req = req or request(stream=True)
    chunks = [*events, tail] if tail else events
    return Evidence(**request_part(req), chunks=chunks,
                    stop_reason=None if cut_after is not None else reply.stop_reason or _stop(reply),
                    failure=failure, ended=ended, stream_end=stream_end, tool_names=ToolNameMap(64))


def error_event(error_type: str = "api_error", message: str = "boom") -> bytes:
    data = json.dumps({"type": "error", "error": {"type": error_type, "message": message}})
    return f"event: error\ndata: {data}\n\n".encode()


def assessed(assessor: Assessor, record: AuditRecord, evidence: Evidence) -> Followups | None:
    """A call through both halves of the Assessor, as the gateway runs them: examined on the event loop, then
    assessed in the writer's thread."""
    return assessor.assess(record, assessor.examine(record, evidence))


def _stop(reply: MessageReply) -> str:
    return "tool_use" if reply.tool_uses else "end_turn"
