"""One Messages exchange with the upstreams: candidates in order, bounded retries, circuit breakers, and the
first-byte rule — an upstream failure before the client got a byte tries the next candidate; after it, the
client gets an Anthropic `error` event."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from dragoman import errors as E
from dragoman.observe.tracing import NOOP_TRACER
from dragoman.protocols import anthropic as A
from dragoman.protocols.sse import EventTooLarge
from dragoman.routing.breaker import HALF_OPEN, OPEN, CircuitBreaker
from dragoman.routing.config import Config, Route
from dragoman.routing.retry import retry_delay
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from dragoman.exchange.dialects import Answer, Dialect, StreamRelay, dialect_for
from dragoman.exchange.targets import target_for
from dragoman.redaction import redacted
from dragoman.upstreams.client import Target, UpstreamClient, UpstreamStream

Send = Callable[[bytes, bool], Awaitable[None]]
NOOP_SPAN = NOOP_TRACER.start_request("", None)


@dataclass(slots=True)
class Attempt:
    route: str
    outcome: str  # ok | error | timeout | rate_limited | skipped (breaker open)
    status: int = 0
    error_type: str | None = None
    latency_ms: float = 0.0
    upstream: str | None = None  # the upstream's host, never its URL's credentials
    model: str | None = None


@dataclass(slots=True)
class Exchange:
    """What happened to one request upstream: what the audit record and metrics are made of."""

    request_id: str
    requested_model: str | None
    stream: bool
    input_estimate: int
    started: float = field(default_factory=time.perf_counter)
    wall_start: float = field(default_factory=time.time)
    span: Any = NOOP_SPAN  # the request's trace span (a shared no-op object when tracing is off)
    attempts: list[Attempt] = field(default_factory=list)
    policy: str | None = None  # the policy and branch that chose the route, if one did
    branch: str | None = None
    route: Route | None = None
    ctx: RequestContext | None = None
    status: int = 0
    error_type: str | None = None
    upstream_model: str | None = None
    usage: A.Usage | None = None
    stop_reason: str | None = None
    ttfb: float | None = None  # seconds from start to the first byte sent to the client
    upstream_time: float = 0.0  # seconds spent waiting on the chosen upstream
    event_count: int = 0


class Upstreams:
    """Per-config upstream state: one target, dialect and breaker per route."""

    def __init__(self, config: Config, client: UpstreamClient) -> None:
        self.client = client
        self.by_name = {route.name: route for route in config.routes}
        self.targets = {route.name: target_for(route) for route in config.routes}
        self.dialects: dict[str, Dialect] = {route.name: dialect_for(route) for route in config.routes}
        self.breakers = {
            route.name: CircuitBreaker(route.breaker.failures, route.breaker.cooldown) for route in config.routes
        }

    def candidates(self, route: Route) -> list[Route]:
        """The route, then its fallbacks in order (each once)."""
        out = [route]
        for name in route.fallbacks:
            fallback = self.by_name[name]
            if fallback not in out:
                out.append(fallback)
        return out


class Selected:
    """The candidate that answered, and its first output (a JSON answer, or the first stream bytes)."""

    __slots__ = ("route", "ctx", "answer", "resp", "relay", "first")

    def __init__(self, route: Route, ctx: RequestContext) -> None:
        self.route = route
        self.ctx = ctx
        self.answer: Answer | None = None
        self.resp: UpstreamStream | None = None
        self.relay: StreamRelay | None = None
        self.first = b""


async def select(
    upstreams: Upstreams,
    candidates: list[Route],
    req: A.MessagesRequest,
    raw: bytes,
    client_headers: list[tuple[bytes, bytes]],
    exchange: Exchange,
) -> Selected:
    """Try candidates until one answers (or, streamed, sends its first event); raise the error to return.

    A candidate's breaker is asked only when that candidate is about to be tried: asking claims a half-open
    breaker's one probe slot, and a claim is settled (success, failure or release) on every way out."""
    last: E.GatewayError | None = None
    for route in candidates:
        breaker = upstreams.breakers[route.name]
        model = route.upstream_model(req.model)
        allowed = breaker.allow()
        if not allowed and not _last_resort(upstreams, candidates, route):
            exchange.attempts.append(Attempt(route.name, "skipped", error_type="breaker_open", model=model))
            continue
        probe = allowed and breaker.state == HALF_OPEN  # let through a half-open breaker: we hold its probe
        ctx = _context(req, route, exchange)
        dialect = upstreams.dialects[route.name]
        target = upstreams.targets[route.name]
        with exchange.span.translate():
            payload = dialect.request_body(req, raw, ctx)
        exchange.span.capture("request", payload)  # a no-op unless tracing.capture_bodies (redacted there)
        headers = dialect.request_headers(target.headers, client_headers)
        attempt = 0
        while True:
            attempt += 1
            began = time.perf_counter()
            span = exchange.span.upstream(route.name, route.provider, model)
            try:
                selected = await _try(upstreams.client, target, dialect, payload, headers, req.stream, route, ctx)
            except E.GatewayError as err:
                span.end(err.error_type, err.message)
                exchange.upstream_time += time.perf_counter() - began
                exchange.attempts.append(_failed(route.name, err, began, target.host, model))
                if not err.retryable:
                    breaker.success()  # it answered: the request was at fault, not the upstream
                    raise
                if err.status != 429:
                    breaker.failure()
                elif probe:
                    breaker.release()  # a rate limit says nothing about the upstream's health
                last = err
                delay = retry_delay(attempt, route.retry, err.headers.get("retry-after"),
                                    retry_after_ms=err.headers.get("retry-after-ms"))
                if delay is None or breaker.state == OPEN:
                    break
                await asyncio.sleep(delay)
                if not breaker.allow():  # asked again for the retry: another request may hold the probe now
                    break
                probe = breaker.state == HALF_OPEN
                continue
            except BaseException:
                span.end("cancelled")
                if probe:
                    breaker.release()
                raise
            span.end()
            breaker.success()
            elapsed = time.perf_counter() - began
            exchange.upstream_time += elapsed
            exchange.attempts.append(Attempt(route.name, "ok", 200, None, elapsed * 1000, target.host, model))
            exchange.route = route
            exchange.ctx = ctx
            return selected
    raise _exhausted(last, exchange)


def _last_resort(upstreams: Upstreams, candidates: list[Route], route: Route) -> bool:
    """A breaker steers traffic to healthier candidates; with none left (every breaker open), the primary is
    tried anyway rather than refusing service outright. Peeks at the fallbacks' breakers, claiming nothing."""
    if route is not candidates[0]:
        return False
    return not any(upstreams.breakers[other.name].ready() for other in candidates[1:])


def _context(req: A.MessagesRequest, route: Route, exchange: Exchange) -> RequestContext:
    options = route.translation
    return RequestContext(
        message_id="msg_" + exchange.request_id[4:],
        requested_model=req.model,
        tool_names=ToolNameMap(options.max_tool_name_length),
        stop_sequences=tuple(req.stop_sequences) if req.stop_sequences else (),
        input_estimate=exchange.input_estimate,
        think_tags=options.think_tags,
    )


async def _try(
    client: UpstreamClient,
    target: Target,
    dialect: Dialect,
    payload: bytes,
    headers: dict[str, str],
    stream: bool,
    route: Route,
    ctx: RequestContext,
) -> Selected:
    """One attempt; whatever error it raises, from an HTTP body, a stream's first event or a translated answer,
    leaves here redacted, so no upstream text reaches a client, log, record or span unredacted."""
    selected = Selected(route, ctx)
    if not stream:
        raw = await client.answer(target, payload, headers)
        try:
            selected.answer = dialect.answer(raw, ctx)
        except E.GatewayError as err:
            raise redacted(err, target.secret) from None
        return selected
    upstream = await client.stream(target, payload, headers)
    relay = dialect.relay(ctx)
    try:
        selected.first = await _first_output(upstream, relay, target)
    except BaseException:
        upstream.close()
        raise
    selected.resp = upstream
    selected.relay = relay
    return selected


async def _first_output(upstream: UpstreamStream, relay: StreamRelay, target: Target) -> bytes:
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
    raise E.Overloaded(f"upstream for route {target.route!r} closed the stream without answering", retryable=True)


async def relay_rest(selected: Selected, send: Send, gone: asyncio.Future, exchange: Exchange) -> None:
    """Relay the rest of the stream, each read sent at once; a failure now is an `error` event."""
    resp, relay = selected.resp, selected.relay
    assert resp is not None and relay is not None
    tail = b""
    began = time.perf_counter()
    try:
        if not relay.ended:
            try:
                # aiohttp's read timer (idle, see UpstreamStream) bounds each wait for the next chunk.
                async for data in resp:
                    out = relay.feed(data)
                    if out:
                        await send(out, True)
                    if relay.ended or gone.done():
                        break
                else:
                    tail = relay.eof()
            except E.GatewayError as err:
                tail = relay.fail(err)
            except EventTooLarge as exc:
                tail = relay.fail(resp.failure(exc))
        await send(tail, False)
    finally:
        resp.close()
        exchange.upstream_time += time.perf_counter() - began
        exchange.event_count = relay.event_count
        exchange.upstream_model = relay.upstream_model or exchange.upstream_model
        exchange.usage, exchange.stop_reason = relay.usage()
        if relay.failure is not None:
            exchange.error_type = "stream_error"


def _failed(route: str, err: E.GatewayError, began: float, host: str, model: str) -> Attempt:
    status = err.upstream_status or 0  # 0: no HTTP answer (refused, timed out)
    return Attempt(route, err.outcome, status, err.error_type, (time.perf_counter() - began) * 1000, host, model)


def _exhausted(last: E.GatewayError | None, exchange: Exchange) -> E.GatewayError:
    if last is None:
        return E.Overloaded("every upstream for this model is unavailable (circuit breakers open); retry shortly")
    tried = [a for a in exchange.attempts if a.outcome != "ok" and a.outcome != "skipped"]
    if tried and all(a.outcome == "rate_limited" for a in tried):
        return last  # rate limited everywhere: the client should wait as the upstream said
    if len({a.route for a in exchange.attempts}) == 1:
        return last
    routes = ", ".join(dict.fromkeys(a.route for a in exchange.attempts))
    return E.Overloaded(f"every upstream candidate failed ({routes}); last: {last.message}")
