"""A bare forwarder, the floor of docs/performance.md measured in the same run: uvicorn (uvloop, httptools) +
plain ASGI + an aiohttp client. It translates nothing: the Chat body goes to the upstream unchanged and the
answer comes back unchanged (chunk by chunk when streamed). What Dragoman costs beyond it is translation,
routing and whatever else Dragoman adds; what it costs itself is the price of this HTTP stack.
The request goes to the upstream's origin + the request's own path (/v1/chat/completions, /v1/responses).

Run: python bench/forwarder.py --upstream http://127.0.0.1:18001 --port 18002
"""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

import aiohttp
import uvicorn

_JSON = [(b"content-type", b"application/json")]


class Forwarder:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = f"{parts.scheme}://{parts.netloc}"  # an older --upstream with a path: keep the origin
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict, receive, send) -> None:  # noqa: ANN001
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
                    self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["method"] == "GET":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {"content-type": "application/json", "authorization": "Bearer sk-bench-upstream"}
        async with self.session.post(self.upstream + scope["path"], data=b"".join(chunks), headers=headers) as resp:
            ctype = resp.headers.get("content-type", "application/json").encode()
            if ctype.startswith(b"text/event-stream"):
                await send(
                    {"type": "http.response.start", "status": resp.status, "headers": [(b"content-type", ctype)]}
                )
                async for piece in resp.content.iter_any():
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            else:
                body = await resp.read()
                await send({"type": "http.response.start", "status": resp.status, "headers": _JSON})
                await send({"type": "http.response.body", "body": body})


def main() -> None:
    ap = argparse.ArgumentParser(description="bare uvicorn + aiohttp forwarder")
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18002)
    args = ap.parse_args()
    uvicorn.run(
        Forwarder(args.upstream),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
