"""Upstream failures → the Anthropic errors a client sees (design §5), as values: each error says its attempt's
`outcome` (error | timeout | rate_limited), decided here where the status or the exception is seen. Never the
upstream's raw text for credential failures, and never a secret: an upstream's message is redacted with the route's
secret before it is cut (`redact_cut`: a key cut in two is one redaction no longer finds), every error the client
raises passes `redaction.redacted` with it too (client.py), every stream `error` event `redact` (the relays),
before a client, a log, a record or a span sees it. What an upstream put in a header is shown escaped
(`header_text`): aiohttp keeps bytes that are not UTF-8 as lone surrogates, which no answer can encode."""

from __future__ import annotations

import asyncio
from urllib.parse import urljoin, urlsplit

import aiohttp
import msgspec

from dragoman import errors as E
from dragoman.protocols import openai_chat as C
from dragoman.protocols.sse import EventTooLarge
from dragoman.redaction import redact_cut

_decode_error = msgspec.json.Decoder(C.ChatError).decode
_MAX_MESSAGE = 1000
_MAX_HOST = 255  # characters of a redirect's host shown (DNS names are at most 253)


class GatewayShuttingDown(aiohttp.ClientError):
    """This upstream exchange was ended by the gateway's shutdown (the drain limit passed): not the upstream's
    fault, and not worth another candidate."""


def error_from_status(
    status: int, body: bytes, headers: dict[str, str], route: str, secret: str | None,
    key_source: str = "the route's api_key_ref",
) -> E.GatewayError:
    """Map an upstream HTTP error answer to the error the client gets, the upstream's text redacted (`secret`: the
    credential the gateway sent) and cut. Its status says its Anthropic error type, which says the rest
    (`E.upstream_failure`, as for a stream's first event); the retry-after headers are kept for every status a
    retry may follow, so a 503's is honoured like a 429's. `key_source` says where the gateway's credential is set
    (zero-config: OPENAI_API_KEY), named when the upstream refuses it."""
    keep = {k.lower(): v for k, v in headers.items() if k.lower() in _RETRY_HEADERS and _header_value(v)}
    return E.upstream_failure(
        E.status_error_type(status), f"upstream for route {route!r}", _upstream_message(body, secret), status=status,
        headers=keep, outcome="timeout" if status == 408 else None, key_source=key_source, keyless=secret is None,
    )


_RETRY_HEADERS = ("retry-after", "retry-after-ms")


def _header_value(value: str) -> bool:
    """Whether an upstream's Retry-After value may be passed on to the client: printable ASCII, as both of its forms
    (seconds, an HTTP date) are. aiohttp hands other bytes over as surrogates, which cannot be encoded into the
    client's answer: that answer would be lost."""
    return len(value) <= 64 and value.isascii() and value.isprintable()


def error_from_redirect(status: int, location: str | None, url: str, route: str) -> E.GatewayError:
    """A 3xx: never followed, so the route's credential goes nowhere but its endpoint; retryable like a 5xx.

    The message names the target's host only: a redirect URL's path and query may carry a signed token."""
    try:
        parts = urlsplit(urljoin(url, location or ""))
        host = header_text(parts.hostname, _MAX_HOST) if parts.hostname else "an unknown host"
        where = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        where = "an invalid URL"
    return E.Overloaded(
        f"upstream for route {route!r} redirected the request to {where} (HTTP {status}); the gateway does not "
        "follow redirects: set the route's endpoint to the URL that answers",
        retryable=True,
    )


def error_from_exception(exc: BaseException, route: str) -> E.GatewayError:
    """Map a transport failure (refused, reset, timed out) before any answer to the error the client gets."""
    where = f"upstream for route {route!r}"
    if isinstance(exc, GatewayShuttingDown):
        return E.Overloaded(str(exc))
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return E.Overloaded(f"{where} timed out", retryable=True, outcome="timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return E.Overloaded(f"{where} is unreachable ({reason})", retryable=True)
    if isinstance(exc, aiohttp.ClientError):
        return E.Overloaded(f"{where} failed: {type(exc).__name__}", retryable=True)
    if isinstance(exc, EventTooLarge):
        return E.Overloaded(f"{where} sent {exc}", retryable=True)
    return E.ApiError(f"{where} failed: {type(exc).__name__}")


def read_failure(exc: BaseException, route: str, answering: bool) -> E.GatewayError:
    """A failure while a stream is read (or its events decoded): before the client has the answer's first bytes,
    a failed call like any other (`error_from_exception`); after, the error that ends the answer, sent as an
    Anthropic `error` event."""
    if not answering:
        return error_from_exception(exc, route)
    if isinstance(exc, GatewayShuttingDown):
        return E.Overloaded(str(exc))
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return E.Overloaded("the upstream stopped sending (idle timeout) before the answer was complete",
                            outcome="timeout")
    if isinstance(exc, EventTooLarge):
        return E.ApiError(f"the upstream sent {exc}")
    return E.ApiError(f"the upstream connection failed mid-stream ({type(exc).__name__})")


def header_text(value: str, limit: int) -> str:
    """An upstream's header value (or a part of one) as an error message may show it: cut to `limit` characters,
    anything but printable ASCII escaped (a lone surrogate, `\\udcff`, is what aiohttp made of a byte 0xff)."""
    value = value[:limit]
    if value.isascii() and value.isprintable():
        return value
    return value.encode("unicode_escape").decode("ascii")


def _upstream_message(body: bytes, secret: str | None) -> str:
    try:
        err = _decode_error(body).error
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        # RecursionError: a body nested deeper than the decoder follows (an unknown field is skipped by recursion
        # too); its text is the message, as for any body that is not the error JSON (protocols/json_depth.py)
        text = body.decode("utf-8", "replace").strip()
        return redact_cut(text, _MAX_MESSAGE, secret) if text else "no details"
    if isinstance(err, C.ChatErrorBody) and err.message:
        return redact_cut(err.message, _MAX_MESSAGE, secret)
    if isinstance(err, str) and err:
        return redact_cut(err, _MAX_MESSAGE, secret)
    return "no details"
