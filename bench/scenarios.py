"""The benchmark's request bodies: each scenario as an Anthropic Messages body (sent to a gateway) and as the
equivalent OpenAI Chat body (sent straight to the upstream, the "direct" floor).

The Chat equivalent is made once, up front: with Dragoman's own translator when it imports (so "direct" sends
exactly what Dragoman sends upstream), else with a small hand mapping (system blocks -> a system message, text
blocks -> text, tool_use/tool_result -> tool_calls/tool messages, tools -> functions), close enough that the
upstream does the same work for both. `Scenario.chat_by` says which one made it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FIXTURE = Path("/work/shared/fixtures/claude_code/claude_code_2.1.197_first_turn.json")
ROUTE = "bench-model"  # the route/model name every gateway is configured with
UPSTREAM_MODEL = "gpt-4.1"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    anthropic: bytes  # body for POST /v1/messages
    chat: bytes  # body for POST /v1/chat/completions
    stream: bool
    chat_by: str  # "dragoman.translate" or "hand mapping"


def _small_request(stream: bool) -> dict:
    """A ~2 KB Anthropic request: a system prompt, a short exchange with one tool call, one tool."""
    system = (
        "You are a careful coding assistant working in the repository at /home/dev/project. Answer briefly, "
        "prefer small diffs, and explain the reason for each change in one sentence. When you need to look at "
        "a file, call the read_file tool with its path relative to the repository root; never guess at a "
        "file's contents. If a command fails, quote the relevant lines of its output and propose one fix. Keep "
        "answers under two hundred words unless asked for more."
    )
    return {
        "model": ROUTE,
        "max_tokens": 1024,
        "stream": stream,
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "Why does the config loader reject my routes file? It says line 12."},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look at the file first."},
                    {"type": "tool_use", "id": "toolu_01", "name": "read_file", "input": {"path": "routes.yaml"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": "routes:\n  - name: fast\n    upstream:\n      provider: openai\n"
                        "      model: gpt-4.1\n      endpoint: https://api.example.com/v1/chat/completions\n"
                        "    translation:\n      reasoning_effort: sometimes\n",
                    },
                    {"type": "text", "text": "That's the whole file. What is wrong with it?"},
                ],
            },
        ],
        "tools": [
            {
                "name": "read_file",
                "description": "Read a text file from the repository and return its contents.",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "path relative to the repository root"},
                        "max_lines": {"type": "integer", "description": "stop after this many lines"},
                    },
                    "required": ["path"],
                },
            },
            {
                "name": "run_command",
                "description": "Run a shell command in the repository and return its exit code, stdout and stderr.",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "command": {"type": "string", "description": "the command line, run with bash -c"},
                        "timeout_s": {"type": "number", "description": "kill the command after this long"},
                    },
                    "required": ["command"],
                },
            },
        ],
        "temperature": 0.2,
    }


def _fixture_request() -> dict:
    body = json.loads(FIXTURE.read_bytes())
    body["model"] = ROUTE
    body["stream"] = False
    return body


def _text_of(content: str | list[dict]) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content if b.get("type") == "text")


def anthropic_to_chat(body: dict) -> dict:
    """Hand mapping of an Anthropic Messages body to the OpenAI Chat body a gateway would send."""
    messages: list[dict] = []
    if body.get("system"):
        messages.append({"role": "system", "content": _text_of(body["system"])})
    for msg in body["messages"]:
        content = msg["content"]
        if msg["role"] == "system":  # Claude Code sends mid-conversation system messages
            messages.append({"role": "system", "content": _text_of(content)})
            continue
        if isinstance(content, str):
            messages.append({"role": msg["role"], "content": content})
            continue
        tool_calls = [
            {
                "id": b["id"],
                "type": "function",
                "function": {"name": b["name"], "arguments": json.dumps(b["input"], separators=(",", ":"))},
            }
            for b in content
            if b["type"] == "tool_use"
        ]
        for b in content:
            if b["type"] == "tool_result":
                messages.append({"role": "tool", "tool_call_id": b["tool_use_id"], "content": _text_of(b["content"])})
        text = _text_of(content)
        if msg["role"] == "assistant":
            out: dict = {"role": "assistant", "content": text or None}
            if tool_calls:
                out["tool_calls"] = tool_calls
            messages.append(out)
        elif text:
            messages.append({"role": "user", "content": text})
    chat: dict = {"model": UPSTREAM_MODEL, "messages": messages, "max_completion_tokens": body["max_tokens"]}
    if body.get("tools"):
        chat["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "parameters": t["input_schema"],
                },
            }
            for t in body["tools"]
        ]
    if "temperature" in body:
        chat["temperature"] = body["temperature"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def dragoman_chat_body(body: bytes) -> bytes:
    """The Chat body Dragoman sends for `body` on an openai_compatible route (raises if its API has moved)."""
    import msgspec

    from dragoman.protocols import anthropic as A
    from dragoman.translate.anthropic_to_chat import translate_request
    from dragoman.translate.options import TranslationOptions
    from dragoman.translate.request_context import RequestContext
    from dragoman.translate.tool_names import ToolNameMap

    req = msgspec.json.decode(body, type=A.MessagesRequest)
    options = TranslationOptions()
    ctx = RequestContext(
        message_id="msg_bench", requested_model=req.model, tool_names=ToolNameMap(options.max_tool_name_length)
    )
    chat = translate_request(req, UPSTREAM_MODEL, options, ctx, openai_extensions=False)
    return msgspec.json.encode(chat)


def _chat_body(anthropic: bytes, body: dict) -> tuple[bytes, str]:
    try:
        return dragoman_chat_body(anthropic), "dragoman.translate"
    except Exception:  # not written yet, or its API moved on: the hand mapping is close enough
        return _dump(anthropic_to_chat(body)), "hand mapping"


def _dump(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def build_scenarios() -> list[Scenario]:
    made = []
    for name, title, body in (
        ("small", "~2 KB request, JSON answer", _small_request(stream=False)),
        ("cc78k", "78 KB Claude Code first turn, JSON answer", _fixture_request()),
        ("stream", "~2 KB request, 60-chunk streamed answer", _small_request(stream=True)),
    ):
        anthropic = _dump(body)
        chat, chat_by = _chat_body(anthropic, body)
        made.append(Scenario(name, title, anthropic, chat, bool(body.get("stream")), chat_by))
    return made


if __name__ == "__main__":
    for s in build_scenarios():
        print(f"{s.name:8} anthropic {len(s.anthropic):7,d} B   chat {len(s.chat):7,d} B ({s.chat_by})   {s.title}")
