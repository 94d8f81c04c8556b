"""Token counts the gateway estimates rather than reads: ~4 characters a token.

The output of an answer whose upstream reported no usage, and the client's max_tokens as the characters of
visible output it allows (`output_budget.py`), both use this one rate. A tokenizer would be exact but costs
2-14 us a streamed chunk (o200k, measured; see output_budget.py): too much for the stream's hot path.
"""

from __future__ import annotations

from dragoman.translate.request_context import RequestContext

CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English text


def output_estimate(chars: int, ctx: RequestContext) -> int:
    """Output tokens for `chars` characters when the upstream reports no usage, never past the upstream's budget."""
    estimate = max(chars // CHARS_PER_TOKEN, 1 if chars else 0)
    return min(estimate, ctx.max_tokens) if ctx.max_tokens else estimate


def chars_for(tokens: int) -> int:
    """The characters `tokens` tokens are estimated to hold."""
    return tokens * CHARS_PER_TOKEN
