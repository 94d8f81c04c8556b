"""A fast fake OpenAI upstream (Chat Completions and Responses) for the benchmark.

Raw asyncio Protocol + httptools + uvloop; every answer is precomputed bytes written in one call, so the
upstream costs a few tens of microseconds a request and never becomes what the benchmark measures.

- POST .../chat/completions, non-streamed: one `chat.completion` JSON with `usage` (Content-Length).
- POST .../chat/completions with `"stream": true`: SSE over chunked transfer encoding, written back to back:
  STREAM_CHUNKS content chunks (the first also carries the role), one finish chunk, one usage chunk
  (`choices: []`), then `data: [DONE]`.
- POST .../responses, non-streamed: one `response` JSON (a message with the same text, usage).
- POST .../responses with `"stream": true`: OpenAI's Responses SSE (`event: <type>` + `data: {...}` with
  `sequence_number`, no `[DONE]`), chunked, back to back: response.created, response.in_progress,
  output_item.added (message), content_part.added, STREAM_CHUNKS response.output_text.delta (the same pieces
  as the Chat stream: "Hi", " tok1", ...), output_text.done, content_part.done, output_item.done,
  response.completed (with the full output and usage).
- POST /tools/v1/chat/completions (the `tools` scenarios): the same, but the answer is the tool calls of the
  Claude Code fixture TOOLS_FIXTURE's last assistant turn (6 `Read` calls, their ids, names and inputs), so the
  request's own tool_results answer them (the correctness loop's schema checks and next-turn join both run);
  streamed: one chunk per call (id, name, whole arguments), a `tool_calls` finish chunk, usage, `[DONE]`.
- GET /healthz: 200. GET /stats: {"requests": N, "streamed": M, "responses": R} answered so far (so the
  runner can check that a gateway really forwarded every request). Anything else: 404.
Keep-alive, bodies of any size (the request body is scanned only for the stream flag).

Run: python bench/upstream.py --port 18001   (prints "upstream listening on http://HOST:PORT" when ready)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path

import httptools

STREAM_CHUNKS = 60
MODEL = "gpt-4.1"
TOOLS_FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/claude_code/claude_code_2.1.332_after_parallel_reads.json"
TOOLS_PREFIX = b"/tools/"  # path prefix of the tool-calling answers
ANSWER_TEXT = "Hi! How can I help you with your project today? I can read files, run commands and edit code."

# After a `"stream"` key: optional spaces, a colon, optional spaces, `true`. A regex over the whole body costs
# ~0.5 ms for 78 KB (no literal prefix to skip ahead with); bytes.find jumps between candidates in ~30 µs.
_AFTER_STREAM_KEY = re.compile(rb"\s*:\s*true")


def wants_stream(body: bytes) -> bool:
    """Whether the JSON body has `"stream": true` (not a quoted `\\"stream\\"` inside some string)."""
    at = body.find(b'"stream"')
    while at >= 0:
        if (at == 0 or body[at - 1] != 0x5C) and _AFTER_STREAM_KEY.match(body, at + 8):
            return True
        at = body.find(b'"stream"', at + 8)
    return False


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _response_head(status: str, content_type: str, extra: str) -> bytes:
    return f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}\r\n".encode()


def build_json_answer() -> bytes:
    """The full HTTP response to a non-streamed Chat request."""
    body = _json(
        {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion",
            "created": 1764000000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER_TEXT, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1234, "completion_tokens": 25, "total_tokens": 1259},
        }
    )
    head = _response_head("200 OK", "application/json", f"content-length: {len(body)}\r\n")
    return head + body


def build_stream_events(chunks: int = STREAM_CHUNKS) -> list[bytes]:
    """The SSE events of a streamed Chat answer, each `data: ...\\n\\n`."""
    base = {"id": "chatcmpl-bench0002", "object": "chat.completion.chunk", "created": 1764000000, "model": MODEL}
    events = []
    for i in range(chunks):
        delta = {"role": "assistant", "content": "Hi"} if i == 0 else {"content": f" tok{i}"}
        chunk = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])
        events.append(b"data: " + _json(chunk) + b"\n\n")
    finish = dict(base, choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
    events.append(b"data: " + _json(finish) + b"\n\n")
    usage = dict(
        base, choices=[], usage={"prompt_tokens": 1234, "completion_tokens": chunks, "total_tokens": 1234 + chunks}
    )
    events.append(b"data: " + _json(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def fixture_tool_calls() -> list[dict]:
    """The tool_use blocks of TOOLS_FIXTURE's last assistant turn, as Chat tool calls."""
    messages = json.loads(TOOLS_FIXTURE.read_bytes())["messages"]
    last = next(m for m in reversed(messages) if m["role"] == "assistant")
    return [
        {"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": _json(b["input"]).decode()}}
        for b in last["content"]
        if b["type"] == "tool_use"
    ]


def build_tool_json_answer() -> bytes:
    """The full HTTP response to a non-streamed Chat request on the tools path: the fixture's tool calls."""
    message = {"role": "assistant", "content": None, "tool_calls": fixture_tool_calls(), "refusal": None}
    body = _json(
        {
            "id": "chatcmpl-bench0003",
            "object": "chat.completion",
            "created": 1764000000,
            "model": MODEL,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 14000, "completion_tokens": 240, "total_tokens": 14240},
        }
    )
    return _response_head("200 OK", "application/json", f"content-length: {len(body)}\r\n") + body


def build_tool_stream_answer() -> bytes:
    """Streamed: one chunk per tool call (whole arguments), a tool_calls finish chunk, usage, [DONE]."""
    base = {"id": "chatcmpl-bench0004", "object": "chat.completion.chunk", "created": 1764000000, "model": MODEL}
    events = []
    for i, call in enumerate(fixture_tool_calls()):
        delta: dict = {"tool_calls": [dict(call, index=i)]}
        if i == 0:
            delta = {"role": "assistant", "content": None, **delta}
        chunk = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])
        events.append(b"data: " + _json(chunk) + b"\n\n")
    finish = dict(base, choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}])
    usage = dict(base, choices=[], usage={"prompt_tokens": 14000, "completion_tokens": 240, "total_tokens": 14240})
    events += [b"data: " + _json(finish) + b"\n\n", b"data: " + _json(usage) + b"\n\n", b"data: [DONE]\n\n"]
    return _chunked(events)


def stream_pieces(chunks: int = STREAM_CHUNKS) -> list[str]:
    """The text pieces of a streamed answer (Chat and Responses alike): "Hi", " tok1", ... " tok{chunks-1}"."""
    return ["Hi"] + [f" tok{i}" for i in range(1, chunks)]


def _chunked(events: list[bytes]) -> bytes:
    """SSE events as a chunked HTTP response: one HTTP chunk per event, then the last chunk."""
    head = _response_head("200 OK", "text/event-stream", "cache-control: no-cache\r\ntransfer-encoding: chunked\r\n")
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)
    return head + body + b"0\r\n\r\n"


def build_stream_answer(chunks: int = STREAM_CHUNKS) -> bytes:
    """The full HTTP response to a streamed Chat request."""
    return _chunked(build_stream_events(chunks))


# ---- OpenAI Responses ---------------------------------------------------------------------------------------
RESPONSE_ID = "resp_bench0001"
MESSAGE_ID = "msg_bench0001"


def _responses_usage(output_tokens: int) -> dict:
    return {
        "input_tokens": 1234,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 1234 + output_tokens,
    }


def _response_object(status: str, text: str | None, output_tokens: int) -> dict:
    """The `response` object as OpenAI sends it (in_progress and empty, or completed with output and usage)."""
    done = status == "completed"
    output = []
    if done:
        output = [
            {
                "id": MESSAGE_ID,
                "type": "message",
                "status": "completed",
                "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
                "role": "assistant",
            }
        ]
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": 1764000000,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": 1024,
        "model": MODEL,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 0.2,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _responses_usage(output_tokens) if done else None,
        "user": None,
        "metadata": {},
    }


def build_responses_json_answer() -> bytes:
    """The full HTTP response to a non-streamed Responses request."""
    body = _json(_response_object("completed", ANSWER_TEXT, 25))
    return _response_head("200 OK", "application/json", f"content-length: {len(body)}\r\n") + body


def build_responses_events(chunks: int = STREAM_CHUNKS) -> list[bytes]:
    """The SSE events of a streamed Responses answer with one text message of `chunks` deltas."""
    pieces = stream_pieces(chunks)
    text = "".join(pieces)
    where = {"item_id": MESSAGE_ID, "output_index": 0, "content_index": 0}
    empty_part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    full_part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    item = {"id": MESSAGE_ID, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
    events: list[dict] = [
        {"type": "response.created", "response": _response_object("in_progress", None, 0)},
        {"type": "response.in_progress", "response": _response_object("in_progress", None, 0)},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": empty_part},
    ]
    events += [
        {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": [], "obfuscation": "x" * 8}
        for piece in pieces
    ]
    events += [
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": full_part},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {**item, "status": "completed", "content": [full_part]},
        },
        {"type": "response.completed", "response": _response_object("completed", text, chunks)},
    ]
    return [
        b"event: %s\ndata: %s\n\n" % (ev["type"].encode(), _json({**ev, "sequence_number": n}))
        for n, ev in enumerate(events)
    ]


def build_responses_stream_answer(chunks: int = STREAM_CHUNKS) -> bytes:
    """The full HTTP response to a streamed Responses request."""
    return _chunked(build_responses_events(chunks))


HEALTH = _response_head("200 OK", "text/plain", "content-length: 2\r\n") + b"ok"
NOT_FOUND = _response_head("404 Not Found", "application/json", "content-length: 21\r\n") + b'{"error":"not found"}'


COUNTS = {"requests": 0, "streamed": 0, "responses": 0}


def _stats_answer() -> bytes:
    body = _json(COUNTS)
    return _response_head("200 OK", "application/json", f"content-length: {len(body)}\r\n") + body


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection: parse requests with httptools, answer each with precomputed bytes."""

    __slots__ = ("_transport", "_parser", "_url", "_body", "_answers")

    def __init__(self, answers: dict[tuple[bytes, bool], bytes]) -> None:
        self._answers = answers  # (API path suffix, /tools/... on the tools path; streamed) -> the response
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._transport.close()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        url, self._url = self._url, b""
        body = b"".join(self._body)
        self._body.clear()
        path = url.split(b"?", 1)[0]
        api = b"/chat/completions" if path.endswith(b"/chat/completions") else path[-10:]
        if method == b"POST" and api in (b"/chat/completions", b"/responses"):
            COUNTS["requests"] += 1
            stream = wants_stream(body)
            if stream:
                COUNTS["streamed"] += 1
            if api == b"/responses":
                COUNTS["responses"] += 1
            answer = self._answers[b"/tools" + api if path.startswith(TOOLS_PREFIX) else api, stream]
        elif url.startswith(b"/stats"):
            answer = _stats_answer()
        elif url.startswith(b"/healthz"):
            answer = HEALTH
        else:
            answer = NOT_FOUND
        self._transport.write(answer)
        if not self._parser.should_keep_alive():
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve(host: str, port: int, chunks: int) -> None:
    answers = {
        (b"/chat/completions", False): build_json_answer(),
        (b"/chat/completions", True): build_stream_answer(chunks),
        (b"/responses", False): build_responses_json_answer(),
        (b"/responses", True): build_responses_stream_answer(chunks),
        (b"/tools/chat/completions", False): build_tool_json_answer(),
        (b"/tools/chat/completions", True): build_tool_stream_answer(),
    }
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol(answers), host, port, backlog=1024)
    print(f"upstream listening on http://{host}:{port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18001)
    ap.add_argument("--chunks", type=int, default=STREAM_CHUNKS, help="content chunks per streamed answer")
    args = ap.parse_args()
    import uvloop

    uvloop.run(serve(args.host, args.port, args.chunks))


if __name__ == "__main__":
    main()
