"""OpenAI Responses response → Anthropic Messages response (design §4). Pure.

The helpers here (item text, stop reason, usage, failures) are the rules the stream bridge applies too, so
a streamed answer reassembles to exactly the message this module builds.
"""

from __future__ import annotations

from dragoman import errors as E
from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_responses as R
from dragoman.translate.chat.response import tool_use_id
from dragoman.translate.output_budget import cut_message
from dragoman.translate.reasoning_signature import seal_reasoning
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_arguments import parse_arguments

SUMMARY_SEPARATOR = "\n\n"  # between the parts of a reasoning summary, in one thinking block

# OpenAI error codes of a failed response → Anthropic error types; anything else is an api_error.
_FAILURE_TYPES = {
    "rate_limit_exceeded": "rate_limit_error",
    "server_is_overloaded": "overloaded_error",
    "slow_down": "overloaded_error",
    "invalid_prompt": "invalid_request_error",
}


def translate_response(resp: R.Response, ctx: RequestContext, reasoning_key: bytes) -> A.MessagesResponse:
    """The Anthropic message for a non-streamed Responses answer; a failed response raises a GatewayError."""
    if resp.status == "failed":
        raise _failure_error(resp.error)
    blocks: list[A.OutBlock] = []
    has_tools = refusal = False
    for index, item in enumerate(resp.output):
        kind = item.type
        if kind == "reasoning":
            blocks.append(A.ThinkingOut(thinking=summary_text(item), signature=seal_reasoning(item, reasoning_key)))
        elif kind == "message":
            text, is_refusal = message_text(item)
            if text:
                blocks.append(A.TextOut(text=text))
            refusal = refusal or is_refusal
        elif kind == "function_call":
            blocks.append(tool_use_block(item, index, ctx))
            has_tools = True
        else:
            ctx.note(f"output {kind} item dropped")
    reason = incomplete_reason(resp)
    message = A.MessagesResponse(
        id=ctx.message_id,
        model=ctx.requested_model,
        content=blocks,
        stop_reason=stop_reason_for(resp.status, reason, has_tools, refusal),
        stop_sequence=None,
        usage=anthropic_usage(resp.usage, fallback_input=ctx.input_estimate, fallback_output=0),
    )
    return cut_message(message, ctx)


def summary_text(item: R.OutputItem) -> str:
    """The thinking text of a reasoning item: its summary parts, in order."""
    return SUMMARY_SEPARATOR.join(part.text for part in item.summary or () if part.text)


def message_text(item: R.OutputItem) -> tuple[str, bool]:
    """(text, is_refusal) of an output message: output_text and refusal parts in order."""
    texts: list[str] = []
    refusal = False
    for part in item.content or ():
        if part.type == "refusal":
            refusal = True
            texts.append(part.refusal or "")
        elif part.type == "output_text":
            texts.append(part.text or "")
    return "".join(texts), refusal


def tool_use_block(item: R.OutputItem, index: int, ctx: RequestContext) -> A.ToolUseOut:
    """A function_call item as a tool_use block: call_id kept (the client answers with it), name restored."""
    value, note = parse_arguments(item.arguments)
    if note:
        ctx.note(note)
    return A.ToolUseOut(id=call_id(item, index, ctx), name=ctx.tool_names.client(item.name or ""), input=value)


def call_id(item: R.OutputItem, index: int, ctx: RequestContext) -> str:
    """The id the tool_use carries: the call_id the function_call_output must answer with next turn."""
    return item.call_id or item.id or tool_use_id(ctx.message_id, index)


def incomplete_reason(resp: R.Response) -> str | None:
    return resp.incomplete_details.reason if resp.incomplete_details is not None else None


def stop_reason_for(status: str | None, incomplete: str | None, has_tools: bool, refusal: bool) -> str:
    """Anthropic stop_reason for a finished response."""
    if status == "incomplete":
        return "refusal" if incomplete == "content_filter" else "max_tokens"
    if has_tools:
        return "tool_use"
    return "refusal" if refusal else "end_turn"


def anthropic_usage(usage: R.ResponsesUsage | None, *, fallback_input: int, fallback_output: int) -> A.Usage:
    """Anthropic usage: input excludes cached tokens, which are reported as cache reads."""
    if usage is None:
        return A.Usage(input_tokens=fallback_input, output_tokens=fallback_output)
    details = usage.input_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    return A.Usage(
        input_tokens=max((usage.input_tokens or 0) - cached, 0),
        output_tokens=usage.output_tokens or 0,
        cache_read_input_tokens=cached,
    )


def failure(error: R.ResponseError | None) -> tuple[str, str]:
    """(Anthropic error type, message) for a failed response or an `error` event."""
    code = error.code if error is not None else None
    message = (error.message if error is not None else None) or "the upstream failed to complete the response"
    error_type = _FAILURE_TYPES.get(code, "api_error") if isinstance(code, str) else "api_error"
    return error_type, f"{message} ({code})" if code else message


def _failure_error(error: R.ResponseError | None) -> E.GatewayError:
    # A failed response is the upstream's failure, like a 429 or a 5xx: another attempt or candidate may succeed.
    error_type, message = failure(error)
    if error_type == "rate_limit_error":
        return E.RateLimited(f"upstream is rate limited: {message}", retryable=True)
    if error_type == "invalid_request_error":
        return E.InvalidRequest(f"upstream rejected the request: {message}")
    return E.Overloaded(f"upstream failed: {message}", retryable=True)
