"""The benchmark's request bodies: each scenario as an Anthropic Messages body (sent to a gateway) and as the
equivalent upstream body (sent straight to the upstream, the "direct" floor): OpenAI Chat for small, cc78k and
stream; OpenAI Responses for `responses` (the stream request again, for a route with `api: responses`).

The upstream equivalent is made once, up front: with Dragoman's own translator when it imports (so "direct"
sends exactly what Dragoman sends upstream), else with a small hand mapping (system blocks -> a system message,
text blocks -> text, tool_use/tool_result -> tool_calls/tool messages, tools -> functions), close enough that the
upstream does the same work for both. `Scenario.chat_by` says which one made it. The `tools` scenarios go to
the upstream's /tools/ path (Scenario.path_prefix), which answers with tool calls. (`Scenario.chat` holds the
direct body whichever API it is for; `Scenario.api` says which, `Scenario.direct_path` where it goes.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from upstream import TOOLS_FIXTURE

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/claude_code/claude_code_2.1.197_first_turn.json"
ROUTE = "bench-model"  # the route/model name every gateway is configured with
ROUTE_RESPONSES = "bench-responses"  # Dragoman's route with `upstream: {api: responses}`
ROUTE_TOOLS = "bench-tools"  # the route to the upstream's /tools/ path, which answers with tool calls
TOOLS_PATH_PREFIX = "/tools"
UPSTREAM_MODEL = "gpt-4.1"
# The key the bench Dragoman seals reasoning with (gateways.py sets DRAGOMAN_SIGNING_KEY); no thinking blocks
# come back in these requests, so direct's body does not depend on it.
REASONING_KEY = b"x" * 32
API_PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    anthropic: bytes  # body for POST /v1/messages
    chat: bytes  # direct's body: for POST /v1/chat/completions, or /v1/responses when api == "responses"
    stream: bool
    chat_by: str  # "dragoman.translate" or "hand mapping"
    api: str = "chat"  # the upstream API the gateway's route speaks: chat | responses
    path_prefix: str = ""  # "/tools": the upstream answers with the fixture's tool calls

    @property
    def direct_path(self) -> str:
        return self.path_prefix + API_PATHS[self.api]


def _small_request(stream: bool, model: str = ROUTE) -> dict:
    """A ~2 KB Anthropic request: a system prompt, a short exchange with one tool call, one tool."""
    system = (
        "You are a careful coding assistant working in the repository at /home/dev/project. Answer briefly, "
        "prefer small diffs, and explain the reason for each change in one sentence. When you need to look at "
        "a file, call the read_file tool with its path relative to the repository root; never guess at a "
        "file's contents. If a command fails, quote the relevant lines of its output and propose one fix. Keep "
        "answers under two hundred words unless asked for more."
    )
    return {
        "model": model,
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


def _tools_request(stream: bool) -> dict:
    """A Claude Code turn after six parallel Reads (52 KB compact, 12 tools), its last turn the six tool_results; the
    upstream answers with those same six calls, so every request's results join the previous answer's calls."""
    body = json.loads(TOOLS_FIXTURE.read_bytes())
    body["model"] = ROUTE_TOOLS
    body["stream"] = stream
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
    from dragoman.translate.chat.request import translate_request
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


def dragoman_responses_body(body: bytes) -> bytes:
    """The Responses body Dragoman sends for `body` on an openai_compatible route with `api: responses`."""
    import msgspec

    from dragoman.protocols import anthropic as A
    from dragoman.translate.responses.request import translate_request
    from dragoman.translate.options import TranslationOptions
    from dragoman.translate.request_context import RequestContext
    from dragoman.translate.tool_names import ToolNameMap

    req = msgspec.json.decode(body, type=A.MessagesRequest)
    options = TranslationOptions()
    ctx = RequestContext(
        message_id="msg_bench", requested_model=req.model, tool_names=ToolNameMap(options.max_tool_name_length)
    )
    out = translate_request(req, UPSTREAM_MODEL, options, ctx, reasoning_key=REASONING_KEY, openai_extensions=False)
    return msgspec.json.encode(out)


def anthropic_to_responses(body: dict) -> dict:
    """Hand mapping to a Responses body: the Chat mapping's messages as input items, flat function tools."""
    chat = anthropic_to_chat(body)
    items: list[dict] = []
    instructions = None
    for msg in chat["messages"]:
        if msg["role"] == "system" and instructions is None and not items:
            instructions = msg["content"]
        elif msg["role"] == "tool":
            items.append({"type": "function_call_output", "call_id": msg["tool_call_id"], "output": msg["content"]})
        elif msg["role"] == "assistant":
            if msg.get("content"):
                items.append(
                    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": msg["content"]}]}
                )
            for call in msg.get("tool_calls", []):
                fn = call["function"]
                items.append(
                    {"type": "function_call", "call_id": call["id"], "name": fn["name"], "arguments": fn["arguments"]}
                )
        else:
            items.append({"type": "message", "role": msg["role"], "content": [{"type": "input_text", "text": msg["content"]}]})
    out: dict = {"model": UPSTREAM_MODEL, "input": items, "stream": bool(body.get("stream")), "store": False}
    if instructions:
        out["instructions"] = instructions
    out["max_output_tokens"] = body["max_tokens"]
    out["tools"] = [dict(t["function"], type="function", strict=False) for t in chat.get("tools", [])]
    if "temperature" in body:
        out["temperature"] = body["temperature"]
    return out


def _chat_body(anthropic: bytes, body: dict, api: str = "chat") -> tuple[bytes, str]:
    made, hand = (
        (dragoman_responses_body, anthropic_to_responses) if api == "responses" else (dragoman_chat_body, anthropic_to_chat)
    )
    try:
        return made(anthropic), "dragoman.translate"
    except Exception:  # not written yet, or its API moved on: the hand mapping is close enough
        return _dump(hand(body)), "hand mapping"


def _dump(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def build_scenarios() -> list[Scenario]:
    made = []
    for name, title, body, api, prefix in (
        ("small", "~2 KB request, JSON answer", _small_request(stream=False), "chat", ""),
        ("cc78k", "78 KB Claude Code first turn, JSON answer", _fixture_request(), "chat", ""),
        ("stream", "~2 KB request, 60-chunk streamed answer", _small_request(stream=True), "chat", ""),
        (
            "responses",
            "~2 KB request, 60-delta streamed answer from an OpenAI Responses upstream",
            _small_request(stream=True, model=ROUTE_RESPONSES),
            "responses",
            "",
        ),
        ("tools", "52 KB Claude Code turn with 6 tool_results, answered by 6 tool calls (JSON)",
         _tools_request(stream=False), "chat", TOOLS_PATH_PREFIX),
        ("tools-stream", "the same, streamed (one chunk per tool call)", _tools_request(stream=True), "chat",
         TOOLS_PATH_PREFIX),
    ):
        anthropic = _dump(body)
        chat, chat_by = _chat_body(anthropic, body, api)
        made.append(Scenario(name, title, anthropic, chat, bool(body.get("stream")), chat_by, api, prefix))
    return made


SCENARIO_NAMES = ("small", "cc78k", "stream", "responses", "tools", "tools-stream")


if __name__ == "__main__":
    for s in build_scenarios():
        print(
            f"{s.name:9} anthropic {len(s.anthropic):7,d} B   {s.api:9} {len(s.chat):7,d} B ({s.chat_by})   {s.title}"
        )
