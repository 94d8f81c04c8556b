"""An upstream's failure → the Anthropic error the client gets: an error type and a message.

A failure before the first byte is raised (a GatewayError: another attempt or candidate may succeed); after
it, a stream bridge sends the same type and message as an Anthropic `error` event. Upstream error text is
passed through here as is: the relay redacts every error message before it leaves the gateway.
"""

from __future__ import annotations

from dragoman import errors as E
from dragoman.protocols import openai_responses as R

# An upstream stream that ends without saying it is done (Chat: no finish_reason; Responses: no
# response.completed) was cut short: the answer may be incomplete, so it is an error, never a clean stop.
CUT_SHORT = ("api_error", "the upstream closed the stream before the answer was complete")

# OpenAI error codes of a failed response → Anthropic error types; anything else is an api_error.
_FAILURE_TYPES = {
    "rate_limit_exceeded": "rate_limit_error",
    "server_is_overloaded": "overloaded_error",
    "slow_down": "overloaded_error",
    "invalid_prompt": "invalid_request_error",
}


def chat_chunk_failure(error: object) -> tuple[str, str]:
    """(error type, message) for a Chat chunk holding `error` (some servers report a failure mid-stream so)."""
    message = _scalar_text(error.get("message")) if isinstance(error, dict) else _scalar_text(error)
    return "api_error", message or "the upstream reported an error mid-stream"


def responses_failure(error: R.ResponseError | None) -> tuple[str, str]:
    """(error type, message) for a failed response or an `error` event."""
    code = _scalar_text(error.code) if error is not None else None  # `code` is untyped (`_scalar_text`)
    message = (error.message if error is not None else None) or "the upstream failed to complete the response"
    error_type = _FAILURE_TYPES.get(code, "api_error") if code is not None else "api_error"
    return error_type, f"{message} ({code})" if code else message


def error_event_failure(ev: R.ErrorEvent) -> tuple[str, str]:
    """(error type, message) for a Responses `error` event, flat (OpenAI) or nested in `error` (other servers)."""
    if isinstance(ev.error, dict):
        nested = ev.error
        code = _scalar_text(nested.get("code")) or _scalar_text(nested.get("type"))
        return responses_failure(R.ResponseError(code=code, message=_scalar_text(nested.get("message"))))
    return responses_failure(R.ResponseError(code=ev.code, message=ev.message))


def _scalar_text(value: object) -> str | None:
    """A field of a nested `error` object, which nothing types: other servers have put objects and numbers where
    OpenAI puts a string, and the message is redacted and sent on as text. A number or a boolean is its text; an
    object or a list says nothing the client can use (None: the default message)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return str(value)
    return None


def failed_response_error(error: R.ResponseError | None) -> E.GatewayError:
    """The error a failed (non-streamed) response raises: classified as the same failure in a stream's first event
    is (`E.upstream_failure`). An `invalid_prompt` one names no JSON path: the upstream refused the request as
    translated, and does not say which part."""
    error_type, message = responses_failure(error)
    return E.upstream_failure(error_type, "upstream", message)
