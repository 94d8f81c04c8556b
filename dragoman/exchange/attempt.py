"""One try of one candidate: the request sent, then its JSON answer translated, or its stream read until the
relay has something for the client. Until then a failure is the candidate's — raised as a GatewayError the
candidate loop may retry or fall back from; after it, the stream's (exchange/stream.py). `Attempt` is what the
audit record keeps of each try."""

from __future__ import annotations

from dataclasses import dataclass

from dragoman import errors as E
from dragoman.exchange.dialects import Answer, Dialect, StreamRelay
from dragoman.exchange.stream import OpenStream
from dragoman.protocols.sse import EventTooLarge
from dragoman.redaction import redacted
from dragoman.translate.request_context import RequestContext
from dragoman.upstreams.client import Target, UpstreamClient, UpstreamStream


@dataclass(slots=True)
class Attempt:
    """One candidate's try (or skip), as the audit record lists it."""

    route: str
    outcome: str  # ok | error | timeout | rate_limited (the GatewayError's outcome) | skipped (breaker open)
    status: int = 0
    error_type: str | None = None
    latency_ms: float = 0.0
    upstream: str | None = None  # the upstream's host, never its URL's credentials
    model: str | None = None


async def attempt(
    client: UpstreamClient,
    target: Target,
    dialect: Dialect,
    payload: bytes,
    headers: dict[str, str],
    stream: bool,
    ctx: RequestContext,
) -> Answer | OpenStream:
    """The candidate's answer, or its stream with the first output. Whatever error leaves here is redacted — the
    transport's by the transport, a translated answer's here — so no upstream text reaches a client, a log, a
    record or a span unredacted."""
    if not stream:
        raw = await client.answer(target, payload, headers)
        try:
            return dialect.answer(raw, ctx)
        except E.GatewayError as err:  # a failed Responses answer quotes the upstream
            raise redacted(err, target.secret) from None
    upstream = await client.stream(target, payload, headers)
    relay = dialect.relay(ctx)
    try:
        first = await _first_output(upstream, relay, target.route)
    except BaseException:
        upstream.close()
        raise
    return OpenStream(upstream, relay, first)


async def _first_output(upstream: UpstreamStream, relay: StreamRelay, route: str) -> bytes:
    """Read until the relay has something for the client; a failure before that is retryable."""
    async for data in upstream:
        try:
            out = relay.feed(data)
        except EventTooLarge as exc:
            raise upstream.failure(exc) from None
        if out:
            if relay.failure is not None:  # the upstream's first word was an error: still ours to retry elsewhere
                raise relay.failure
            upstream.answering = True
            return out
    raise E.Overloaded(f"upstream for route {route!r} closed the stream without answering", retryable=True)
