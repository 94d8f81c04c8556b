"""OpenTelemetry traces end to end: a gateway process with `tracing: {enabled, otlp_endpoint}` exports over
OTLP/HTTP (protobuf) to a tiny collector on 127.0.0.1; the spans are decoded with opentelemetry-proto and
checked: a SERVER span per request with the GenAI semantic-convention attributes plus dragoman.route /
dragoman.policy, child spans for translation and each upstream attempt, errors marked, captured bodies
present and redacted, and no secret anywhere."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from tests.audit_helpers import (
    ALICE_KEY,
    ENV,
    POLICY,
    POLICY_RULE,
    SECRETS,
    SMALL_BRANCH,
    UPSTREAM_KEY,
    assert_no_secrets,
    config,
    headers,
    messages_body,
    route,
    wait_for,
)
from tests.gateway import Gateway, run_gateway
from tests.otlp_receiver import otlp_receiver
from tests.upstreams import ChatReply, ErrorReply, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(30)

USAGE = (1200, 300, 200)
USER_SECRET = "sk-live-userpasted-9f8e7d6c5b4a"  # a key a user pasted into a prompt
SERVER, CLIENT, INTERNAL = 2, 3, 1  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2


@dataclass
class Span:
    name: str
    kind: int
    trace_id: bytes
    span_id: bytes
    parent: bytes
    attributes: dict[str, Any]
    status: int
    resource: dict[str, Any]


@dataclass
class Collector:
    """OTLP/HTTP traces receiver: POST /v1/traces with an ExportTraceServiceRequest (protobuf)."""

    spans: list[Span] = field(default_factory=list)
    posts: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_request(self, request_id: str) -> tuple[Span, list[Span]]:
        with self.lock:
            roots = [s for s in self.spans if s.attributes.get("dragoman.request_id") == request_id]
            assert len(roots) == 1, f"{len(roots)} request spans for {request_id}"
            root = roots[0]
            children = [s for s in self.spans if s.trace_id == root.trace_id and s.parent == root.span_id]
            return root, children


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind is None:
        return None
    return getattr(v, kind)


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


@pytest.fixture(scope="module")
def collector() -> Iterator[tuple[Collector, int]]:
    sink = Collector()

    def on_export(data: bytes, headers: dict[str, str]) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(data)
        found = []
        for rs in request.resource_spans:
            resource = _attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    found.append(Span(s.name, s.kind, s.trace_id, s.span_id, s.parent_span_id,
                                      _attrs(s.attributes), s.status.code, resource))
        with sink.lock:
            sink.spans.extend(found)
            sink.posts.append(headers)

    with otlp_receiver(on_export) as port:
        yield sink, port


def _reply(body: dict) -> ChatReply:
    return ChatReply(text="traced answer", usage=USAGE, model=body.get("model", "x") + "-2025-08-07")


@pytest.fixture(scope="module")
def gateway(collector, tmp_path_factory) -> Iterator[Gateway]:
    _, port = collector
    store = f"sqlite:///{tmp_path_factory.mktemp('tracing')}/audit.db"
    with ScriptedChatUpstream(_reply) as good, ScriptedChatUpstream(ErrorReply(500, {"error": {"message": "boom"}})) as bad:
        routes = [
            route("priced", good.base_url, model="gpt-5"),
            route("builtin", good.base_url, model="gpt-5-mini"),
            route("flaky", bad.base_url, fallbacks=["builtin"]),
            route("down", bad.base_url),
        ]
        text = config(routes, store=store, keys=[ALICE_KEY],
                      policies=[{"name": POLICY, "applies_to": ["claude-*"], "rule": POLICY_RULE}],
                      tracing={"enabled": True, "otlp_endpoint": f"http://127.0.0.1:{port}/v1/traces",
                               "capture_bodies": True, "service_name": "dragoman-e2e"})
        env = {**ENV, "DRAGOMAN_AUDIT_STORE": "", "OTEL_BSP_SCHEDULE_DELAY": "50",
               "OTEL_EXPORTER_OTLP_HEADERS": "", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": ""}
        with run_gateway(text, env=env) as gw:
            yield gw


def _spans_of(collector: Collector, request_id: str, children: int) -> tuple[Span, list[Span]]:
    def ready() -> tuple[Span, list[Span]] | None:
        try:
            root, kids = collector.by_request(request_id)
        except AssertionError:
            return None
        return (root, kids) if len(kids) >= children else None

    return wait_for(ready, 10, f"the spans of {request_id}")


def test_request_span_with_genai_attributes_and_children(gateway: Gateway, collector) -> None:
    sink, _ = collector
    body = messages_body("claude-haiku-4-5", f"my key is {USER_SECRET}, keep it safe", max_tokens=200, temperature=0.5)
    resp = gateway.request("POST", "/v1/messages", body, headers(ALICE_KEY, authorization=f"Bearer {ALICE_KEY}"))
    assert resp.status == 200, resp.text
    request_id = resp.headers["request-id"]
    root, children = _spans_of(sink, request_id, 2)

    assert root.name == "chat claude-haiku-4-5"
    assert root.kind == SERVER
    assert root.resource["service.name"] == "dragoman-e2e"
    a = root.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == "claude-haiku-4-5"
    assert a["gen_ai.request.max_tokens"] == 200
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.response.model"] == "gpt-5-mini-2025-08-07"
    assert a["gen_ai.usage.input_tokens"] == 1200  # uncached + cached, as the conventions count input
    assert a["gen_ai.usage.output_tokens"] == 300
    assert a["gen_ai.usage.cache_read.input_tokens"] == 200
    assert a["dragoman.route"] == "builtin"
    assert a["dragoman.policy"] == POLICY
    assert a["dragoman.branch"] == SMALL_BRANCH
    assert a["dragoman.request_id"] == request_id
    assert a["http.response.status_code"] == 200
    assert root.status != STATUS_ERROR

    names = sorted(s.name for s in children)
    assert names == ["translate", "upstream"], names
    translate = next(s for s in children if s.name == "translate")
    upstream = next(s for s in children if s.name == "upstream")
    assert translate.kind == INTERNAL
    assert upstream.kind == CLIENT
    assert upstream.attributes["gen_ai.system"] == "openai"
    assert upstream.attributes["gen_ai.request.model"] == "gpt-5-mini"
    assert upstream.attributes["dragoman.route"] == "builtin"
    assert upstream.status != STATUS_ERROR

    # no secret in any attribute of any span, captured bodies included
    every = repr([(s.name, s.attributes, s.resource) for s in sink.spans])
    assert_no_secrets(every, "the exported spans", [*SECRETS, USER_SECRET])
    for post in sink.posts:
        assert_no_secrets(repr(post), "the OTLP request headers")
    # capture_bodies: the translated request and the answer ride on the request span, redacted
    assert "dragoman.request.body" in a, sorted(a)
    assert '"gpt-5-mini"' in a["dragoman.request.body"]
    assert "keep it safe" in a["dragoman.request.body"]
    assert "dragoman.response.body" in a, sorted(a)
    assert "traced answer" in a["dragoman.response.body"]
    # the cost the audit record gets (tracing.py puts dragoman.cost_usd on the span from the record)
    assert a["dragoman.cost_usd"] == pytest.approx((1000 * 0.25 + 200 * 0.025 + 300 * 2.0) / 1e6)


def test_fallback_and_error_spans(gateway: Gateway, collector) -> None:
    sink, _ = collector
    resp = gateway.request("POST", "/v1/messages", messages_body("flaky"), headers(ALICE_KEY))
    assert resp.status == 200, resp.text
    root, children = _spans_of(sink, resp.headers["request-id"], 4)
    ups = sorted((s for s in children if s.name == "upstream"), key=lambda s: s.attributes["dragoman.route"])
    assert [s.attributes["dragoman.route"] for s in ups] == ["builtin", "flaky"]
    assert ups[1].status == STATUS_ERROR and ups[1].attributes["error.type"] == "overloaded_error"
    assert ups[0].status != STATUS_ERROR
    assert sum(1 for s in children if s.name == "translate") == 2  # each candidate translates for its route
    assert root.attributes["dragoman.route"] == "builtin"
    assert root.attributes["dragoman.candidates"] == 2
    assert "dragoman.policy" not in root.attributes  # a route asked for by name

    resp = gateway.request("POST", "/v1/messages", messages_body("down"), headers(ALICE_KEY))
    assert resp.status == 529
    root, children = _spans_of(sink, resp.headers["request-id"], 2)
    assert root.status == STATUS_ERROR
    assert root.attributes["error.type"] == "overloaded_error"
    assert root.attributes["http.response.status_code"] == 529
    [up] = [s for s in children if s.name == "upstream"]
    assert up.status == STATUS_ERROR
    assert_no_secrets(repr([(s.name, s.attributes) for s in sink.spans]), "the exported spans")
    assert UPSTREAM_KEY not in gateway.stderr_text()


def test_streamed_request_span(gateway: Gateway, collector) -> None:
    sink, _ = collector
    resp = gateway.request("POST", "/v1/messages", messages_body("priced", stream=True), headers(ALICE_KEY))
    assert resp.status == 200
    root, children = _spans_of(sink, resp.headers["request-id"], 2)
    a = root.attributes
    assert a["dragoman.stream"] is True
    assert a["dragoman.stream_events"] > 3
    assert a["gen_ai.usage.output_tokens"] == 300
    assert a["gen_ai.usage.input_tokens"] == 1200
    assert a["dragoman.route"] == "priced"
    assert a["dragoman.ttfb_ms"] > 0 and a["dragoman.overhead_ms"] >= 0
    up = next(s for s in children if s.name == "upstream")
    assert up.attributes["gen_ai.request.model"] == "gpt-5"
