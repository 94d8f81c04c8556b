"""A fast fake OpenAI Chat Completions upstream for the benchmark.

Raw asyncio Protocol + httptools + uvloop; every answer is precomputed bytes written in one call, so the
upstream costs a few tens of microseconds a request and never becomes what the benchmark measures.

- POST .../chat/completions, non-streamed: one `chat.completion` JSON with `usage` (Content-Length).
- POST .../chat/completions with `"stream": true`: SSE over chunked transfer encoding, written back to back:
  STREAM_CHUNKS content chunks (the first also carries the role), one finish chunk, one usage chunk
  (`choices: []`), then `data: [DONE]`.
- GET /healthz: 200. GET /stats: {"requests": N, "streamed": M} answered so far (so the runner can check that a
  gateway really forwarded every request). Anything else: 404.
Keep-alive, bodies of any size (the request body is scanned only for the stream flag).

Run: python bench/upstream.py --port 18001   (prints "upstream listening on http://HOST:PORT" when ready)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys

import httptools

STREAM_CHUNKS = 60
MODEL = "gpt-4.1"
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


def build_stream_answer(chunks: int = STREAM_CHUNKS) -> bytes:
    """The full HTTP response to a streamed Chat request: one HTTP chunk per SSE event, then the last chunk."""
    head = _response_head("200 OK", "text/event-stream", "cache-control: no-cache\r\ntransfer-encoding: chunked\r\n")
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in build_stream_events(chunks))
    return head + body + b"0\r\n\r\n"


HEALTH = _response_head("200 OK", "text/plain", "content-length: 2\r\n") + b"ok"
NOT_FOUND = _response_head("404 Not Found", "application/json", "content-length: 21\r\n") + b'{"error":"not found"}'


COUNTS = {"requests": 0, "streamed": 0}


def _stats_answer() -> bytes:
    body = _json(COUNTS)
    return _response_head("200 OK", "application/json", f"content-length: {len(body)}\r\n") + body


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection: parse requests with httptools, answer each with precomputed bytes."""

    __slots__ = ("_transport", "_parser", "_url", "_body", "_json_answer", "_stream_answer")

    def __init__(self, json_answer: bytes, stream_answer: bytes) -> None:
        self._json_answer = json_answer
        self._stream_answer = stream_answer
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
        if method == b"POST" and url.split(b"?", 1)[0].endswith(b"/chat/completions"):
            COUNTS["requests"] += 1
            if wants_stream(body):
                COUNTS["streamed"] += 1
                answer = self._stream_answer
            else:
                answer = self._json_answer
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
    json_answer, stream_answer = build_json_answer(), build_stream_answer(chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol(json_answer, stream_answer), host, port, backlog=1024)
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
