"""The upstream HTTP client: pooled aiohttp connections, timeouts, and the guards on what an upstream answers.

Transport only: it is given plain values (a Target: URL, headers, timeouts, limits, the secret to redact) and
bytes to POST, and hands back bytes — a whole JSON answer, or a stream read with `async for`. Every failure
leaves as a GatewayError whose `outcome` was decided where it was seen (errors.py), its text redacted.

aiohttp rather than httpx: on this path httpx costs 3–4× the CPU and collapses under concurrency
(docs/performance.md). What an upstream answers is checked before anyone reads it: no redirect is followed
(aiohttp strips only Authorization on a cross-origin redirect: x-api-key and api-key would go along), the
content type must be what was asked for, and a JSON answer is read up to `Target.max_answer` bytes."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from dragoman import errors as E
from dragoman.redaction import redacted
from dragoman.upstreams.errors import (
    error_from_exception, error_from_redirect, error_from_status, header_text, read_failure,
)

# The largest non-streamed answer read from an upstream (decompressed): a 128k-token answer is under 1 MB of JSON.
MAX_ANSWER_BYTES = 16 << 20
_MAX_ERROR_BYTES = 64 << 10  # of an error answer's body: only its message is used, cut at 1000 characters
_MAX_CONTENT_TYPE = 200  # characters of an unwanted content type shown


class Target:
    """Where one route's requests go, as plain values; built once per route, not per request."""

    __slots__ = ("route", "url", "host", "headers", "timeout", "secret", "first_byte", "idle", "max_answer",
                 "key_source")

    def __init__(
        self,
        route: str,
        url: str,
        headers: dict[str, str],
        *,
        connect: float,
        first_byte: float,
        idle: float,
        secret: str | None = None,
        max_answer: int = MAX_ANSWER_BYTES,
        key_source: str = "the route's api_key_ref",
    ) -> None:
        self.route = route  # the route's name, for messages
        self.url = url
        self.host = urlsplit(url).hostname or ""  # for records: never the URL's credentials
        self.headers = headers
        self.secret = secret  # the credential in `headers`, redacted from every error text
        self.key_source = key_source  # where that credential is set, named when the upstream refuses it
        self.first_byte = first_byte
        self.idle = idle
        self.max_answer = max_answer
        # aiohttp re-arms its socket read timer on every read anyway, so it keeps our deadlines at no extra
        # cost: first_byte until the answer's head (and a JSON answer's body); a stream then switches to idle
        # (UpstreamStream). An asyncio.timeout() per request cost ~10% of the gateway's CPU (bench/RESULTS.md).
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, connect=connect, sock_read=first_byte)


class UpstreamStream:
    """A streamed answer's body: `async for data in stream` yields each read as it arrives, and a failed read
    raises a GatewayError (`failure`). `close()` hands the connection back; call it on every way out."""

    __slots__ = ("_resp", "_read", "_route", "answering")

    def __init__(self, resp: aiohttp.ClientResponse, target: Target) -> None:
        self._resp = resp
        self._read = resp.content.readany
        self._route = target.route
        # Set by the reader once the client has the answer's first bytes: a failure is then phrased as the end of
        # a broken answer, not as a failed call another candidate could take over.
        self.answering = False
        # From now on, silence between reads may last `idle` seconds (instead of first_byte).
        connection = resp.connection
        if connection is not None and connection.protocol is not None:
            connection.protocol.read_timeout = target.idle

    def __aiter__(self) -> UpstreamStream:
        return self

    async def __anext__(self) -> bytes:
        # In place of aiohttp's own iterator over readany, not around it: no extra layer per chunk.
        try:
            data = await self._read()
        except Exception as exc:  # noqa: BLE001 - every transport failure is an error value
            raise self.failure(exc) from None
        if not data:
            raise StopAsyncIteration
        return data

    def failure(self, exc: BaseException) -> E.GatewayError:
        """What `exc`, met reading this stream or decoding its events (an oversized event), means."""
        return read_failure(exc, self._route, self.answering)

    def close(self) -> None:
        self._resp.release()


class UpstreamClient:
    """Sends upstream requests; a non-2xx answer or a transport failure raises a GatewayError (redacted)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def answer(self, target: Target, body: bytes, headers: dict[str, str]) -> bytes:
        """POST the body; the whole JSON answer (no read may wait longer than first_byte)."""
        try:
            resp = await self._post(target, body, headers, stream=False)
            try:
                raw = await _read_at_most(resp, target.max_answer)
            except Exception as exc:  # noqa: BLE001
                raise error_from_exception(exc, target.route) from None
            finally:
                resp.release()
            if len(raw) > target.max_answer:
                raise E.Overloaded(
                    f"upstream for route {target.route!r} sent an answer larger than the gateway's limit of "
                    f"{target.max_answer >> 20} MiB", retryable=True,
                )
            return raw
        except E.GatewayError as err:
            raise redacted(err, target.secret) from None

    async def stream(self, target: Target, body: bytes, headers: dict[str, str]) -> UpstreamStream:
        """POST the body; the answer's stream once its status is 2xx and its content type text/event-stream."""
        try:
            return UpstreamStream(await self._post(target, body, headers, stream=True), target)
        except E.GatewayError as err:
            raise redacted(err, target.secret) from None

    async def _post(
        self, target: Target, body: bytes, headers: dict[str, str], *, stream: bool
    ) -> aiohttp.ClientResponse:
        try:
            resp = await self._session.post(
                target.url, data=body, headers=headers, timeout=target.timeout, allow_redirects=False
            )
        except Exception as exc:  # noqa: BLE001 - every transport failure maps to an Anthropic error
            raise error_from_exception(exc, target.route) from None
        if resp.status >= 300:
            raise await _error_answer(resp, target)
        if not _content_type_ok(resp, stream):
            resp.release()
            wanted = "text/event-stream" if stream else "JSON"
            raise E.Overloaded(
                f"upstream for route {target.route!r} answered with content type "
                f"{header_text(resp.content_type, _MAX_CONTENT_TYPE)}, not {wanted}",
                retryable=True, upstream_status=resp.status,
            )
        return resp


async def _error_answer(resp: aiohttp.ClientResponse, target: Target) -> E.GatewayError:
    """The error a 3xx, 4xx or 5xx answer is; an error body is read (bounded) for the upstream's message."""
    try:
        if resp.status < 400:
            err = error_from_redirect(resp.status, resp.headers.get("Location"), target.url, target.route)
        else:
            try:
                raw = await _read_at_most(resp, _MAX_ERROR_BYTES)
            except Exception:  # noqa: BLE001 - the status alone still says what happened
                raw = b""
            err = error_from_status(resp.status, raw, dict(resp.headers), target.route, target.secret,
                                    target.key_source)
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
