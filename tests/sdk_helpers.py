"""Talking to a gateway as a client does, for the end-to-end tests: one Messages call through the `anthropic` SDK
(as JSON or streamed), a raw streamed call with its SSE events, the message a raw answer gives, content blocks as
comparable tuples, and the Claude-Code-like tools those tests offer."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from tests.anthropic_events import check_sse_grammar, reassemble, sse_events
from tests.gateway import ROUTE_NAME, Gateway, RawResponse
from tests.routing_helpers import USER_HI

# The `stream` parameter of a test that checks both deliveries of one answer.
json_and_stream = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])


def ask(sdk: anthropic.Anthropic, stream: bool, **kwargs: Any) -> anthropic.types.Message:
    """One Messages call, as JSON or streamed and reassembled by the SDK."""
    body = {"model": ROUTE_NAME, "max_tokens": 2000, "messages": USER_HI, **kwargs}
    if stream:
        with sdk.messages.stream(**body) as events:
            return events.get_final_message()
    return sdk.messages.create(**body)


def stream_raw(gateway: Gateway, **body: Any) -> tuple[int, list[tuple[str | None, dict]]]:
    """A streamed POST /v1/messages: (status, SSE events), or (status, [("http_error", body)]) when not a 200."""
    response = gateway.request("POST", "/v1/messages", {"stream": True, **body},
                               {"x-api-key": "anything", "anthropic-version": "2023-06-01"})
    if response.status != 200:
        return response.status, [("http_error", response.json())]
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers
    return response.status, sse_events(response.body)


def received_message(response: RawResponse, stream: bool) -> dict:
    """The message a 200 answer gives the client: its JSON body, or its well-formed SSE events reassembled."""
    assert response.status == 200, response.text
    if stream:
        events = sse_events(response.body)
        assert check_sse_grammar(events) == "message_stop"
        message = reassemble([data for _, data in events])
    else:
        message = response.json()
    assert message["type"] == "message" and message["role"] == "assistant", message
    return message


def blocks(content: list) -> list[tuple]:
    """Content blocks (SDK objects or dicts) as comparable tuples."""
    out = []
    for block in content:
        b = block if isinstance(block, dict) else block.model_dump()
        if b["type"] == "text":
            out.append(("text", b["text"]))
        elif b["type"] == "thinking":
            out.append(("thinking", b["thinking"]))
        elif b["type"] == "tool_use":
            out.append(("tool_use", b["id"], b["name"], b["input"]))
        else:
            out.append((b["type"],))
    return out


def text_of(content: Any) -> str:
    """The text of an OpenAI Chat message content: a string or a list of text parts."""
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def tool(name: str, properties: dict) -> dict:
    """An Anthropic tool definition taking an object with `properties`."""
    return {"name": name, "description": f"The {name} tool.",
            "input_schema": {"type": "object", "properties": properties}}


# Six calls as Claude Code fans them out: odd argument shapes, an MCP tool, non-ASCII text, nested values.
SIX_CALLS = [
    ("call_read_1_Qm7tRz4kLp2Vw8Nf", "Read", {"file_path": "/home/dev/project/README.md"}),
    ("call_bash_2_Qm7tRz4kLp2Vw8Nf", "Bash", {"command": "ls -la && echo \"done\"", "timeout": 30000}),
    ("call_grep_3_Qm7tRz4kLp2Vw8Nf", "Grep", {"pattern": "def \\w+\\(", "path": "src", "-n": True}),
    ("call_glob_4_Qm7tRz4kLp2Vw8Nf", "Glob", {"pattern": "**/*.py"}),
    ("call_mcp_5_Qm7tRz4kLp2Vw8Nf", "mcp__github__create_issue", {"title": "Ünïcode ✓", "labels": ["bug", "p1"]}),
    ("call_fetch_6_Qm7tRz4kLp2Vw8Nf", "WebFetch", {"url": "https://example.com", "prompt": "summarise", "nested": {"a": [1, 2.5, None]}}),
]
SIX_TOOLS = [tool(name, {k: {} for k in args}) for _, name, args in SIX_CALLS]
SIX_REPLY_CALLS = [(cid, name, json.dumps(args)) for cid, name, args in SIX_CALLS]  # as ChatReply.tool_calls
SIX_BLOCKS = [("tool_use", cid, name, args) for cid, name, args in SIX_CALLS]  # as blocks() gives them
