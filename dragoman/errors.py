"""Errors as values: each carries the HTTP status and Anthropic error type the server answers with, and, when it
is an upstream's failure, the outcome of that attempt as its audit record says it (decided where the failure was
seen: a 429, a transport timeout; never read back from the message)."""

from __future__ import annotations

from typing import Callable, TypeVar

import msgspec

from dragoman.protocols import anthropic as A
from dragoman.protocols import json_depth

_encode = msgspec.json.encode

T = TypeVar("T")


class GatewayError(Exception):
    """An error a client should see, in Anthropic's shape: status, error type and an actionable message."""

    status: int = 500
    error_type: str = "api_error"
    outcome: str = "error"  # an upstream attempt that ended in this error: error | timeout | rate_limited
    # A retryable failure another try of the same candidate may not have (a 5xx, a 429): False when asking the
    # same upstream again is refused the same way (its credential), so only the next candidate is worth a try.
    retry_here: bool = True

    def __init__(
        self,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        retryable: bool = False,
        upstream_status: int | None = None,
        outcome: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.upstream_status = upstream_status  # what the upstream answered, when this error is its answer
        # True for upstream failures another attempt or candidate may not have (429, 5xx, refused, timed out).
        self.retryable = retryable
        if outcome is not None:
            self.outcome = outcome


def error_body(error_type: str, message: str) -> bytes:
    """Anthropic's error JSON, {"type": "error", "error": {"type": ..., "message": ...}}: the body of every error
    answer and the data of a stream's `error` event. Never fails on the message's text: one holding a lone
    surrogate (a header's non-UTF-8 bytes, as aiohttp keeps them) has it escaped, or the answer would be lost."""
    try:
        return _encode(A.Error(error=A.ErrorBody(type=error_type, message=message)))
    except UnicodeEncodeError:
        return _encode(A.Error(error=A.ErrorBody(type=error_type, message=encodable(message))))


def encodable(text: str) -> str:
    """`text` with what UTF-8 cannot encode (lone surrogates) escaped (`\\udcff`)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class InvalidRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status = 401
    error_type = "authentication_error"


class BillingError(GatewayError):
    """A budget's hard cap is reached (govern/budgets.py): Anthropic's billing_error."""

    status = 402
    error_type = "billing_error"


class PermissionDenied(GatewayError):
    status = 403
    error_type = "permission_error"


class NotFound(GatewayError):
    status = 404
    error_type = "not_found_error"


class RequestTooLarge(GatewayError):
    status = 413
    error_type = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    error_type = "rate_limit_error"
    outcome = "rate_limited"


class ApiError(GatewayError):
    status = 500
    error_type = "api_error"


class Overloaded(GatewayError):
    status = 529
    error_type = "overloaded_error"


class UpstreamRefused(GatewayError):
    """The upstream refused the gateway, not the request: its own credential or account (401, 402, 403), or the
    model or deployment the route names (404, `ModelMissing`). The route cannot answer as configured: the next
    candidate is tried at once (this one would refuse again), its breaker counts a failure, and a client left with
    it gets a 502 — its request was fine, the gateway's upstream was not."""

    status = 502
    error_type = "api_error"
    retry_here = False


class ModelMissing(UpstreamRefused):
    """An upstream's 404: the route's model or deployment is missing there (the candidate loop makes it the
    client's 404 when the model name sent was the client's own)."""


# Anthropic's error types of a request's own fault (a 400 or a 413): returned as is, never retried elsewhere.
_REQUEST_FAULTS: dict[str, type[GatewayError]] = {
    "invalid_request_error": InvalidRequest, "request_too_large": RequestTooLarge,
}
# The upstream refused the gateway's credential or account: never the upstream's text (it may quote the key).
_GATEWAY_REFUSED = frozenset(("authentication_error", "permission_error", "billing_error"))


_STATUS_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
}
# Transient, though 4xx: 408 (the upstream tired of waiting for the request) and 409 (a conflict, a lock timeout).
# OpenAI's and Anthropic's SDKs retry both; here they are retried and fallen back from like a 5xx.
_TRANSIENT_4XX = (408, 409)


def status_error_type(status: int) -> str:
    """The Anthropic error type an upstream's HTTP error status means: the status of an error answer, or the numeric
    `code` of an error a relay (OpenRouter) reports inside a 200 — the same failure either way."""
    known = _STATUS_TYPES.get(status)
    if known is not None:
        return known
    if status >= 500 or status in _TRANSIENT_4XX:
        return "api_error"
    return "invalid_request_error"


def upstream_failure(
    error_type: str, where: str, detail: str, *, status: int | None = None, headers: dict[str, str] | None = None,
    outcome: str | None = None, key_source: str = "the route's api_key_ref", keyless: bool = False,
) -> GatewayError:
    """The error an upstream's failure is, by its Anthropic error type — the one classification for an HTTP error
    answer (`status`), a failed Responses answer and a stream's first `error` event, so the same refusal is the
    same error (retried or not, counted by the breaker or not, the same status) however it arrived. `where` names
    the upstream, `detail` is its message, already redacted; `headers` are its retry-after ones. `key_source` names
    where the gateway's credential is set and `keyless` says none was sent: a refusal then says what to set."""
    http = f" (HTTP {status})" if status else ""
    if error_type == "rate_limit_error":
        return RateLimited(f"{where} is rate limited: {detail}", headers=headers, retryable=True)
    fault = _REQUEST_FAULTS.get(error_type)
    if fault is not None:
        return fault(f"{where} rejected the request{http}: {detail}")
    if error_type in _GATEWAY_REFUSED:
        if keyless:  # zero-config without OPENAI_API_KEY, or a route with no api_key_ref: one setting away
            return UpstreamRefused(f"{where} needs an API key and the gateway sent none{http}: set {key_source}, "
                                   "then restart the gateway; the client's key is not the problem", retryable=True)
        return UpstreamRefused(
            f"{where} refused the gateway's own upstream credential{http}, {error_type}: {key_source} was rejected "
            "or may not use this model; the client's key is not the problem",
            retryable=True,
        )
    if error_type == "not_found_error":
        return ModelMissing(f"{where} does not have the model or deployment it was sent{http}: {detail}",
                            retryable=True)
    return Overloaded(f"{where} failed{http}: {detail}", headers=headers, retryable=True, outcome=outcome)


def decode_body(decode: Callable[[bytes], T], body: bytes) -> T:
    """A client's request body decoded, or the 400 it earns; msgspec's message says where (`... - at $.messages[0]`)."""
    try:
        return json_depth.decode(decode, body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    except json_depth.TooDeep as exc:  # deeper than the decoder can follow: a 400, never a RecursionError's 500
        raise InvalidRequest(str(exc)) from None


class ConfigError(Exception):
    """A config file problem, located: the message names the file and line."""


def quoted(value: object, limit: int = 60) -> str:
    """`repr(value)` cut to `limit` characters: how an error message quotes a refused value (a client may send
    megabytes of it)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
