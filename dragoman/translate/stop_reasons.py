"""Why an upstream answer ended → Anthropic `stop_reason` (design §3, §4), for JSON answers and streams alike."""

from __future__ import annotations

from dragoman.protocols import openai_responses as R
from dragoman.translate.request_context import RequestContext

_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "model_length": "max_tokens",  # Mistral: the model's context is full
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def chat_stop_reason(
    finish_reason: str | None, has_tools: bool, refusal: bool, text_tail: str, ctx: RequestContext
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a Chat finish_reason; `refusal`: the answer was a refusal and nothing else."""
    if has_tools and finish_reason in (None, "stop", "tool_calls", "function_call"):
        return "tool_use", None  # some servers answer tool calls with finish_reason "stop"
    if refusal and not has_tools:
        return "refusal", None
    reason = _FINISH.get(finish_reason or "stop")
    if reason is None:  # a value no server documents (failed generations are failures before this: failures.py)
        ctx.note(f"unknown finish_reason {finish_reason[:40]!r}: end_turn")  # type: ignore[index]
        reason = "end_turn"
    elif reason == "tool_use":  # "tool_calls" with no call made (a tool parser failed and left the call as text)
        ctx.note(f"finish_reason {finish_reason!r} without a tool call: end_turn")
        reason = "end_turn"
    if reason == "end_turn" and ctx.stop_sequences:
        for seq in ctx.stop_sequences:
            if seq and text_tail.endswith(seq):
                return "stop_sequence", seq
    return reason, None


def responses_stop_reason(resp: R.Response, status: str | None, has_tools: bool, refusal: bool) -> str:
    """stop_reason for a finished response (`status` as the stream or the answer says it)."""
    if status == "incomplete":
        incomplete = resp.incomplete_details.reason if resp.incomplete_details is not None else None
        return "refusal" if incomplete == "content_filter" else "max_tokens"
    if has_tools:
        return "tool_use"
    return "refusal" if refusal else "end_turn"
