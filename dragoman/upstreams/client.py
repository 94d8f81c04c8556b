"""The upstream HTTP client: pooled aiohttp connections, per-provider credentials, timeouts, error capture.

aiohttp rather than httpx: on this path httpx costs 3–4× the CPU and collapses under concurrency
(shared/performance.md). What an upstream answers is checked before anyone reads it: no redirect is followed
(aiohttp strips only Authorization on a cross-origin redirect: x-api-key and api-key would go along), the
content type must be what was asked for, and a JSON answer is read up to MAX_ANSWER_BYTES."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from dragoman import errors as E
from dragoman.config.model import Route
from dragoman.upstreams.errors import error_from_exception, error_from_redirect, error_from_status

ANTHROPIC_VERSION = "2023-06-01"
# The largest non-streamed answer read from an upstream (decompressed): a 128k-token answer is under 1 MB of JSON.
MAX_ANSWER_BYTES = 16 << 20
_MAX_ERROR_BYTES = 64 << 10  # of an error answer's body: only its message is used, cut at 1000 characters


class UpstreamTarget:
    """Where one route's requests go: URL, headers and timeouts, built once per route, not per request."""

    __slots__ = ("route", "url", "host", "headers", "timeout", "secret", "first_byte", "idle")

    def __init__(self, route: Route) -> None:
        self.route = route.name
        self.url = route.endpoint
        self.host = urlsplit(route.endpoint).hostname or ""  # for records: never the URL's credentials
        self.secret = route.api_key
        self.headers = _headers(route)
        t = route.timeouts
        self.first_byte = t.first_byte
        self.idle = t.idle
        # aiohttp re-arms its socket read timer on every read anyway, so it keeps our deadlines at no extra
        # cost: first_byte until the answer's head (and a JSON answer's body); a stream then switches to idle
        # (`stream_idle`). An asyncio.timeout() per request cost ~10% of the gateway's CPU (bench/RESULTS.md).
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=t.connect, connect=t.connect, sock_read=t.first_byte)


def _headers(route: Route) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    key = route.api_key
    if route.provider == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if key:
            headers["x-api-key"] = key
    elif route.provider == "azure_openai":
        if key:
            headers["api-key"] = key
    elif key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


class UpstreamClient:
    """Sends upstream requests; a non-2xx answer or a transport failure raises a GatewayError."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def post(
        self, target: UpstreamTarget, body: bytes, headers: dict[str, str] | None = None, *, stream: bool = False
    ) -> aiohttp.ClientResponse:
        """POST the body; return the response once its status is 2xx and its content type JSON (or, `stream`,
        text/event-stream); the caller reads or streams it."""
        try:
            resp = await self._session.post(
                target.url, data=body, headers=headers or target.headers, timeout=target.timeout, allow_redirects=False
            )
        except Exception as exc:  # noqa: BLE001 - every transport failure maps to an Anthropic error
            raise error_from_exception(exc, target.route) from None
        if resp.status >= 300:
            raise await _error_answer(resp, target)
        if not _content_type_ok(resp, stream):
            resp.release()
            wanted = "text/event-stream" if stream else "JSON"
            raise E.Overloaded(
                f"upstream for route {target.route!r} answered with content type {resp.content_type}, not {wanted}",
                retryable=True, upstream_status=resp.status,
            )
        return resp

    async def read(self, target: UpstreamTarget, resp: aiohttp.ClientResponse) -> bytes:
        """The whole body of a non-streamed answer (no read may wait longer than first_byte)."""
        try:
            raw = await _read_at_most(resp, MAX_ANSWER_BYTES)
        except Exception as exc:  # noqa: BLE001
            raise error_from_exception(exc, target.route) from None
        finally:
            resp.release()
        if len(raw) > MAX_ANSWER_BYTES:
            raise E.Overloaded(
                f"upstream for route {target.route!r} sent an answer larger than the gateway's limit of "
                f"{MAX_ANSWER_BYTES >> 20} MiB", retryable=True,
            )
        return raw


async def _error_answer(resp: aiohttp.ClientResponse, target: UpstreamTarget) -> E.GatewayError:
    """The error a 3xx, 4xx or 5xx answer is; an error body is read (bounded) for the upstream's message."""
    try:
        if resp.status < 400:
            err = error_from_redirect(resp.status, resp.headers.get("Location"), target.url, target.route)
        else:
            try:
                raw = await _read_at_most(resp, _MAX_ERROR_BYTES)
            except Exception:  # noqa: BLE001 - the status alone still says what happened
                raw = b""
            err = error_from_status(resp.status, raw, dict(resp.headers), target.route)
    finally:
        resp.release()
    err.upstream_status = resp.status
    return err


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or its first bytes once they exceed `limit` (the caller compares the length)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)


def _content_type_ok(resp: aiohttp.ClientResponse, stream: bool) -> bool:
    # No content type at all is let through: the body is then judged by its decoding.
    if aiohttp.hdrs.CONTENT_TYPE not in resp.headers:
        return True
    mime = resp.content_type
    if stream:
        return mime == "text/event-stream"
    return mime == "application/json" or mime.endswith("+json")


def stream_idle(resp: aiohttp.ClientResponse, idle: float) -> None:
    """From now on, silence between a stream's reads may last `idle` seconds (instead of first_byte)."""
    connection = resp.connection
    if connection is not None and connection.protocol is not None:
        connection.protocol.read_timeout = idle
