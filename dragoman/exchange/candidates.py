"""The candidate loop: a route, then its fallbacks in order, each with bounded retries behind its circuit breaker,
and the first-byte rule — an upstream failure before the client got a byte tries the next candidate.

`Upstreams` is the per-config state the loop reads: one transport target, dialect and breaker per route,
built once when a config is loaded (breakers of unchanged routes carried over a reload)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from dragoman import errors as E
from dragoman.exchange.attempt import Attempt, attempt
from dragoman.exchange.dialects import Answer, Dialect, dialect_for
from dragoman.exchange.stream import OpenStream
from dragoman.exchange.targets import target_for
from dragoman.protocols import anthropic as A
from dragoman.routing.breaker import HALF_OPEN, OPEN, CircuitBreaker
from dragoman.config.model import Config, Route, WeightedRoute
from dragoman.loop.answer import StreamFacts
from dragoman.loop.shift import Shift
from dragoman.routing.retry import retry_delay
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from dragoman.upstreams.client import UpstreamClient

if TYPE_CHECKING:
    from dragoman.exchange.lifecycle import Exchange


class Upstreams:
    """Per-config upstream state: one target, dialect and breaker per route."""

    def __init__(self, config: Config, client: UpstreamClient, previous: Upstreams | None = None,
                 shift: Shift | None = None) -> None:
        self.client = client
        self.shift = shift if shift is not None else Shift(enabled=False)  # weighted picks, prompt variants
        self.by_name = {route.name: route for route in config.routes}
        self.targets = {route.name: target_for(route) for route in config.routes}
        self.dialects: dict[str, Dialect] = {route.name: dialect_for(route) for route in config.routes}
        self.breakers = {
            route.name: CircuitBreaker(route.breaker.failures, route.breaker.cooldown) for route in config.routes
        }
        if previous is not None:
            self._keep_breakers(previous)

    def candidates(self, route: Route | WeightedRoute, shape: str = "", events: list[str] | None = None) -> list[Route]:
        """The route (a weighted route's candidate, picked among those whose breaker is ready), then its fallbacks
        in order (each once)."""
        if isinstance(route, WeightedRoute):
            route = self.by_name[self.shift.pick(route, shape, events if events is not None else [], self.breakers)]
        out = [route]
        for name in route.fallbacks:
            fallback = self.by_name[name]
            if fallback not in out:
                out.append(fallback)
        return out

    def _keep_breakers(self, previous: Upstreams) -> None:
        # A reload must not forget that an unchanged upstream is failing.
        for name, route in self.by_name.items():
            old = previous.by_name.get(name)
            if old is not None and old.endpoint == route.endpoint and old.breaker == route.breaker:
                self.breakers[name] = previous.breakers[name]


async def select(
    upstreams: Upstreams,
    candidates: list[Route],
    req: A.MessagesRequest,
    raw: bytes,
    client_headers: list[tuple[bytes, bytes]],
    exchange: Exchange,
) -> Answer | OpenStream:
    """Try candidates until one answers (or, streamed, sends its first event); raise the error to return.
    Every try is recorded in `exchange.attempts`; the one that answered sets `exchange.route` and `.ctx`.

    A candidate's breaker is asked only when that candidate is about to be tried: asking claims a half-open
    breaker's one probe slot, and a claim is settled (success, failure or release) on every way out. The request
    is translated before the breaker is asked, so a request refused in translation (a 400, the client's fault)
    never holds a claim; a candidate its breaker skips is not translated."""
    last: E.GatewayError | None = None
    for route in candidates:
        breaker = upstreams.breakers[route.name]
        model = route.upstream_model(req.model)
        if not breaker.ready() and not _last_resort(upstreams, candidates, route):
            exchange.attempts.append(Attempt(route.name, "skipped", error_type="breaker_open", model=model))
            continue
        variant = upstreams.shift.variant(route, exchange.shape or "") if route.prompt_prefixes else None
        dialect = upstreams.dialects[route.name]
        ctx = _context(req, route, exchange, variant.text if variant is not None else "",
                       keep_events=exchange.capture and req.stream and dialect.translated)
        target = upstreams.targets[route.name]
        with exchange.span.translate():
            payload = dialect.request_body(req, raw, ctx)
        exchange.span.capture("request", payload)  # a no-op unless tracing.capture_bodies (redacted there)
        headers = dialect.request_headers(target.headers, client_headers)
        # Nothing since ready() awaited, so allow() agrees with it (False only for a last resort, sent unclaimed).
        probe = breaker.allow() and breaker.state == HALF_OPEN  # let through a half-open breaker: we hold its probe
        tries = 0
        while True:
            tries += 1
            began = time.perf_counter()
            span = exchange.span.upstream(route.name, route.provider, model)
            try:
                chosen = await attempt(upstreams.client, target, dialect, payload, headers, req.stream, ctx)
            except E.GatewayError as err:
                span.end(err.error_type, err.message)
                if ctx.stream_facts is not None:  # a try whose first word was an error: the client got none of it
                    ctx.stream_facts.clear()
                exchange.upstream_time += time.perf_counter() - began
                err = _whose_fault(err, route)
                exchange.attempts.append(_failed(route.name, err, began, target.host, model))
                if not err.retryable:
                    breaker.success()  # it answered: the request was at fault, not the upstream
                    raise err from None
                if err.status != 429:
                    breaker.failure()  # an overload, or the upstream refusing the gateway's own credential
                elif probe:
                    breaker.release()  # a rate limit says nothing about the upstream's health
                last = err
                delay = _retry_delay(err, tries, route)
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
            exchange.prompt_variant = variant.name if variant is not None else None
            return chosen
    raise _exhausted(last, exchange)


def _whose_fault(err: E.GatewayError, route: Route) -> E.GatewayError:
    """A 404 is the route's fault (its model or deployment is missing upstream), unless the model name sent was
    the client's own (a route without a model passes it through): then it is the client's 404, returned as is
    and never counted against the upstream (else any client could open the breaker by naming no real model)."""
    if isinstance(err, E.ModelMissing) and route.model is None:
        return E.NotFound(err.message, upstream_status=err.upstream_status)
    return err


def _retry_delay(err: E.GatewayError, tries: int, route: Route) -> float | None:
    """The wait before this candidate's next try, or None: on to the next candidate (see `retry_delay`; never a
    retry for a failure the same upstream would repeat)."""
    if not err.retry_here:
        return None
    return retry_delay(tries, route.retry, err.headers.get("retry-after"),
                       retry_after_ms=err.headers.get("retry-after-ms"))


def _last_resort(upstreams: Upstreams, candidates: list[Route], route: Route) -> bool:
    """A breaker steers traffic to healthier candidates; with none left (every breaker open), the primary is
    tried anyway rather than refusing service outright. Peeks at the fallbacks' breakers, claiming nothing."""
    if route is not candidates[0]:
        return False
    return not any(upstreams.breakers[other.name].ready() for other in candidates[1:])


def _context(req: A.MessagesRequest, route: Route, exchange: Exchange, system_prefix: str, *,
             keep_events: bool) -> RequestContext:
    options = route.translation
    inputs: dict[int, Any] | None = {} if keep_events else None
    return RequestContext(
        message_id="msg_" + exchange.request_id[4:],
        requested_model=req.model,
        tool_names=ToolNameMap(options.max_tool_name_length),
        stop_sequences=tuple(req.stop_sequences) if req.stop_sequences else (),
        input_estimate=exchange.input_estimate,
        think_tags=options.think_tags,
        system_prefix=system_prefix,
        stream_facts=StreamFacts(inputs) if inputs is not None else None,
        kept_arguments=inputs,
    )


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
