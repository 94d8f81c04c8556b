"""An upstream's failure → the Anthropic error the client gets: an error type and a message.

A failure before the first byte is raised (a GatewayError: another attempt or candidate may succeed); after
it, a stream bridge sends the same type and message as an Anthropic `error` event. Upstream error text is
passed through here as is: the relay redacts every error message before it leaves the gateway.
"""

from __future__ import annotations

from dragoman import errors as E
from dragoman.protocols import openai_chat as C
from dragoman.protocols import openai_responses as R

# An upstream stream that ends without saying it is done (Chat: no finish_reason; Responses: no
# response.completed) was cut short: the answer may be incomplete, so it is an error, never a clean stop.
CUT_SHORT = ("api_error", "the upstream closed the stream before the answer was complete")

# OpenAI error codes that say the request itself is at fault: the codes OpenAI answers with an HTTP 400, which
# some upstreams report inside a stream instead (a Responses `response.failed` or `error` event, an error chunk) —
# `context_length_exceeded` (the input is over the model's window) and the image codes of Responses'
# `ResponseError.code`. The same request fails again on a retry or another candidate of the model, so each is the
# 400 the HTTP answer is (`E.status_error_type`): never retried, fallen back from or counted by the breaker, and
# Claude Code hears "invalid request" (for a long prompt: compact), not "overloaded, retry".
_REQUEST_FAULT_CODES = (
    "invalid_prompt", "context_length_exceeded", "string_above_max_length",
    "invalid_image", "invalid_image_format", "invalid_base64_image", "invalid_image_url", "image_too_large",
    "image_too_small", "image_parse_error", "image_content_policy_violation", "invalid_image_mode",
    "image_file_too_large", "unsupported_image_media_type", "empty_image_file", "failed_to_download_image",
    "image_file_not_found",
)
# OpenAI error codes of a failed response → Anthropic error types; anything else is an api_error.
_FAILURE_TYPES = {
    "rate_limit_exceeded": "rate_limit_error",
    "server_is_overloaded": "overloaded_error",
    "slow_down": "overloaded_error",
    **{code: E.status_error_type(400) for code in _REQUEST_FAULT_CODES},
}


# Chat finish reasons that say the generation failed, not that the answer is complete: vLLM's `abort` (the engine
# dropped the request: scale-down, shutdown, sleep), DeepSeek's `insufficient_system_resource`, Mistral's and
# OpenRouter's `error`. A half-written answer ending so is a failure (retried, fallen back from, counted by the
# breaker), never a clean end_turn the client takes as finished.
_FAILED_FINISH = {
    "abort": ("overloaded_error", "the upstream aborted the generation (finish_reason 'abort')"),
    "insufficient_system_resource": (
        "overloaded_error", "the upstream ran out of resources mid-generation (finish_reason "
                            "'insufficient_system_resource')"),
    "error": ("api_error", "the upstream failed mid-generation (finish_reason 'error')"),
}


def chat_finish_failure(finish_reason: str) -> tuple[str, str] | None:
    """(error type, message) when a Chat finish_reason says the generation failed; None when it ended an answer."""
    return _FAILED_FINISH.get(finish_reason)


def chat_error_failure(error: object) -> tuple[str, str]:
    """(error type, message) for an error a Chat upstream put inside its answer: a stream chunk holding `error`, or a
    200 whose body or choice holds one (OpenRouter, when the provider behind it fails after the request was taken).
    Classified as the HTTP error answer it stands for: a numeric `code` is that answer's status (OpenRouter's 429 is
    a rate limit), an OpenAI code string its failure type; anything else is an api_error."""
    if not isinstance(error, dict):
        return "api_error", _scalar_text(error) or _IN_ANSWER
    message = _scalar_text(error.get("message")) or _IN_ANSWER
    code = error.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if type(code) is int and 400 <= code < 600:
        return E.status_error_type(code), message
    return _FAILURE_TYPES.get(code, "api_error") if isinstance(code, str) else "api_error", message


_IN_ANSWER = "the upstream reported an error in its answer"


def error_line_failure(error: object) -> tuple[str, str]:
    """(error type, message) for the data of an SSE `error` event that is not an OpenAI Responses `error` event: what
    llama.cpp's server writes mid-stream as an `error: {...}` line (protocols/sse.py), on every route it serves. The
    upstream's error, classified as a Chat error chunk's is (its numeric code the HTTP status it stands for): flat
    (`{"code": 400, "message": ...}`, llama.cpp) or nested in `error`."""
    if isinstance(error, dict) and isinstance(error.get("error"), (dict, str)):
        error = error["error"]
    return chat_error_failure(error)


def failed_chat_answer(resp: C.ChatResponse) -> E.GatewayError | None:
    """The error a Chat completion answered with a 200 stands for, or None when it is an answer: a body or a choice
    holding `error` (OpenRouter), a finish_reason that says the generation failed, or no choice and no usage (nothing
    was generated, and nothing says why). Raised as the same failure an HTTP error answer or a stream's first event
    is (`E.upstream_failure`), so retries, fallbacks and the breaker see it; never an empty, successful message."""
    failure: tuple[str, str] | None
    if resp.error:
        failure = chat_error_failure(resp.error)
    elif not resp.choices:
        failure = None if resp.usage is not None else ("api_error", "the upstream answered with no choices")
    else:
        choice = resp.choices[0]
        if choice.error:
            failure = chat_error_failure(choice.error)
        else:
            failure = chat_finish_failure(choice.finish_reason) if choice.finish_reason else None
    return E.upstream_failure(failure[0], "upstream", failure[1]) if failure is not None else None


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
    is (`E.upstream_failure`). An `invalid_prompt` or `context_length_exceeded` one names no JSON path: the
    upstream refused the request as translated, and does not say which part."""
    error_type, message = responses_failure(error)
    return E.upstream_failure(error_type, "upstream", message)
