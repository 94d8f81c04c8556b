"""Hand-written OpenAI Chat Completions stream chunks, for `RawStream` scripts that need a stream no `ChatReply`
renders: several tool calls in one chunk, fragments interleaved across calls, late ids, cut streams."""

from __future__ import annotations

from typing import Any


def chat_chunk(delta: dict, finish_reason: str | None = None) -> dict:
    """One `chat.completion.chunk` with a single choice carrying `delta`."""
    return {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def usage_chunk(prompt: int = 30, completion: int = 12, cached: int = 0) -> dict:
    """The choice-less chunk that carries the usage when the request asked for `include_usage`."""
    return {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": cached}}}


def tool_call_delta(index: int, *, id: str | None = None, name: str | None = None, args: str | None = None) -> dict:
    """One entry of a delta's `tool_calls`: the fields given, and `type` with the id (as OpenAI sends it)."""
    entry: dict[str, Any] = {"index": index}
    if id is not None:
        entry["id"] = id
        entry["type"] = "function"
    function = {k: v for k, v in (("name", name), ("arguments", args)) if v is not None}
    if function:
        entry["function"] = function
    return entry


ROLE_CHUNK = chat_chunk({"role": "assistant", "content": None})
