"""A model name is the client's (on a route without `model:`, as zero-config passes names through) or the
upstream's echo; either may hold a key someone pasted. The audit record redacts it, and so must the rest of what
the gateway exports: the unauthenticated /metrics (the loop's `model` label) and the OTLP spans (span name,
gen_ai.request.model, gen_ai.response.model)."""

from __future__ import annotations

import threading

import pytest

from tests.audit_helpers import (
    ENV,
    config,
    headers,
    messages_body,
    parse_metrics,
    route,
    sample_value,
    wait_for,
    wait_record,
)
from tests.gateway import Gateway, run_gateway
from tests.otlp_receiver import otlp_receiver
from tests.upstreams import ChatReply, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(30)

CLIENT_KEY = "sk-ant-api03-PastedKeyAbCdEf0123456789"  # a key pasted into ANTHROPIC_MODEL
ECHOED_KEY = "sk-proj-EchoedByUpstream0123456789"  # an upstream answering with a key for a model name


def _verdicts_counted(gateway: Gateway) -> str | None:
    text = gateway.request("GET", "/metrics").text
    return text if sample_value(parse_metrics(text), "dragoman_verdicts_total") >= 1 else None


def test_a_clients_model_name_holding_a_key_never_becomes_a_metric_label() -> None:
    echo = ScriptedChatUpstream(lambda body: ChatReply(text="ok", usage=(1, 1, 0), model=body.get("model")))
    with echo as up, run_gateway(None, env={"OPENAI_BASE_URL": up.base_url, "OPENAI_API_KEY": "sk-up-xyz1234567",
                                            "DRAGOMAN_AUDIT_STORE": ""}) as gw:
        resp = gw.request("POST", "/v1/messages", messages_body(CLIENT_KEY), headers(None))
        assert resp.status == 200, resp.text
        assert wait_record(gw.audit_store, resp.headers["request-id"])["verdict"] is not None
        text = wait_for(lambda: _verdicts_counted(gw), 10, "the verdict on /metrics")
        assert CLIENT_KEY not in text
        assert sample_value(parse_metrics(text), "dragoman_verdicts_total", model="other") == 1


def test_model_names_holding_keys_never_reach_exported_spans_or_metrics() -> None:
    bodies: list[bytes] = []
    lock = threading.Lock()

    def on_export(data: bytes, _headers: dict[str, str]) -> None:
        with lock:
            bodies.append(data)

    def exported() -> bytes | None:
        with lock:  # the request span ends last, after its two children: wait for it
            joined = b"".join(bodies)
        return joined if b"gen_ai.response.model" in joined else None

    echo = ScriptedChatUpstream(lambda body: ChatReply(text="ok", usage=(10, 5, 0), model=ECHOED_KEY))
    with otlp_receiver(on_export) as port, echo as up:
        text = config([route("r", up.base_url)], default_route="r",
                      tracing={"enabled": True, "otlp_endpoint": f"http://127.0.0.1:{port}/v1/traces"})
        env = {**ENV, "DRAGOMAN_AUDIT_STORE": "", "OTEL_BSP_SCHEDULE_DELAY": "50"}
        with run_gateway(text, env=env) as gw:
            resp = gw.request("POST", "/v1/messages", messages_body(CLIENT_KEY), headers(None))
            assert resp.status == 200, resp.text
            spans = wait_for(exported, 10, "the request span")
            assert b"chat [REDACTED]" in spans  # the span's name, redacted as the record's requested_model is
            for key in (CLIENT_KEY, ECHOED_KEY):
                assert key.encode() not in spans
            metrics = wait_for(lambda: _verdicts_counted(gw), 10, "the verdict on /metrics")
            assert ECHOED_KEY not in metrics
