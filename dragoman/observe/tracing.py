"""OpenTelemetry traces, off by default: one span per request, child spans `translate` and `upstream`, with
the GenAI semantic-convention attributes (gen_ai.*) plus dragoman.route / dragoman.policy.

Off costs nothing: `Tracer.from_settings` returns `NOOP_TRACER`, whose `start_request` hands back one shared
no-op span (no allocation, no OpenTelemetry import). On, spans go to the OTLP/HTTP exporter at
`tracing.otlp_endpoint` (package opentelemetry-exporter-otlp-proto-http) or to an exporter passed in (tests).
The tracer has its own TracerProvider: the gateway never touches the process-global one.

Secrets: headers are never recorded; captured bodies (`capture_bodies: true`) and error messages pass
`redact()`, and bodies are cut at `_BODY_LIMIT` characters (redacted first: `redact_cut`). Every other string a
client or an upstream chose (model names) passes `_safe` before it names a span or becomes an attribute, as the
audit record redacts it; the provider cuts any attribute at `_BODY_LIMIT` (SpanLimits).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Self

from dragoman.observe.record import AuditRecord, failed, redact
from dragoman.redaction import holds_secret, redact_cut

_BODY_LIMIT = 16_384
_NAME_LIMIT = 256  # a model, policy or branch name in a span: real ones are far shorter


class _NoopChild:
    """A child span that does nothing: a reusable context manager."""

    __slots__ = ()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set(self, key: str, value: Any) -> None:
        pass

    def end(self, error_type: str | None = None, message: str | None = None) -> None:
        pass


class NoopSpan:
    """What a request gets when tracing is off: every method returns at once."""

    __slots__ = ()
    recording = False

    def child(self, name: str, attributes: dict[str, Any] | None = None) -> _NoopChild:
        return _NOOP_CHILD

    def translate(self) -> _NoopChild:
        return _NOOP_CHILD

    def upstream(self, route: str, provider: str | None, model: str | None) -> _NoopChild:
        return _NOOP_CHILD

    def capture(self, kind: str, body: bytes | str) -> None:
        pass

    def finish(self, record: AuditRecord) -> None:
        pass


class NoopTracer:
    enabled = False

    def start_request(self, request_id: str, requested_model: str | None, **request: Any) -> NoopSpan:
        return NOOP_SPAN

    def shutdown(self) -> None:
        pass


_NOOP_CHILD = _NoopChild()
NOOP_SPAN = NoopSpan()
NOOP_TRACER = NoopTracer()


class Tracer:
    """Starts request spans on a private TracerProvider. Build it with `from_settings`."""

    enabled = True

    def __init__(self, provider: Any, *, capture_bodies: bool = False) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._provider = provider
        self._tracer = provider.get_tracer("dragoman")
        self.capture_bodies = capture_bodies

    @classmethod
    def from_settings(cls, settings: Any, exporter: Any = None) -> Tracer | NoopTracer:
        """`settings`: a TracingSettings (enabled, otlp_endpoint, capture_bodies, service_name) or None.
        `exporter`: a SpanExporter to use instead of OTLP (exported synchronously; for tests)."""
        if settings is None or not settings.enabled:
            return NOOP_TRACER
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanLimits, TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SimpleSpanProcessor,
        )

        # No attribute longer than a captured body, whatever sets it (the SDK's default is unbounded).
        limits = SpanLimits(max_attribute_length=_BODY_LIMIT)
        provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}), span_limits=limits)
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif settings.otlp_endpoint:
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(settings.otlp_endpoint)))
        return cls(provider, capture_bodies=settings.capture_bodies)

    def start_request(
        self,
        request_id: str,
        requested_model: str | None,
        *,
        stream: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> RequestSpan:
        """The request's span, started now; end it with `finish(record)`."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "dragoman.request_id": request_id,
            "dragoman.stream": stream,
        }
        model = _safe(requested_model)  # the client's: the span starts before routing, a refused name too
        _put(attributes, "gen_ai.request.model", model)
        _put(attributes, "gen_ai.request.max_tokens", max_tokens)
        _put(attributes, "gen_ai.request.temperature", temperature)
        _put(attributes, "gen_ai.request.top_p", top_p)
        name = f"chat {model}" if model else "chat"
        span = self._tracer.start_span(name, kind=self._trace.SpanKind.SERVER, attributes=attributes)
        return RequestSpan(self, span)

    def shutdown(self) -> None:
        """Flush and stop exporting (server shutdown)."""
        self._provider.shutdown()


class RequestSpan:
    """One request's span and its children. Children are explicit (not the current context), so concurrent
    requests on one event loop never adopt each other's spans."""

    recording = True

    def __init__(self, tracer: Tracer, span: Any) -> None:
        self._tracer = tracer
        self._span = span
        self._context = tracer._trace.set_span_in_context(span)

    def child(self, name: str, attributes: dict[str, Any] | None = None, *, client: bool = False) -> ChildSpan:
        kind = self._tracer._trace.SpanKind.CLIENT if client else self._tracer._trace.SpanKind.INTERNAL
        span = self._tracer._tracer.start_span(name, context=self._context, kind=kind, attributes=attributes)
        return ChildSpan(span)

    def translate(self) -> ChildSpan:
        return self.child("translate")

    def upstream(self, route: str, provider: str | None, model: str | None) -> ChildSpan:
        """One upstream attempt (a fallback makes several): ends when the last byte arrived or it failed."""
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "dragoman.route": route}
        _put(attributes, "gen_ai.system", provider)
        _put(attributes, "gen_ai.provider.name", provider)
        _put(attributes, "gen_ai.request.model", _safe(model))  # the client's on a route without `model:`
        return self.child("upstream", attributes, client=True)

    def capture(self, kind: str, body: bytes | str) -> None:
        """Record a translated body (kind: "request" or "response") when capture_bodies is on; redacted."""
        if not self._tracer.capture_bodies:
            return
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        self._span.set_attribute(f"dragoman.{kind}.body", redact_cut(text, _BODY_LIMIT))

    def finish(self, record: AuditRecord) -> None:
        """Set the response attributes from the request's audit record and end the span."""
        span = self._span
        attributes: dict[str, Any] = {
            "http.response.status_code": record.status,
            "gen_ai.usage.input_tokens": record.input_tokens + record.cache_read_tokens,
            "gen_ai.usage.output_tokens": record.output_tokens,
            "dragoman.stream_events": record.stream_events,
            "dragoman.candidates": len(record.candidates),
        }
        _put(attributes, "gen_ai.system", record.provider)
        _put(attributes, "gen_ai.provider.name", record.provider)
        _put(attributes, "gen_ai.response.model", _safe(record.upstream_model))  # the upstream's echo
        _put(attributes, "gen_ai.response.id", "msg_" + record.request_id[4:] if record.request_id.startswith("req_") else None)
        _put(attributes, "gen_ai.usage.cache_read.input_tokens", record.cache_read_tokens or None)
        _put(attributes, "gen_ai.usage.reasoning.output_tokens", record.reasoning_tokens or None)
        _put(attributes, "dragoman.route", record.route)
        # the record is not redacted yet (the writer does it): these come from the config, redacted like the record
        _put(attributes, "dragoman.policy", _safe(record.policy))
        _put(attributes, "dragoman.branch", _safe(record.branch))
        _put(attributes, "dragoman.cost_usd", record.cost_usd)
        _put(attributes, "dragoman.overhead_ms", record.overhead_ms)
        _put(attributes, "dragoman.ttfb_ms", record.ttfb_ms)
        if record.notes:
            attributes["dragoman.notes"] = [redact(note) for note in record.notes]
        if record.error_type:
            attributes["error.type"] = record.error_type
        span.set_attributes(attributes)
        if failed(record.status, record.error_type):  # a client's cancellation is no error of the gateway's
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, record.error_type or str(record.status)))
        span.end()


class ChildSpan:
    """A child span: use as a context manager, or call `end()` when its work outlives a `with` block."""

    __slots__ = ("_ended", "_span")

    def __init__(self, span: Any) -> None:
        self._span = span
        self._ended = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            self.end(type(exc).__name__, str(exc))
        else:
            self.end()

    def set(self, key: str, value: Any) -> None:
        if value is not None:
            self._span.set_attribute(key, value)

    def end(self, error_type: str | None = None, message: str | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        if error_type:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_attribute("error.type", error_type)
            self._span.set_status(Status(StatusCode.ERROR, redact_cut(message or error_type, _BODY_LIMIT)))
        self._span.end()


def _safe(name: str | None) -> str | None:
    """A name a client or an upstream chose, fit for a span: redacted and at most `_NAME_LIMIT` characters."""
    if not name:
        return name
    if len(name) > _NAME_LIMIT:
        return redact_cut(name, _NAME_LIMIT)
    return _safe_short(name)


@lru_cache(maxsize=1024)
def _safe_short(name: str) -> str:
    # Several names per traced request, and the same few names over and over: a cache hit is ~0.1 µs, the
    # secret check ~1 µs. Bounded: at most 1,024 names of at most _NAME_LIMIT characters.
    return redact_cut(name, _NAME_LIMIT) if holds_secret(name) else name


def _put(attributes: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        attributes[key] = value


def _otlp_exporter(endpoint: str) -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
    except ImportError:
        raise RuntimeError(
            "tracing.otlp_endpoint is set but the OTLP exporter is not installed: "
            "pip install opentelemetry-exporter-otlp-proto-http"
        ) from None
    # The HTTP exporter takes the full traces URL; accept a collector's base URL too.
    url = endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=url)
