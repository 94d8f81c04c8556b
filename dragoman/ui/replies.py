"""Writing the dashboard's answers: every /ui response carries the same security headers, errors included."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from dragoman import errors as E
from dragoman.http_io import MethodNotAllowed

__all__ = ["MethodNotAllowed", "redirect", "send_body", "send_error", "send_json"]

Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# Nothing inline, nothing from elsewhere: scripts, styles, fetches and forms only from the gateway itself.
CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       b"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY: Headers = [
    (b"content-security-policy", CSP),
    (b"x-content-type-options", b"nosniff"),
    # Not no-referrer: under it a browser sends `Origin: null` on the page's own POSTs (Fetch spec, "append a
    # request Origin header"), which the request guard must refuse. same-origin sends nothing to other sites.
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
NO_STORE: Headers = [(b"cache-control", b"no-store")]


async def send_body(send: Send, status: int, body: bytes, content_type: bytes, request_id: str,
                    extra: Headers | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               (b"request-id", request_id.encode()), *SECURITY, *(extra or NO_STORE)]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, body: bytes, request_id: str, extra: Headers | None = None) -> None:
    await send_body(send, status, body, b"application/json", request_id, extra)


async def send_error(send: Send, err: E.GatewayError, request_id: str) -> None:
    await send_json(send, err.status, E.error_body(err.error_type, err.message), request_id)


async def redirect(send: Send, location: str, request_id: str, extra: Headers | None = None) -> None:
    headers = [(b"location", location.encode()), *NO_STORE, *(extra or [])]
    await send_body(send, 303, b"", b"text/plain", request_id, headers)
