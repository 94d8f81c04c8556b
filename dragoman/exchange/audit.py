"""The audit record a Messages request leaves, made from its Exchange's state when it finishes (any outcome).
Built on the event loop, cheap; observe/ writes it elsewhere (a batched writer thread).

Its free text is bounded here, when built (`_text`): the client's `model` may be as long as the body limit (32 MiB)
and the upstream's answered `model` as long as its answer, and the writer holds up to `queue_size` records (twice,
while the store is down) by count: unbounded, a few such requests held gigabytes and wrote them to every row.
`verdict_detail`, set later by the loop, is cut where it is made (loop/checks.py, loop/judge.py)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dragoman.identity import Identity
from dragoman.observe.record import TEXT_LIMIT, AuditRecord, Candidate
from dragoman.redaction import clip

if TYPE_CHECKING:
    from dragoman.exchange.attempt import Attempt
    from dragoman.exchange.lifecycle import Exchange


def record_for(exchange: Exchange, status: int, error_type: str | None) -> AuditRecord:
    """The audit record of a finished request, answered with `status` (and `error_type`, if an error)."""
    total = time.perf_counter() - exchange.started
    route = exchange.route
    ctx = exchange.ctx
    usage = exchange.usage
    who = exchange.identity or Identity()
    upstream = exchange.upstream_time
    record = AuditRecord(
        time=exchange.wall_start,
        request_id=exchange.request_id,
        key_id=who.key_id,
        developer=who.developer,
        team=who.team,
        repo=who.repo,
        session=who.session,
        requested_model=_text(exchange.requested_model),
        policy=exchange.policy,
        branch=exchange.branch,
        input_estimate=exchange.input_estimate,
        candidates=[_candidate(a) for a in exchange.attempts],
        route=route.name if route is not None else (exchange.attempts[-1].route if exchange.attempts else None),
        upstream_model=_text(exchange.upstream_model or (exchange.attempts[-1].model if exchange.attempts else None)),
        provider=route.provider if route is not None else None,
        status=status,
        error_type=_text(error_type or exchange.error_type),
        stream=exchange.streamed,
        latency_total_ms=round(total * 1000, 3),
        ttfb_ms=round(exchange.ttfb * 1000, 3) if exchange.ttfb is not None else None,
        upstream_ms=round(upstream * 1000, 3),
        overhead_ms=round(max(total - upstream, 0.0) * 1000, 3),
        notes=_texts(ctx.notes) if ctx is not None else [],
        stream_events=exchange.event_count,
        shape=exchange.shape,
        prompt_variant=exchange.prompt_variant,
        loop_events=_texts(exchange.loop_events),
    )
    grant = exchange.grant
    if grant is not None:  # the budgets it was charged against: the key's identity alone (govern/budgets.py)
        record.budget_developer, record.budget_team = grant.developer, grant.team
    if usage is not None:
        record.input_tokens = token_count(usage.input_tokens)
        record.output_tokens = token_count(usage.output_tokens)
        record.cache_read_tokens = token_count(usage.cache_read_input_tokens)
    return record


def _candidate(attempt: Attempt) -> Candidate:
    """An attempt as the record lists it; its texts bounded (one check for the three: usually a few dozen chars)."""
    upstream, model, error = attempt.upstream, attempt.model, attempt.error_type
    if len(upstream or "") + len(model or "") + len(error or "") > TEXT_LIMIT:
        upstream, model, error = _text(upstream), _text(model), _text(error)
    return Candidate(route=attempt.route, upstream=upstream, model=model, outcome=attempt.outcome,
                     status=attempt.status or None, error_type=error, latency_ms=round(attempt.latency_ms, 3))


def _text(value: str | None) -> str | None:
    """A free-text field as the record keeps it: at most TEXT_LIMIT characters (module comment). The length is
    checked here, not only in `clip`: this runs for several fields of every request, and the call saved halves
    the cost of each."""
    return value if value is None or len(value) <= TEXT_LIMIT else clip(value, TEXT_LIMIT)


def _texts(values: list[str]) -> list[str]:
    """A list of free texts as the record keeps it: a copy (the record outlives the exchange's lists), checked in
    one C-level pass. Notes are bounded when noted (RequestContext.note) and loop events are made of config names:
    a guard, rarely a cut."""
    if not values or max(map(len, values)) <= TEXT_LIMIT:
        return list(values)
    return [clip(value, TEXT_LIMIT) for value in values]


def token_count(reported: int) -> int:
    """An upstream's token count as the record keeps it: 0 to MAX_TOKEN_COUNT. The upstream's JSON may say anything:
    a count past SQLite's and PostgreSQL's 64-bit integers stopped the audit writer at that record's batch (retried
    until 10,000 newer records pushed it out), and a negative one would be a negative cost, refunded to budgets."""
    return min(max(reported, 0), MAX_TOKEN_COUNT)


# A billion tokens a request: far beyond any model's context, and a billion such records still sum within 64 bits.
MAX_TOKEN_COUNT = 1_000_000_000
