"""One Messages request's life, from the body the server read to the audit record it leaves: `Exchange`.

The server (HTTP only) hands over what it read and writes what it is given back:

    exchange = Exchange(request_id, headers, tracer)
    exchange.authenticated(grant)                    # who asks, as far as the gateway key says
    await exchange.open(body, router, upstreams)     # decode, route, try candidates; or a GatewayError
    body = exchange.answer()                         # a JSON answer, or:
    async for chunk in exchange.stream(): ...        # a streamed one
    record = exchange.finish(status, error_type, pricer)

Its fields are written here and by the exchange's own modules (candidates, stream) only: they are what the
audit record, the metrics and the trace span are made of."""

from __future__ import annotations

import secrets
import time
from typing import Any, AsyncGenerator, Awaitable, Callable

import msgspec

from dragoman import errors as E
from dragoman.exchange.audit import record_for
from dragoman.exchange.attempt import Attempt
from dragoman.exchange.candidates import Upstreams, select
from dragoman.exchange.dialects import Answer
from dragoman.exchange.stream import OpenStream, answer_stream
from dragoman.identity import Identity, identity_from
from dragoman.loop.evidence import FINISHED, Evidence, taken
from dragoman.loop.next_turn import Answered
from dragoman.loop.shape import turn_shape
from dragoman.observe.pricing import Pricer
from dragoman.observe.record import AuditRecord
from dragoman.observe.tracing import NOOP_SPAN, NOOP_TRACER, NoopTracer, Tracer
from dragoman.protocols import anthropic as A
from dragoman.config.model import Route
from dragoman.govern.grant import Grant
from dragoman.govern.keys import check_model
from dragoman.policy.features import extract_features
from dragoman.routing.router import Router
from dragoman.translate.request_context import RequestContext

_decode_messages = msgspec.json.Decoder(A.MessagesRequest).decode
Headers = list[tuple[bytes, bytes]]
Gate = Callable[["Exchange"], Awaitable[None]]


def new_request_id(clock_ns: Callable[[], int] = time.time_ns) -> str:
    """A request's id: "req_", the time in milliseconds (12 hex digits) and 64 random bits (16). Ids made in a later
    millisecond sort later, so the audit store's request_id index grows at its end, and the record a next turn
    updates (the turn before, seconds ago) sits in its recent pages. Random ids put every insert and look-up on a
    random page of an index that outgrows SQLite's page cache (bench/bench_audit.py compares both; bench/RESULTS.md,
    "The next turn, lighter")."""
    return f"req_{clock_ns() // 1_000_000:012x}{secrets.token_hex(8)}"


class Exchange:
    """What happened to one Messages request: the state its audit record and metrics are made of, and its steps."""

    __slots__ = (
        "request_id", "headers", "started", "wall_start", "span", "identity", "requested_model", "streamed",
        "input_estimate", "policy", "branch", "attempts", "route", "ctx", "upstream_model", "usage", "stop_reason",
        "error_type", "ttfb", "upstream_time", "event_count", "shape", "grant", "prompt_variant", "loop_events",
        "_tracer", "_key", "_answer", "_opened", "request", "offered", "results", "capture", "kept", "kept_facts",
        "stream_end", "keep_answer",
    )

    def __init__(self, request_id: str, headers: Headers | None = None, tracer: Tracer | NoopTracer = NOOP_TRACER,
                 *, capture: bool = False, keep_answer: bool = False) -> None:
        self.request_id = request_id
        self.headers: Headers = headers if headers is not None else []
        self.started = time.perf_counter()
        self.wall_start = time.time()
        self.span: Any = NOOP_SPAN  # the request's trace span (a shared no-op object when tracing is off)
        self.identity: Identity | None = None  # None until authenticated: the record then names nobody
        self.requested_model: str | None = None
        self.streamed = False
        self.input_estimate = 0
        self.policy: str | None = None  # the policy and branch that chose the route, if one did
        self.branch: str | None = None
        self.attempts: list[Attempt] = []
        self.route: Route | None = None  # the candidate that answered
        self.ctx: RequestContext | None = None
        self.upstream_model: str | None = None
        self.usage: A.Usage | None = None
        self.stop_reason: str | None = None
        self.error_type: str | None = None  # "stream_error": the stream ended with an `error` event
        self.ttfb: float | None = None  # seconds from start to the first byte handed to the client
        self.upstream_time = 0.0  # seconds spent waiting on the upstreams
        self.event_count = 0
        self.shape: str | None = None  # the turn shape the loop keeps scores per (loop/shape.py)
        self.grant: Grant | None = None  # what the caller's key allows (None: inbound auth is off)
        self.prompt_variant: str | None = None  # the answering route's prompt-prefix variant, if it has variants
        self.loop_events: list[str] = []  # what the loop did to this request (probe, avoided a demoted candidate)
        self._tracer = tracer
        self._key: tuple[str | None, dict[str, str | None] | None] = (None, None)
        self._answer: Answer | None = None
        self._opened: OpenStream | None = None
        # The correctness loop's evidence (loop/evidence.py), kept only when `capture` (the loop is on).
        self.request: bytes | None = None  # the body as the client sent it (the judge's sample)
        self.offered: dict[str, msgspec.Raw] | None = None  # the request's tool schemas by name (loop/evidence.py)
        self.results: Answered | None = None  # what the tool_results of its last turn say (loop/evidence.py)
        self.capture = capture
        self.kept: list[bytes] | None = None  # a streamed answer's bytes as the client got them (relayed, or judged)
        self.kept_facts: Any = None  # what a translated one's events said (RequestContext.stream_facts)
        self.stream_end: str | None = None  # how reading the stream ended (loop/evidence.py)
        # The judge may judge this call (loop/judge.py `sampled`): a streamed answer's bytes are kept for it.
        self.keep_answer = keep_answer

    def authenticated(self, grant: Grant | None) -> None:
        """The caller passed authentication with `grant` (None: inbound auth is off)."""
        self.grant = grant
        if grant is not None:
            self._key = (grant.key_id, {"developer": grant.developer, "team": grant.team, "repo": grant.repo})
        self.identity = identity_from(self.headers, None, *self._key)  # refined by the body's metadata in open()

    async def open(self, body: bytes, router: Router, upstreams: Upstreams, gate: Gate | None = None) -> None:
        """Decode the request, choose its route, and try its candidates until one answers (streamed: until the
        client has something to read). Raises the GatewayError the client gets. `gate` (budgets, rate limits) is
        awaited once the request is decoded and estimated, before any upstream call; it may refuse by raising."""
        self.input_estimate = len(body) // 4
        req = E.decode_body(_decode_messages, body)
        if not req.messages:
            raise E.InvalidRequest("messages: at least one message is required")
        self.requested_model, self.streamed = req.model, req.stream
        check_model(self.grant, req.model)  # the key's model allow-list: a 403 before any upstream call
        self.request = body
        if self.capture:  # read while the request's objects are in the caches (loop/evidence.py)
            self.offered, self.results = taken(req)
        if req.metadata is not None and req.metadata.user_id:
            self.identity = identity_from(self.headers, req.metadata.user_id, *self._key)
        self.span = self._tracer.start_request(
            self.request_id, req.model, stream=req.stream, max_tokens=req.max_tokens,
            temperature=req.temperature, top_p=req.top_p,
        )
        features = extract_features(req, len(body), _header_map(self.headers), self.identity)
        self.input_estimate = features.input_tokens  # message_start's usage, before the real count
        self.shape = turn_shape(req, self.input_estimate)
        decision = router.decide(req.model, lambda: features)
        self.policy, self.branch = decision.policy, decision.branch
        if gate is not None:
            await gate(self)
        candidates = upstreams.candidates(decision.route, self.shape, self.loop_events)
        chosen = await select(upstreams, candidates, req, body, self.headers, self)
        if isinstance(chosen, OpenStream):
            self._opened = chosen
        else:
            self._answer = chosen
            self.usage, self.stop_reason, self.upstream_model = chosen.usage, chosen.stop_reason, chosen.upstream_model

    def answer(self) -> bytes:
        """The JSON answer's body (not streamed), handed to the client now."""
        answer = self._answer
        assert answer is not None
        self.ttfb = time.perf_counter() - self.started
        self.span.capture("response", answer.body)
        return answer.body

    def kept_answer(self) -> bytes | None:
        """The whole answer as the client got it, for the judge: the JSON body, or the SSE bytes of a stream whose
        bytes were kept (`keep_answer`, or a relayed stream while the loop is on) and that was read to its end. None
        for a stream the client stopped reading (Esc in Claude Code): what it got is not the answer."""
        if self._answer is not None:
            return self._answer.body
        if self.kept is None or self.stream_end != FINISHED:
            return None
        return b"".join(self.kept)

    def stopped_reading(self) -> bool:
        """Once its stream was written: whether the client left before the answer's end (Esc in Claude Code), so
        that the request was cancelled. A stream whose message_stop or error event was sent is not: the client
        had its whole answer, or saw it fail (stream_error). As kept_answer, stream_end None: it stopped reading."""
        opened = self._opened
        return opened is not None and self.stream_end is None and not opened.relay.ended

    def stream(self) -> AsyncGenerator[bytes, None]:
        """The streamed answer's bytes, to write as they come; `aclose()` it on every way out."""
        assert self._opened is not None
        if self.capture:  # the loop judges a stream only once the client was given it
            facts = self.ctx.stream_facts if self.ctx is not None else None
            if facts is not None:
                self.kept_facts = facts
            if facts is None or self.keep_answer:
                self.kept = []  # a relayed (not translated) stream, or one the judge may see: the client's bytes
        return answer_stream(self, self._opened)

    def finish(self, status: int, error_type: str | None, pricer: Pricer) -> AuditRecord:
        """The request is over, answered with `status` (and `error_type`, if an error): its audit record, with the
        trace span finished. Hands back an upstream stream still open (one never read)."""
        opened = self._opened
        if opened is not None:
            opened.upstream.close()
            relay = opened.relay
            self.event_count = relay.event_count
            self.upstream_model = relay.upstream_model or self.upstream_model
            self.usage, self.stop_reason = relay.usage()
            if relay.failure is not None:
                self.error_type = "stream_error"
        record = record_for(self, status, error_type)
        if self.span is not NOOP_SPAN:  # the span carries the cost, which the writer would price later
            record.cost_usd = pricer.price(record)
        self.span.finish(record)
        return record

    def evidence(self) -> Evidence | None:
        """What the loop judges this call by, once `finish` ran; None when the loop is off or nothing was asked."""
        req = self.request
        if not self.capture or req is None:
            return None
        ctx = self.ctx
        evidence = Evidence(stop_reason=self.stop_reason, offered=self.offered, results=self.results,
                            tool_names=ctx.tool_names if ctx is not None else None)
        answer, opened = self._answer, self._opened
        if answer is not None:
            evidence.body, evidence.content = answer.body, answer.content
        elif opened is not None and (self.kept is not None or self.kept_facts is not None):
            evidence.chunks, evidence.facts = self.kept, self.kept_facts
            evidence.ended = opened.relay.ended
            evidence.stream_end = self.stream_end
            failure = opened.relay.failure
            evidence.failure = failure.error_type if failure is not None else None
        return evidence


def _header_map(headers: Headers) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in headers}
