"""A scripted OpenAI Responses server (`POST /v1/responses`) on 127.0.0.1, for end-to-end tests.

`ScriptedResponsesUpstream` is `ScriptedChatUpstream` (same thread, loop, script, recording, capped sleeps,
`reset()`/`stop()`) answering on /v1/responses: a `ResponsesReply` is rendered as a `response` object when
the request has `stream: false`, else as the event sequence OpenAI streams (`event: <type>` +
`data: {...}` with `sequence_number`, no `[DONE]`). `ErrorReply`, `Hang`, `Disconnect` and `RawStream` work
as they do for Chat; `sse_events()` turns hand-written event dicts into `RawStream` chunks.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from aiohttp import web

from .openai_chat import (
    Disconnect,
    ErrorReply,
    Hang,
    RawStream,
    RecordedRequest,
    ScriptedChatUpstream,
    _split,
    openai_error,
)

__all__ = [
    "Disconnect",
    "ErrorReply",
    "Hang",
    "RawStream",
    "RecordedRequest",
    "ResponsesReply",
    "ScriptedResponsesUpstream",
    "openai_error",
    "render_events",
    "render_response",
    "sse_events",
]


@dataclass
class ResponsesReply:
    """One scripted answer. Output items come in the order OpenAI produces them: reasoning, message, calls.

    `reasoning` is the summary (a string, a list of summary parts, or [] for reasoning without a summary;
    None: no reasoning item). `function_calls` holds `(call_id, name, arguments_json_str)`. `status` is
    completed | incomplete | failed (`incomplete_reason`, `error` = (code, message) apply). With
    `error_after=N` a stream sends an `error` event after N events and ends (a JSON request gets HTTP 500).
    `usage` is `(input_tokens, output_tokens, cached_tokens, reasoning_tokens)`.
    """

    text: str | None = None
    function_calls: list[tuple[str, str, str]] = field(default_factory=list)
    reasoning: Union[str, list[str], None] = None
    encrypted_content: str | None = "gAAAAB-scripted-encrypted-reasoning"
    refusal: str | None = None
    status: str = "completed"
    incomplete_reason: str = "max_output_tokens"
    error: tuple[str, str] = ("server_error", "The model failed to generate a response.")
    error_after: int | None = None
    usage: tuple[int, int, int, int] = (10, 5, 0, 0)
    model: str = "gpt-x"
    chunk_delay: float = 0.0
    pieces: int = 4  # how many deltas each text, summary part and argument string is split into
    headers: dict[str, str] = field(default_factory=dict)


Reply = Union[ResponsesReply, RawStream, ErrorReply, Hang, Disconnect]
Script = Union[Reply, list, Callable[[dict], Reply]]


class ScriptedResponsesUpstream(ScriptedChatUpstream):
    """OpenAI Responses on 127.0.0.1:<ephemeral>, answering from a script and recording requests."""

    @property
    def responses_url(self) -> str:
        return f"{self.base_url}/responses"

    PATH_SUFFIX = "/responses"

    def _include_usage(self, body: dict) -> bool:
        return False  # Responses streams always end with response.completed, usage inside

    async def _serve_reply(self, request: web.Request, reply: Any, stream: bool, include_usage: bool) -> web.StreamResponse:
        if not isinstance(reply, ResponsesReply):
            return await super()._serve_reply(request, reply, stream, include_usage)
        response_id = f"resp_scripted{next(self._ids)}"
        if not stream:
            if reply.error_after is not None:
                body = openai_error(reply.error[1], "server_error", reply.error[0])
                return web.json_response(body, status=500, headers=reply.headers)
            return web.json_response(render_response(reply, response_id), headers=reply.headers)
        chunks = sse_events(render_events(reply, response_id))
        return await self._send_stream(request, chunks, reply.chunk_delay, None, False, 200, reply.headers)


# ---- rendering --------------------------------------------------------------------------------------------


def sse_events(events: list[dict]) -> list[bytes]:
    """Event dicts as SSE frames, `event: <type>` then `data: <json>`, as OpenAI sends them."""
    return [f"event: {ev['type']}\ndata: {json.dumps(ev, separators=(',', ':'))}\n\n".encode() for ev in events]


def _summary_parts(reply: ResponsesReply) -> list[str]:
    if reply.reasoning is None:
        return []
    return [reply.reasoning] if isinstance(reply.reasoning, str) else list(reply.reasoning)


def _items(reply: ResponsesReply, response_id: str) -> list[dict]:
    """The finished output items."""
    items: list[dict] = []
    suffix = response_id.removeprefix("resp_")
    if reply.reasoning is not None:
        item = {"id": f"rs_{suffix}", "type": "reasoning",
                "summary": [{"type": "summary_text", "text": t} for t in _summary_parts(reply)]}
        if reply.encrypted_content is not None:
            item["encrypted_content"] = reply.encrypted_content
        items.append(item)
    if reply.text is not None or reply.refusal is not None:
        content = []
        if reply.text is not None:
            content.append({"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []})
        if reply.refusal is not None:
            content.append({"type": "refusal", "refusal": reply.refusal})
        items.append({"id": f"msg_{suffix}", "type": "message", "status": "completed", "role": "assistant", "content": content})
    for n, (call_id, name, args) in enumerate(reply.function_calls):
        items.append({"id": f"fc_{suffix}_{n}", "type": "function_call", "status": "completed",
                      "arguments": args, "call_id": call_id, "name": name})
    return items


def _usage(reply: ResponsesReply) -> dict:
    input_tokens, output_tokens, cached, reasoning = reply.usage
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def render_response(reply: ResponsesReply, response_id: str = "resp_scripted", *, final: bool = True) -> dict:
    """The `response` object for `reply` (final=False: as response.created shows it, in progress and empty)."""
    failed = reply.status == "failed"
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": reply.status if final else "in_progress",
        "error": {"code": reply.error[0], "message": reply.error[1]} if final and failed else None,
        "incomplete_details": {"reason": reply.incomplete_reason} if final and reply.status == "incomplete" else None,
        "model": reply.model,
        "output": _items(reply, response_id) if final and not failed else [],
        "parallel_tool_calls": True,
        "store": False,
        "tool_choice": "auto",
        "tools": [],
        "usage": _usage(reply) if final and not failed else None,
    }


def render_events(reply: ResponsesReply, response_id: str = "resp_scripted") -> list[dict]:
    """The event sequence OpenAI streams for `reply`, each with its `sequence_number`."""
    events: list[dict] = [
        {"type": "response.created", "response": render_response(reply, response_id, final=False)},
        {"type": "response.in_progress", "response": render_response(reply, response_id, final=False)},
    ]
    if reply.status != "failed":
        for index, item in enumerate(_items(reply, response_id)):
            events += _item_events(item, index, reply.pieces)
    end = {"completed": "response.completed", "incomplete": "response.incomplete", "failed": "response.failed"}
    events.append({"type": end[reply.status], "response": render_response(reply, response_id)})
    if reply.error_after is not None:
        code, message = reply.error
        events = events[: reply.error_after] + [{"type": "error", "code": code, "message": message, "param": None}]
    return [{**ev, "sequence_number": n} for n, ev in enumerate(events)]


def _item_events(item: dict, index: int, pieces: int) -> list[dict]:
    kind = item["type"]
    if kind == "reasoning":
        opened = {**item, "summary": []}
        opened.pop("encrypted_content", None)
        events = [_added(opened, index)]
        for s, part in enumerate(item["summary"]):
            where = {"item_id": item["id"], "output_index": index, "summary_index": s}
            events.append({"type": "response.reasoning_summary_part.added", **where, "part": {"type": "summary_text", "text": ""}})
            events += [{"type": "response.reasoning_summary_text.delta", **where, "delta": d} for d in _split(part["text"], pieces)]
            events.append({"type": "response.reasoning_summary_text.done", **where, "text": part["text"]})
            events.append({"type": "response.reasoning_summary_part.done", **where, "part": part})
    elif kind == "message":
        events = [_added({**item, "status": "in_progress", "content": []}, index)]
        for c, part in enumerate(item["content"]):
            where = {"item_id": item["id"], "output_index": index, "content_index": c}
            is_text = part["type"] == "output_text"
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []} if is_text else {"type": "refusal", "refusal": ""}
            events.append({"type": "response.content_part.added", **where, "part": empty})
            text = part["text"] if is_text else part["refusal"]
            name = "response.output_text" if is_text else "response.refusal"
            extra = {"logprobs": []} if is_text else {}
            events += [{"type": f"{name}.delta", **where, "delta": d, **extra} for d in _split(text, pieces)]
            events.append({"type": f"{name}.done", **where, ("text" if is_text else "refusal"): text, **extra})
            events.append({"type": "response.content_part.done", **where, "part": part})
    else:
        events = [_added({**item, "status": "in_progress", "arguments": ""}, index)]
        where = {"item_id": item["id"], "output_index": index}
        events += [{"type": "response.function_call_arguments.delta", **where, "delta": d} for d in _split(item["arguments"], pieces)]
        events.append({"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]})
    events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    return events


def _added(item: dict, index: int) -> dict:
    return {"type": "response.output_item.added", "output_index": index, "item": item}
