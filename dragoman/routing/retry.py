"""How long to wait before retrying an upstream: jittered exponential backoff that honours retry-after."""

from __future__ import annotations

import random

from dragoman.config.model import Retry


def retry_delay(
    attempt: int, retry: Retry, retry_after: str | None, rand: random.Random | None = None, retry_after_ms: str | None = None
) -> float | None:
    """Seconds to wait before try number `attempt + 1` (attempt counts from 1), or None: do not retry this
    upstream (no tries left, or it asked for a longer wait than `max_backoff`, so the next candidate is better)."""
    if attempt >= retry.attempts:
        return None
    asked = parse_retry_after(retry_after)
    if retry_after_ms:  # OpenAI's finer-grained variant, when present, is the more precise
        ms = parse_retry_after(retry_after_ms)
        asked = ms / 1000 if ms is not None else asked
    if asked is not None:
        return asked if asked <= retry.max_backoff else None
    base = min(retry.backoff * (2 ** (attempt - 1)), retry.max_backoff)
    # Full jitter spreads retries of many clients hit by the same outage (AWS architecture blog).
    return (rand or random).uniform(base / 2, base)


def parse_retry_after(value: str | None) -> float | None:
    """retry-after in seconds (the HTTP-date form is not used by model APIs and is ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0)
