"""The HTTP plumbing the server's endpoints share: reading a body within its limit, noticing a client that left,
writing a JSON answer, an SSE stream or an Anthropic-shaped error (every error body comes from
`errors.error_body`). ASGI only: nothing here knows about routes, keys or the exchange."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncGenerator, Awaitable, Callable, TypeVar

from dragoman import errors as E

log = logging.getLogger("dragoman")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
T = TypeVar("T")

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class ClientGone(Exception):
    """The client disconnected before it got an answer's first byte."""


class MethodNotAllowed(E.GatewayError):
    status = 405
    error_type = "invalid_request_error"

    def __init__(self, method: str) -> None:
        super().__init__(f"method {method} is not allowed here")


def require_method(method: str, expected: str) -> None:
    if method != expected:
        raise MethodNotAllowed(method)


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise E.RequestTooLarge(f"request body exceeds the gateway's limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise E.RequestTooLarge(f"request body exceeds the gateway's limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def stream_answer(send: Send, chunks: AsyncGenerator[bytes, None], request_id: str, gone: asyncio.Future,
                  extra: dict[str, str] | None = None) -> None:
    """Write a streamed answer's bytes as the exchange hands them over, until it ends or the client is `gone`."""
    await send({"type": "http.response.start", "status": 200, "headers": response_headers(_SSE, request_id, extra)})
    try:
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if gone.done():  # the client left after the first byte: stop reading the upstream
                break
    finally:
        await chunks.aclose()  # hands the upstream connection back, however the loop ended
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def unless_gone(work: Awaitable[T], gone: asyncio.Future) -> T:
    """`await work`, cancelled the moment the client disconnects (then ClientGone): a client that leaves before
    the first byte must not keep an upstream call and its connection open until the upstream answers."""
    task = asyncio.current_task()
    assert task is not None
    waiting = True

    def cancel(_: asyncio.Future) -> None:
        if waiting:  # a disconnect noticed after `work` returned is _stream's (or nobody's) business
            task.cancel()

    gone.add_done_callback(cancel)
    try:
        return await work
    except asyncio.CancelledError:
        if gone.done() and not gone.cancelled() and task.uncancel() == 0:
            raise ClientGone() from None
        raise  # cancelled for another reason too (shutdown): that one wins
    finally:
        waiting = False
        gone.remove_done_callback(cancel)


def response_headers(base: list[tuple[bytes, bytes]], request_id: str, extra: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
    headers = base + [(b"request-id", request_id.encode())]
    if extra:
        headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
    return headers


async def send_json(send: Send, status: int, body: bytes, request_id: str, *, extra: dict[str, str] | None = None) -> None:
    headers = response_headers(_JSON, request_id, extra)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, err: E.GatewayError, request_id: str) -> None:
    if err.status >= 429:
        log.warning("%s: %d %s: %s", request_id, err.status, err.error_type, err.message)
    body = E.error_body(err.error_type, err.message)
    extra = dict(err.headers)
    if err.status in (429, 500, 529):
        extra.setdefault("x-should-retry", "true")
    try:
        await send_json(send, err.status, body, request_id, extra=extra)
    except Exception:  # noqa: BLE001 - the response had already started, or the client is gone
        log.debug("could not send error for %s", request_id)
