"""GET /metrics end to end: a gateway process, scripted upstreams, real requests; the exposition parses with
prometheus_client's text parser and every metric moves as the requests say it should. With `--workers 2`
the counters of both worker processes add up in one scrape."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audit_helpers import (
    ENV,
    PLAIN_KEY,
    WRONG_KEY,
    assert_no_secrets,
    config,
    cost,
    headers,
    messages_body,
    parse_metrics,
    route,
    sample_value,
    wait_for,
)
from tests.gateway import Gateway, free_port, run_gateway
from tests.upstreams import ChatReply, ErrorReply, Hang, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(30)

USAGE = (120, 30, 20)  # → input 100, cache read 20, output 30
PRICE = {"input": 1.0, "cached_input": 0.1, "output": 4.0}
# "model" (the upstream's, bounded like every label), "verdict" and "shape" (32 values: loop/shape.py): the
# correctness loop's; "scope" and "period": budgets (bounded like routes); "version" (a bounded hash) and "reason":
# config versions and rollbacks.
ALLOWED_LABELS = {"route", "upstream", "status", "error_type", "kind", "outcome", "from_route", "to_route", "le",
                  "model", "verdict", "shape", "scope", "period", "version", "reason"}
REQUEST_ID = re.compile(r"req_[0-9a-f]{8,}|msg_[0-9a-f]{8,}")


def _reply(body: dict) -> ChatReply:
    return ChatReply(text="fine", usage=USAGE, model=body.get("model", "gpt-5"), chunk_delay=0.01)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, ScriptedChatUpstream, ScriptedChatUpstream]]:
    store = f"sqlite:///{tmp_path_factory.mktemp('metrics')}/audit.db"
    with ScriptedChatUpstream(_reply) as good, ScriptedChatUpstream(ErrorReply(500, {"error": {"message": "boom"}})) as bad:
        routes = [
            route("ok", good.base_url, pricing=PRICE),
            route("flaky", bad.base_url, fallbacks=["ok"]),
            route("fragile", bad.base_url, breaker={"failures": 1, "cooldown": 600}),
        ]
        text = config(routes, store=store, keys=[PLAIN_KEY])
        with run_gateway(text, env={**ENV, "DRAGOMAN_AUDIT_STORE": ""}) as gateway:
            yield gateway, good, bad


def _scrape(gateway: Gateway) -> dict[str, list]:
    resp = gateway.request("GET", "/metrics")
    assert resp.status == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain"), resp.headers
    return parse_metrics(resp.text)


def test_metrics_move_with_requests(stack) -> None:
    gateway, _, _ = stack
    before = _scrape(gateway)
    base = {name: sample_value(before, name, route="ok") for name in (
        "dragoman_requests_total", "dragoman_request_duration_seconds_count", "dragoman_time_to_first_byte_seconds_count",
        "dragoman_overhead_seconds_count", "dragoman_cost_usd_total")}
    base_tokens = {kind: sample_value(before, "dragoman_tokens_total", route="ok", kind=kind)
                   for kind in ("input", "output", "cache_read")}
    base_fallbacks = sample_value(before, "dragoman_fallbacks_total", from_route="flaky", to_route="ok")
    base_fragile = sample_value(before, "dragoman_errors_total", route="fragile", error_type="overloaded_error")
    base_401 = sample_value(before, "dragoman_requests_total", status="401", error_type="authentication_error")

    ids = []
    for stream in (False, False, True):
        resp = gateway.request("POST", "/v1/messages", messages_body("ok", stream=stream), headers(PLAIN_KEY))
        assert resp.status == 200, resp.text
        ids.append(resp.headers["request-id"])
    resp = gateway.request("POST", "/v1/messages", messages_body("flaky"), headers(PLAIN_KEY))
    assert resp.status == 200, resp.text
    ids.append(resp.headers["request-id"])
    for _ in range(2):  # the first failure opens fragile's breaker (failures: 1); the second still gets 529
        resp = gateway.request("POST", "/v1/messages", messages_body("fragile"), headers(PLAIN_KEY))
        assert resp.status == 529, resp.text
        ids.append(resp.headers["request-id"])
    resp = gateway.request("POST", "/v1/messages", messages_body("ok"), headers(WRONG_KEY))
    assert resp.status == 401
    ids.append(resp.headers["request-id"])

    # Metrics move in the audit writer's thread: poll (bounded) until the last request shows.
    wait_for(lambda: sample_value(_scrape(gateway), "dragoman_requests_total", status="401",
                                  error_type="authentication_error") >= base_401 + 1
             and sample_value(_scrape(gateway), "dragoman_requests_total", route="ok") >= base["dragoman_requests_total"] + 4
             and sample_value(_scrape(gateway), "dragoman_errors_total", route="fragile") >= base_fragile + 2,
             10, "the metrics of 7 requests")
    text = gateway.request("GET", "/metrics").text
    after = parse_metrics(text)

    ok_200 = sample_value(after, "dragoman_requests_total", route="ok", status="200", error_type="none")
    assert ok_200 - sample_value(before, "dragoman_requests_total", route="ok", status="200", error_type="none") == 4
    assert sample_value(after, "dragoman_requests_total", route="ok", upstream="127.0.0.1") - \
        sample_value(before, "dragoman_requests_total", route="ok", upstream="127.0.0.1") == 4
    assert sample_value(after, "dragoman_errors_total", route="fragile", error_type="overloaded_error") - base_fragile == 2
    assert sample_value(after, "dragoman_requests_total", route="fragile", status="529",
                        error_type="overloaded_error") - sample_value(before, "dragoman_requests_total", route="fragile",
                                                                      status="529", error_type="overloaded_error") == 2
    assert sample_value(after, "dragoman_requests_total", status="401", error_type="authentication_error") - base_401 == 1
    assert sample_value(after, "dragoman_errors_total", route="ok") == sample_value(before, "dragoman_errors_total", route="ok")

    # histograms: a sample per request answered on route ok, with plausible sums
    for name in ("dragoman_request_duration_seconds", "dragoman_time_to_first_byte_seconds", "dragoman_overhead_seconds"):
        count = sample_value(after, name + "_count", route="ok") - base[name + "_count"]
        assert count == 4, (name, count)
        assert 0 < sample_value(after, name + "_sum", route="ok") < 60, name
        inf = sample_value(after, name + "_bucket", route="ok", le="+Inf")
        assert inf == sample_value(after, name + "_count", route="ok"), name
    assert sample_value(after, "dragoman_overhead_seconds_sum", route="ok") <= \
        sample_value(after, "dragoman_request_duration_seconds_sum", route="ok")

    # tokens and cost: 4 answers on route ok at USAGE and PRICE
    tokens = {kind: sample_value(after, "dragoman_tokens_total", route="ok", kind=kind) - base_tokens[kind]
              for kind in base_tokens}
    assert tokens == {"input": 400, "output": 120, "cache_read": 80}
    assert sample_value(after, "dragoman_cost_usd_total", route="ok") - base["dragoman_cost_usd_total"] == \
        pytest.approx(4 * cost(USAGE, PRICE), rel=1e-6)

    # the fallback, the attempts and the breaker
    assert sample_value(after, "dragoman_fallbacks_total", from_route="flaky", to_route="ok") - base_fallbacks == 1
    assert sample_value(after, "dragoman_upstream_attempts_total", route="flaky", outcome="error") >= 1
    assert sample_value(after, "dragoman_upstream_attempts_total", route="fragile", outcome="error") >= 2
    assert sample_value(after, "dragoman_breaker_state", upstream="fragile") == 2  # open
    assert sample_value(after, "dragoman_breaker_state", upstream="ok") == 0  # closed
    assert sample_value(after, "dragoman_audit_dropped_total") == 0

    # bounded labels: known names only, and no request ids (or any of these requests' ids) in any value
    for samples in after.values():
        for s in samples:
            assert set(s.labels) <= ALLOWED_LABELS, s
            for value in s.labels.values():
                assert not REQUEST_ID.search(value), s
                assert value not in ids, s
    for rid in ids:
        assert rid not in text and rid[4:] not in text
    assert_no_secrets(text, "/metrics")


def test_metrics_sum_over_two_workers(tmp_path: Path) -> None:
    port = free_port()
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    with ScriptedChatUpstream(Hang(0.05, then=ChatReply(text="x", usage=USAGE, model="gpt-5"))) as up:
        cfg = tmp_path / "gateway.yaml"
        cfg.write_text(config([route("ok", up.base_url, pricing=PRICE)], store=f"sqlite:///{tmp_path}/audit.db"))
        env = {k: v for k, v in os.environ.items() if k not in ("DRAGOMAN_API_KEYS", "DRAGOMAN_AUDIT_STORE")}
        env.update(ENV, PROMETHEUS_MULTIPROC_DIR=str(multiproc), NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
        with open(tmp_path / "stderr.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dragoman", "serve", "--config", str(cfg), "--port", str(port), "--workers", "2"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=tmp_path, start_new_session=True,
            )
        try:
            gateway = Gateway(port=port, proc=proc, stderr_path=tmp_path / "stderr.log")

            def healthy() -> bool:
                assert proc.poll() is None, gateway.stderr_text()
                try:
                    return gateway.request("GET", "/healthz", timeout=1).status == 200
                except OSError:
                    return False

            wait_for(healthy, 15, "the 2-worker gateway to serve")
            sent = [0]
            lock = threading.Lock()

            def burst(n: int) -> None:
                def one() -> None:
                    resp = gateway.request("POST", "/v1/messages", messages_body("ok"), headers(None), timeout=10)
                    assert resp.status == 200, resp.text
                    with lock:
                        sent[0] += 1
                threads = [threading.Thread(target=one) for _ in range(n)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(10)

            def workers_with_counters() -> int:
                # in the gateway's own subdirectory of the operator's directory
                return len({p.name.split("_")[-1] for p in multiproc.glob("*/counter_*.db")})

            def both_served() -> bool:  # the kernel picks which worker accepts: send until both have served
                burst(16)
                return workers_with_counters() >= 2

            wait_for(both_served, 12, "both workers serving a request")
            expected = sent[0]

            def total() -> float:
                return sample_value(_scrape(gateway), "dragoman_requests_total", route="ok", status="200")

            wait_for(lambda: total() == expected, 10, f"dragoman_requests_total to reach {expected}")
            for _ in range(6):  # whichever worker answers the scrape, it reports both workers' sums
                families = _scrape(gateway)
                assert sample_value(families, "dragoman_requests_total", route="ok", status="200") == expected
                assert sample_value(families, "dragoman_request_duration_seconds_count", route="ok") == expected
                assert sample_value(families, "dragoman_tokens_total", route="ok", kind="output") == 30 * expected
                assert sample_value(families, "dragoman_cost_usd_total", route="ok") == \
                    pytest.approx(expected * cost(USAGE, PRICE), rel=1e-6)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
