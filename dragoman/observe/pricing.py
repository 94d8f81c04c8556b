"""Cost in USD: a built-in price table (USD per million tokens), longest-prefix match, per-route overrides.

Prices are public list prices (standard tier, no batch or priority discounts), checked 2026-11 against
developers.openai.com/api/docs/pricing and platform.claude.com/docs/en/about-claude/pricing. A route's
`pricing:` block overrides the table: use it for negotiated prices, self-hosted models (all zeros), or
anything the table does not know (its cost is then None, never a guess).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Protocol

from dragoman.config.model import Pricing


def _p(input: float, cached_input: float, output: float) -> Pricing:
    return Pricing(input, cached_input, output)


# Keys are name prefixes; the longest one that matches at a boundary wins ("gpt-5-mini-2025-08-07" →
# "gpt-5-mini", not "gpt-5"). Anthropic names are matched with dots as dashes ("claude-opus-4.5" too).
BUILTIN: dict[str, Pricing] = {
    # OpenAI: input, cached input, output
    "gpt-5": _p(1.25, 0.125, 10.00),
    "gpt-5-mini": _p(0.25, 0.025, 2.00),
    "gpt-5-nano": _p(0.05, 0.005, 0.40),
    "gpt-5-codex": _p(1.25, 0.125, 10.00),
    "gpt-5-chat-latest": _p(1.25, 0.125, 10.00),
    "gpt-5.1": _p(1.25, 0.125, 10.00),
    "gpt-5.2": _p(1.75, 0.175, 14.00),
    "gpt-5.4": _p(2.50, 0.25, 15.00),
    "gpt-5.4-mini": _p(0.75, 0.075, 4.50),
    "gpt-5.4-nano": _p(0.20, 0.02, 1.25),
    "gpt-5.5": _p(5.00, 0.50, 30.00),
    "gpt-4.1": _p(2.00, 0.50, 8.00),
    "gpt-4.1-mini": _p(0.40, 0.10, 1.60),
    "gpt-4.1-nano": _p(0.10, 0.025, 0.40),
    "gpt-4o": _p(2.50, 1.25, 10.00),
    "gpt-4o-mini": _p(0.15, 0.075, 0.60),
    "o3": _p(2.00, 0.50, 8.00),
    "o3-mini": _p(1.10, 0.55, 4.40),
    "o4-mini": _p(1.10, 0.275, 4.40),
    # Anthropic: base input, cache hits, output (cache writes are priced as input here)
    "claude-opus-4": _p(15.00, 1.50, 75.00),
    "claude-opus-4-0": _p(15.00, 1.50, 75.00),
    "claude-opus-4-1": _p(15.00, 1.50, 75.00),
    "claude-opus-4-5": _p(5.00, 0.50, 25.00),
    "claude-opus-4-6": _p(5.00, 0.50, 25.00),
    "claude-opus-4-7": _p(5.00, 0.50, 25.00),
    "claude-opus-4-8": _p(5.00, 0.50, 25.00),
    "claude-opus-5": _p(5.00, 0.50, 25.00),
    "claude-sonnet-4": _p(3.00, 0.30, 15.00),
    "claude-haiku-4": _p(1.00, 0.10, 5.00),
    "claude-3-5-haiku": _p(0.80, 0.08, 4.00),
}


# The highest price in the table for each kind of token: an upper bound for a call whose model has no price, where a
# cap must count it as something (the judge's dollars per day), never as $0. Not a cost: records keep None.
CEILING = Pricing(
    max(p.input for p in BUILTIN.values()),
    max(p.cached_input for p in BUILTIN.values()),
    max(p.output for p in BUILTIN.values()),
)


class UsageLike(Protocol):
    """Anything with these counts: an AuditRecord, or the server's own usage struct."""

    input_tokens: int  # uncached input
    output_tokens: int


def cost_usd(model: str | None, usage: UsageLike, override: Pricing | None = None) -> float | None:
    """USD for one request: uncached input, cache reads and output at their prices. None when unpriced.

    Reads `cache_read_tokens` (AuditRecord) or `cache_read_input_tokens` (Anthropic usage) when present.
    """
    price = override if override is not None else price_for(model)
    if price is None:
        return None
    cached = getattr(usage, "cache_read_tokens", None)
    if cached is None:
        cached = getattr(usage, "cache_read_input_tokens", 0) or 0
    total = usage.input_tokens * price.input + cached * price.cached_input + usage.output_tokens * price.output
    if not math.isfinite(total):  # prices are bounded at load; an infinite cost would poison every sum and budget
        return None
    return round(total / 1_000_000, 10)


@lru_cache(maxsize=1024)
def price_for(model: str | None) -> Pricing | None:
    """The built-in price of `model` by longest prefix at a name boundary; None when unknown."""
    if not model:
        return None
    name = model.rsplit("/", 1)[-1].lower()  # "openai/gpt-5" (OpenRouter style) → "gpt-5"
    if name.startswith("claude-"):
        name = name.replace(".", "-")
    best: str | None = None
    for prefix in BUILTIN:
        if name.startswith(prefix) and _at_boundary(name, len(prefix)) and (best is None or len(prefix) > len(best)):
            best = prefix
    return BUILTIN[best] if best is not None else None


def _at_boundary(name: str, end: int) -> bool:
    # "gpt-5" must price "gpt-5-2025-08-07" but not "gpt-5.3" (a different, unknown price) or "gpt-50".
    return end == len(name) or name[end] in "-:@["


class Pricer:
    """Prices records: a route's override first, then the built-in table on the upstream model."""

    def __init__(self, overrides: Mapping[str, Pricing] | None = None) -> None:
        self.overrides = dict(overrides or {})

    def price(self, record: UsageLike) -> float | None:
        route = getattr(record, "route", None)
        override = self.overrides.get(route) if route else None
        model = getattr(record, "upstream_model", None) or getattr(record, "requested_model", None)
        return cost_usd(model, record, override)
