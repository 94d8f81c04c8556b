"""OpenTelemetry: off costs nothing; on, a request span with translate and upstream children carries the
GenAI semantic-convention attributes; captured bodies are redacted."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from dragoman.config.observe import TracingSettings
from dragoman.observe.record import REDACTED, AuditRecord
from dragoman.observe.tracing import NOOP_SPAN, NOOP_TRACER, Tracer


def _record(**fields) -> AuditRecord:
    base = {"time": 0.0, "request_id": "req_abc", "route": "gpt-5-via-gateway", "policy": "claude-to-gpt5", "branch": "default",
                "provider": "openai", "upstream_model": "gpt-5-2025-08-07", "status": 200, "input_tokens": 900,
                "cache_read_tokens": 100, "output_tokens": 50, "reasoning_tokens": 20, "cost_usd": 0.0016,
                "notes": ["cache_control dropped"], "stream_events": 9}
    base.update(fields)
    return AuditRecord(**base)


def test_off_is_a_shared_noop() -> None:
    tracer = Tracer.from_settings(TracingSettings())
    assert tracer is NOOP_TRACER and not tracer.enabled
    span = tracer.start_request("req_1", "claude-sonnet-4-5", stream=True, max_tokens=32000)
    assert span is NOOP_SPAN
    assert span.translate() is span.upstream("r", "openai", "gpt-5")  # the same reusable object
    with span.translate():
        pass
    span.capture("request", b"{}")
    span.finish(_record())
    assert Tracer.from_settings(None) is NOOP_TRACER


def test_request_span_with_children_and_genai_attributes() -> None:
    exporter = InMemorySpanExporter()
    tracer = Tracer.from_settings(TracingSettings(enabled=True, service_name="dragoman-test"), exporter)
    span = tracer.start_request("req_abc", "claude-sonnet-4-5", stream=True, max_tokens=32000, temperature=0.2)
    with span.translate():
        pass
    upstream = span.upstream("gpt-5-via-gateway", "openai", "gpt-5")
    upstream.set("gen_ai.response.model", "gpt-5-2025-08-07")
    upstream.end()
    span.finish(_record())
    tracer.shutdown()

    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"chat claude-sonnet-4-5", "translate", "upstream"}
    root, translate, up = spans["chat claude-sonnet-4-5"], spans["translate"], spans["upstream"]
    assert translate.parent.span_id == root.context.span_id and up.parent.span_id == root.context.span_id
    assert up.context.trace_id == root.context.trace_id
    assert root.kind == SpanKind.SERVER and up.kind == SpanKind.CLIENT
    assert root.resource.attributes["service.name"] == "dragoman-test"
    a = root.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert a["gen_ai.request.max_tokens"] == 32000
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.response.model"] == "gpt-5-2025-08-07"
    assert a["gen_ai.usage.input_tokens"] == 1000  # uncached + cached, as the conventions count input
    assert a["gen_ai.usage.output_tokens"] == 50
    assert a["dragoman.route"] == "gpt-5-via-gateway"
    assert a["dragoman.policy"] == "claude-to-gpt5"
    assert a["http.response.status_code"] == 200
    assert tuple(a["dragoman.notes"]) == ("cache_control dropped",)
    assert up.attributes["gen_ai.request.model"] == "gpt-5"
    assert up.attributes["gen_ai.system"] == "openai"
    assert up.attributes["gen_ai.response.model"] == "gpt-5-2025-08-07"
    assert "dragoman.request.body" not in a  # capture is off by default


def test_errors_mark_spans() -> None:
    exporter = InMemorySpanExporter()
    tracer = Tracer.from_settings(TracingSettings(enabled=True), exporter)
    span = tracer.start_request("req_x", "m")
    with pytest.raises(TimeoutError), span.upstream("r", "openai", "gpt-5"):
        raise TimeoutError("no first byte after 600s")
    span.finish(_record(status=529, error_type="overloaded_error"))
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["upstream"].status.status_code == StatusCode.ERROR
    assert spans["upstream"].attributes["error.type"] == "TimeoutError"
    assert spans["chat m"].status.status_code == StatusCode.ERROR
    assert spans["chat m"].attributes["error.type"] == "overloaded_error"


def test_a_request_the_client_cancelled_is_no_error_span() -> None:
    exporter = InMemorySpanExporter()
    tracer = Tracer.from_settings(TracingSettings(enabled=True), exporter)
    for status, request_id in ((499, "req_gone"), (200, "req_stopped_reading")):
        tracer.start_request(request_id, "m", stream=True).finish(
            _record(request_id=request_id, status=status, error_type="client_disconnected"))
    spans = exporter.get_finished_spans()
    assert [s.status.status_code for s in spans] == [StatusCode.UNSET, StatusCode.UNSET]
    assert {s.attributes["error.type"] for s in spans} == {"client_disconnected"}  # still said what happened


def test_captured_bodies_are_redacted() -> None:
    exporter = InMemorySpanExporter()
    tracer = Tracer.from_settings(TracingSettings(enabled=True, capture_bodies=True), exporter)
    span = tracer.start_request("req_x", "m")
    span.capture("request", b'{"model":"gpt-5","messages":[{"role":"user","content":"my key is sk-proj-abc123def456"}]}')
    span.capture("response", '{"api_key": "hunter2hunter2"}')
    span.finish(_record())
    [root] = exporter.get_finished_spans()
    # Captured as sent, with only the key replaced: the rest of the body is still there to debug with.
    assert root.attributes["dragoman.request.body"] == (
        f'{{"model":"gpt-5","messages":[{{"role":"user","content":"my key is {REDACTED}"}}]}}')
    response = root.attributes["dragoman.response.body"]
    assert REDACTED in response and "hunter2" not in response, response


def test_bodies_are_not_captured_unless_asked() -> None:
    exporter = InMemorySpanExporter()
    tracer = Tracer.from_settings(TracingSettings(enabled=True), exporter)
    span = tracer.start_request("req_x", "m")
    span.capture("request", b'{"model":"gpt-5"}')
    span.finish(_record())
    [root] = exporter.get_finished_spans()
    assert "dragoman.request.body" not in root.attributes


def test_otlp_endpoint_builds_an_exporter() -> None:
    tracer = Tracer.from_settings(TracingSettings(enabled=True, otlp_endpoint="http://127.0.0.1:9/"))
    assert tracer.enabled
    tracer.shutdown()


PASTED_KEY = "sk-ant-api03-PastedKeyAbCdEf0123456789"


def test_model_names_holding_keys_are_redacted_in_span_names_and_attributes() -> None:
    """The client's model name (span name, gen_ai.request.model; the upstream span's on a route without
    `model:`) and the upstream's echo (gen_ai.response.model) are redacted as the audit record's are."""
    exporter = InMemorySpanExporter()
    tracer = Tracer.from_settings(TracingSettings(enabled=True), exporter)
    span = tracer.start_request("req_k", PASTED_KEY)
    span.upstream("passthrough", "openai", PASTED_KEY).end()
    span.finish(_record(upstream_model=f"echo-{PASTED_KEY}", policy=f"p {PASTED_KEY}", branch=PASTED_KEY))
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {f"chat {REDACTED}", "upstream"}
    root, up = spans[f"chat {REDACTED}"], spans["upstream"]
    assert root.attributes["gen_ai.request.model"] == REDACTED
    assert root.attributes["gen_ai.response.model"] == f"echo-{REDACTED}"
    assert up.attributes["gen_ai.request.model"] == REDACTED
    assert PASTED_KEY not in repr([(s.name, dict(s.attributes)) for s in spans.values()])


def test_overlong_model_names_and_attributes_are_cut() -> None:
    exporter = InMemorySpanExporter()
    tracer = Tracer.from_settings(TracingSettings(enabled=True), exporter)
    span = tracer.start_request("req_l", "m" * 100_000)
    upstream = span.upstream("passthrough", "openai", "u" * 100_000)
    upstream.set("dragoman.anything", "x" * 100_000)  # no name check: the provider's SpanLimits cut it
    upstream.end()
    span.finish(_record(upstream_model="e" * 100_000))
    assert len(exporter.get_finished_spans()) == 2
    for finished in exporter.get_finished_spans():
        assert len(finished.name) <= 300
        for value in finished.attributes.values():
            assert not isinstance(value, str) or len(value) <= 16_384
    root = next(s for s in exporter.get_finished_spans() if s.name.startswith("chat"))
    assert root.attributes["gen_ai.request.model"] == "m" * 256
