"""Rate limits per key, developer and team: requests, input tokens and output tokens per window (a minute by
default), and concurrent streams.

The algorithm is GCRA (the generic cell rate algorithm, ITU-T I.371), which is a token bucket kept as one number:
a limit of L per window W is a bucket of capacity L refilled continuously at L/W per second (Anthropic describes
its own limits as such a bucket). Its state is the theoretical arrival time `tat`: the instant the bucket is full
again. With emission interval T = W / L:

- a request that needs n units (n = min(cost, L), and at least 1) is admitted iff  max(tat, now) + n·T − now ≤ W;
- admitting it charges its cost c:  tat ← max(tat, now) + c·T;
- refused, it may retry after  max(tat, now) + n·T − W − now  seconds, exactly.

Burst: a full bucket admits L units at once (a whole window's worth), then one unit per T. There are no window
edges to game (a fixed window admits 2L around its edge at any time): over any interval of t seconds the units
admitted never exceed L + t·L/W, so a steady client gets exactly L per window, and 2L in one window only right
after a full window of silence. Input tokens are charged at admission with the request's estimate and corrected with the real
count after the answer (the correction may push `tat` past the window: later requests wait it out). Output tokens
are only known after the answer: admission asks for one unit of room and charges nothing; the answer's tokens are
charged when it is settled. A request needing more than L units is admitted only on a full bucket.

Concurrent streams are a plain count of streamed answers in flight per scope (Redis: leases that expire, so a
crashed instance's streams free their slots; renewed while they run)."""

from __future__ import annotations

import math
from typing import NamedTuple

from dragoman.config.governance import LimitRule
from dragoman.govern.grant import Grant, Limits
from dragoman.govern.periods import rfc3339

RPM, INPUT, OUTPUT = "requests", "input_tokens", "output_tokens"  # the dimensions, named as Anthropic's headers


class RateItem(NamedTuple):
    """One bucket a request passes through: `key` in the counter backend, its limit per window, its cost now."""

    key: str
    scope: str  # key:<id> | developer:<name> | team:<name>
    dimension: str  # RPM | INPUT | OUTPUT
    limit: int
    cost: float


class StreamItem(NamedTuple):
    key: str
    scope: str
    limit: int


def gcra_need(item: RateItem) -> float:
    """Units that must fit now: the cost, at most the whole limit, at least one."""
    return max(min(item.cost, item.limit), 1.0)


def gcra_admit(tat: float | None, item: RateItem, window: float, now: float) -> tuple[float, float]:
    """(new tat, 0) when `item` is admitted; (old tat, seconds to wait) when not. `tat` None: a full bucket."""
    interval = window / item.limit
    base = now if tat is None or tat < now else tat
    wait = base + gcra_need(item) * interval - window - now
    if wait > 1e-9:
        return base, wait
    return base + item.cost * interval, 0.0


def gcra_settle(tat: float | None, limit: int, delta: float, window: float, now: float) -> float:
    """`tat` after `delta` more units (negative: a refund), never earlier than now (a full bucket stays full)."""
    base = now if tat is None or tat < now else tat
    return max(base + delta * window / limit, now)


def gcra_remaining(tat: float, limit: int, window: float, now: float) -> int:
    """Units a request could still take right now."""
    base = max(tat, now)
    return max(0, min(limit, math.floor((window - (base - now)) * limit / window + 1e-9)))


class LimitRules:
    """Which limits apply to a caller: the key's own (from its Grant), else a `key:<id>` or `key:*` rule; the
    `developer:<name>` rule, else `developer:*`; the same for teams."""

    def __init__(self, rules: tuple[LimitRule, ...]) -> None:
        self._by_scope = {rule.scope: _limits(rule) for rule in rules}

    def __bool__(self) -> bool:
        return bool(self._by_scope)

    def for_grant(self, grant: Grant | None) -> list[tuple[str, Limits]]:
        """(scope, limits) for each scope of `grant` that has any limit."""
        if grant is None:
            return []
        out = []
        own = grant.limits if _any(grant.limits) else None
        for kind, name, limits in (("key", grant.key_id, own), ("developer", grant.developer, None),
                                   ("team", grant.team, None)):
            if not name:
                continue
            scope = f"{kind}:{name}"
            found = limits or self._by_scope.get(scope) or self._by_scope.get(f"{kind}:*")
            if found is not None and _any(found):
                out.append((scope, found))
        return out


def rate_items(scoped: list[tuple[str, Limits]], input_estimate: int, stream: bool) -> tuple[list[RateItem], list[StreamItem]]:
    """The buckets a request passes through, and the stream slots it takes."""
    rates: list[RateItem] = []
    streams: list[StreamItem] = []
    for scope, limits in scoped:
        if limits.rpm is not None:
            rates.append(RateItem(f"rl:{RPM}:{scope}", scope, RPM, limits.rpm, 1.0))
        if limits.input_tpm is not None:
            rates.append(RateItem(f"rl:{INPUT}:{scope}", scope, INPUT, limits.input_tpm, float(input_estimate)))
        if limits.output_tpm is not None:
            rates.append(RateItem(f"rl:{OUTPUT}:{scope}", scope, OUTPUT, limits.output_tpm, 0.0))
        if stream and limits.concurrent_streams is not None:
            streams.append(StreamItem(f"cs:{scope}", scope, limits.concurrent_streams))
    return rates, streams


def ratelimit_headers(rates: list[RateItem], tats: list[float], window: float, now: float) -> dict[str, str]:
    """Anthropic's anthropic-ratelimit-* headers for the most restrictive scope of each dimension: limit,
    remaining, and reset (RFC 3339: when the bucket is full again). `tokens-*` is the most restrictive of input and
    output tokens, as Anthropic's is. Only dimensions that have a limit are sent."""
    best: dict[str, tuple[int, int, float]] = {}
    for item, tat in zip(rates, tats):
        remaining = gcra_remaining(tat, item.limit, window, now)
        current = best.get(item.dimension)
        if current is None or remaining < current[1]:
            best[item.dimension] = (item.limit, remaining, max(tat, now))
    tokens = [best[d] for d in (INPUT, OUTPUT) if d in best]
    if tokens:
        best["tokens"] = min(tokens, key=lambda entry: entry[1])
    headers = {}
    for dimension, (limit, remaining, reset) in best.items():
        prefix = "anthropic-ratelimit-" + dimension.replace("_", "-")
        headers[prefix + "-limit"] = str(limit)
        headers[prefix + "-remaining"] = str(remaining)
        headers[prefix + "-reset"] = rfc3339(reset)
    return headers


def retry_headers(wait: float) -> dict[str, str]:
    """retry-after (whole seconds, rounded up, RFC 9110) and retry-after-ms (the anthropic SDKs read it first)."""
    return {"retry-after": str(max(1, math.ceil(wait))), "retry-after-ms": str(max(1, math.ceil(wait * 1000)))}


def refusal_message(item: RateItem | StreamItem, window: float, wait: float) -> str:
    if isinstance(item, StreamItem):
        return (f"rate limit: {item.scope} has {item.limit} concurrent stream(s) open, its limit; "
                f"retry when one ends (in about {wait:.1f} s)")
    what = {RPM: "requests", INPUT: "input tokens", OUTPUT: "output tokens"}[item.dimension]
    return f"rate limit: {item.scope} may use {item.limit} {what} per {window:g} s; retry in {wait:.2f} s"


def _limits(rule: LimitRule) -> Limits:
    return Limits(rpm=rule.rpm, input_tpm=rule.input_tpm, output_tpm=rule.output_tpm,
                  concurrent_streams=rule.concurrent_streams)


def _any(limits: Limits) -> bool:
    return any(v is not None for v in (limits.rpm, limits.input_tpm, limits.output_tpm, limits.concurrent_streams))
