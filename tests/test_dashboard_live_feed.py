"""GET /api/feed: server-sent events tailing the audit store, so a request finished by any worker reaches every
open dashboard; a reconnect resumes after Last-Event-ID; the feed ends when the gateway shuts down."""

from __future__ import annotations

import http.client
import json
import signal
from collections.abc import Iterator

import pytest

from tests.audit_helpers import headers, messages_body
from tests.dashboard_gateway import ADMIN_KEY, USER_KEY, DashboardEnv, run_dashboard_gateway


@pytest.fixture
def env(tmp_path) -> Iterator[DashboardEnv]:
    with run_dashboard_gateway(tmp_path) as running:
        yield running


def _open_feed(env: DashboardEnv, **extra: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = env.gateway.connection(timeout=20)
    conn.request("GET", "/api/feed", headers={"x-api-key": ADMIN_KEY, **extra})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
    return conn, response


def _next_event(response: http.client.HTTPResponse) -> dict:
    """The next `request` event (blocking read of the stream, bounded by the connection's timeout)."""
    fields: dict[str, str] = {}
    while True:
        line = response.readline()
        assert line, "the feed ended"
        text = line.decode().rstrip("\n")
        if text == "":
            if fields.get("event") == "request":
                return {"id": int(fields["id"]), **json.loads(fields["data"])}
            fields = {}
        elif not text.startswith(":"):
            name, _, value = text.partition(": ")
            fields[name] = value


def test_a_request_made_after_the_feed_opened_appears_in_it(env: DashboardEnv) -> None:
    conn, response = _open_feed(env)
    try:
        answer = env.gateway.request("POST", "/v1/messages", messages_body("main", "hello"), headers(USER_KEY))
        assert answer.status == 200
        event = _next_event(response)  # seeded records came before the feed opened: not replayed
        assert event["request_id"] == answer.headers["request-id"]
        assert (event["route"], event["developer"], event["repo"], event["status"]) == ("main", "dee", "live", 200)
        assert event["input_tokens"] == 1000 and event["output_tokens"] == 300 and event["cost_usd"] > 0
    finally:
        conn.close()


def test_a_reconnect_resumes_after_the_last_event_id(env: DashboardEnv) -> None:
    seeded_ids = sorted(r["id"] for r in _all_rows(env))
    conn, response = _open_feed(env, **{"last-event-id": str(seeded_ids[-3])})
    try:
        assert [_next_event(response)["id"] for _ in range(2)] == seeded_ids[-2:]
    finally:
        conn.close()


def test_the_feed_ends_when_the_gateway_shuts_down(tmp_path) -> None:
    """Shutdown ends open feeds at once: with a 120 s drain limit, a feed left open would outlast the connection's
    20 s read timeout (and the gateway would log that the limit passed)."""
    with run_dashboard_gateway(tmp_path, extra_yaml="server:\n  shutdown_timeout: 120\n") as env:
        conn, response = _open_feed(env)
        try:
            env.gateway.proc.send_signal(signal.SIGTERM)
            response.read()  # returns when the gateway ends the stream; a socket timeout fails the test
            assert env.gateway.proc.wait(timeout=20) in (0, -signal.SIGTERM)
            assert "shutdown_timeout passed" not in env.gateway.stderr_text()
        finally:
            conn.close()


def _all_rows(env: DashboardEnv) -> list[dict]:
    return env.gateway.request("GET", "/api/requests?limit=1000", None, {"x-api-key": ADMIN_KEY}).json()["data"]
