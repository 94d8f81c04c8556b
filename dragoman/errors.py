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
