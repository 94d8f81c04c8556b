"""Upstream token usage → Anthropic usage, one rule for Chat and Responses, JSON answers and streams alike.

Anthropic counts cached prompt tokens apart: `input_tokens` excludes them and `cache_read_input_tokens` holds
them (design §3). OpenAI counts them inside the prompt and reports them in `*_tokens_details.cached_tokens`.
When the upstream sent no usage, the caller's estimates stand in (`estimates.py`). Cached tokens never exceed the
prompt they are part of (a translation note says when an upstream claimed more).
"""

from __future__ import annotations

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.protocols import openai_responses as R
from dragoman.translate.request_context import RequestContext


# The record's note when an upstream's usage claimed more cached tokens than the prompt it is part of.
NOTE_CACHED_CAPPED = "cached tokens over the prompt tokens: capped at them"


def chat_usage(usage: C.ChatUsage | None, ctx: RequestContext, *, fallback_output: int) -> A.Usage:
    """Anthropic usage for a Chat completion's (or its last chunk's) usage."""
    if usage is None:
        return A.Usage(input_tokens=ctx.input_estimate, output_tokens=fallback_output)
    return _usage(usage.prompt_tokens, usage.completion_tokens, usage.prompt_tokens_details, ctx)


def responses_usage(usage: R.ResponsesUsage | None, ctx: RequestContext, *, fallback_output: int) -> A.Usage:
    """Anthropic usage for a Responses answer's usage."""
    if usage is None:
        return A.Usage(input_tokens=ctx.input_estimate, output_tokens=fallback_output)
    return _usage(usage.input_tokens, usage.output_tokens, usage.input_tokens_details, ctx)


def _usage(prompt: float | None, output: float | None,
           details: C.PromptTokensDetails | R.InputTokensDetails | None, ctx: RequestContext) -> A.Usage:
    # Never below 0 (the client's SDK and the record read them as counts); the record bounds them above too
    # (exchange/audit.py token_count). Cached tokens are part of the prompt (OpenAI's contract): more is an
    # upstream's error, and would be billed (cache reads are priced) for tokens nobody sent.
    prompt = _count(prompt)
    cached = _count(details.cached_tokens) if details is not None else 0
    if cached > prompt:
        ctx.note(NOTE_CACHED_CAPPED)
        cached = prompt
    return A.Usage(input_tokens=prompt - cached, output_tokens=_count(output), cache_read_input_tokens=cached)


def _count(reported: float | None) -> int:
    """A reported count as a whole number of at least 0: a Chat server may write one as a float (`12.0`)."""
    if reported is None:
        return 0
    return max(reported if type(reported) is int else int(reported), 0)
