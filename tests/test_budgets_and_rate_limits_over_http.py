"""Budgets and rate limits end to end: a gateway process, a scripted upstream, real sockets. A budget stops
requests with 402 once exceeded (streamed and not) before any upstream call, and its spend matches the audit's
cost; a rate limit answers 429 with retry-after and the anthropic-ratelimit-* headers, and the official
`anthropic` SDK backs off by itself and then succeeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
import yaml

from tests.audit_helpers import ADMIN_KEY, ENV, headers, messages_body, route, wait_for, wait_records
from tests.gateway import Gateway, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.upstreams.openai_chat import ErrorReply, Gate

ANA_KEY = "sk-gw-ana-7c1d"
ANA = {"id": "k-ana", "key": ANA_KEY, "developer": "ana", "team": "platform"}
# $10,000 / $20,000 per million tokens: the upstream's usage (10 in, 5 out) costs exactly $0.20 a request.
PRICE = {"input": 10_000.0, "cached_input": 10_000.0, "output": 20_000.0}
COST = 0.2


SHARED_KEY = "sk-gw-shared-93ab"
SHARED = {"id": "k-shared", "key": SHARED_KEY}  # a team's shared key: no developer or team of its own


def _config(endpoint: str, governance: dict[str, Any], store: str | None = None) -> str:
    return yaml.safe_dump({
        "default_route": "priced",
        "auth": {"keys": [ANA, SHARED]},
        "admin": {"keys": [ADMIN_KEY]},
        "audit": {"flush_interval": 0.05, **({"store": store} if store else {})},
        "governance": governance,
        "routes": [route("priced", endpoint, pricing=PRICE)],
    }, sort_keys=False)


@pytest.fixture
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream() as server:
        server.reset(ChatReply(text="hello", usage=(10, 5, 0)))
        yield server


def _post(gateway: Gateway, stream: bool):
    return gateway.request("POST", "/v1/messages", messages_body("gpt-5", stream=stream), headers(ANA_KEY))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "streamed"])
def test_a_budget_stops_requests_with_402_once_exceeded_and_spend_matches_the_audit(upstream, stream):
    governance = {"budgets": [{"scope": "developer:*", "limit": 0.5, "period": "day", "soft": 0.8}]}
    with run_gateway(_config(upstream.chat_url, governance), env=ENV) as gateway:
        answers = [_post(gateway, stream) for _ in range(4)]
        # $0.00, $0.20, $0.40 spent when admitted: three answers; the third overshoots the cap by its own cost
        assert [a.status for a in answers] == [200, 200, 200, 402]
        assert len(upstream.requests) == 3  # refused before any upstream call
        assert "x-dragoman-budget-warning" not in answers[1].headers
        assert answers[2].headers["x-dragoman-budget-warning"] == "developer:ana 80% of $0.50/day"
        if stream:
            assert answers[0].headers["content-type"].startswith("text/event-stream")
            assert b"event: message_stop" in answers[2].body
        refusal = answers[3].json()
        assert refusal["type"] == "error" and refusal["error"]["type"] == "billing_error"
        message = refusal["error"]["message"]
        assert message.startswith("budget developer:ana is exhausted: $0.60 spent of its $0.50 per day; it resets at ")
        assert message.endswith("T00:00:00Z")

        ids = [a.headers["request-id"] for a in answers]
        records = wait_records(gateway.audit_store, ids)
        assert [records[i]["status"] for i in ids] == [200, 200, 200, 402]
        assert records[ids[3]]["error_type"] == "billing_error"
        audit_spend = sum(records[i]["cost_usd"] or 0.0 for i in ids)
        assert audit_spend == pytest.approx(3 * COST)

        budgets = gateway.request("GET", "/api/budgets", headers={"x-api-key": ADMIN_KEY}).json()["data"]
        [ana] = [b for b in budgets if b["scope"] == "developer:ana"]
        assert ana["spent_usd"] == pytest.approx(audit_spend)
        assert (ana["limit_usd"], ana["period"], ana["soft_fraction"]) == (0.5, "day", 0.8)
        assert ana["resets_at"] == message.rsplit(" ", 1)[1]


def test_after_a_restart_a_budget_is_seeded_with_its_keys_spend_not_with_header_claimed_spend(upstream, tmp_path):
    governance = {"budgets": [{"scope": "developer:*", "limit": 0.5, "period": "day"}]}
    store = f"sqlite:///{tmp_path}/audit.db"  # one store for both processes
    config = _config(upstream.chat_url, governance, store)
    claims_ana = headers(SHARED_KEY, **{"x-dragoman-developer": "ana"})
    with run_gateway(config, env=ENV) as gateway:
        mine = [_post(gateway, stream=False) for _ in range(2)]  # $0.40 charged to developer:ana
        claimed = [gateway.request("POST", "/v1/messages", messages_body("gpt-5"), claims_ana) for _ in range(3)]
        assert [a.status for a in mine + claimed] == [200] * 5  # the shared key has no developer budget
        records = wait_records(store, [a.headers["request-id"] for a in mine + claimed])
        assert {r["developer"] for r in records.values()} == {"ana"}  # attributed to ana all the same
    with run_gateway(config, env=ENV) as gateway:  # a fresh process: ana's counter is seeded from the audit
        assert [_post(gateway, stream=False).status for _ in range(2)] == [200, 402]  # from $0.40, not $1.00
        budgets = gateway.request("GET", "/api/budgets", headers={"x-api-key": ADMIN_KEY}).json()["data"]
        assert [b["spent_usd"] for b in budgets if b["scope"] == "developer:ana"] == [pytest.approx(3 * COST)]


def test_budgets_api_needs_an_admin_or_viewer_key(upstream):
    governance = {"budgets": [{"scope": "global", "limit": 5}]}
    with run_gateway(_config(upstream.chat_url, governance), env=ENV) as gateway:
        assert gateway.request("GET", "/api/budgets").status == 401
        # A developer's gateway key is a user key: the admin API is not theirs.
        assert gateway.request("GET", "/api/budgets", headers={"x-api-key": ANA_KEY}).status == 403
        data = gateway.request("GET", "/api/budgets", headers={"x-api-key": ADMIN_KEY}).json()["data"]
        assert [(b["scope"], b["spent_usd"], b["limit_usd"]) for b in data] == [("global", 0.0, 5.0)]


def test_a_rate_limit_answers_429_with_retry_after_and_anthropic_ratelimit_headers(upstream):
    governance = {"limits": {"window": 60, "rules": [{"scope": "developer:*", "rpm": 2}]}}
    with run_gateway(_config(upstream.chat_url, governance), env=ENV) as gateway:
        answers = [_post(gateway, stream=False) for _ in range(3)]
        assert [a.status for a in answers] == [200, 200, 429]
        assert len(upstream.requests) == 2
        first, second, refused = (a.headers for a in answers)
        assert first["anthropic-ratelimit-requests-limit"] == "2"
        assert (first["anthropic-ratelimit-requests-remaining"], second["anthropic-ratelimit-requests-remaining"]) == ("1", "0")
        assert first["anthropic-ratelimit-requests-reset"].endswith("Z")
        body = answers[2].json()
        assert body["error"]["type"] == "rate_limit_error"
        assert body["error"]["message"].startswith("rate limit: developer:ana may use 2 requests per 60 s; retry in ")
        assert 28 <= int(refused["retry-after"]) <= 30  # one request back every 30 s
        assert 0 < int(refused["retry-after-ms"]) <= 30_000
        assert refused["anthropic-ratelimit-requests-remaining"] == "0"
        assert refused["x-should-retry"] == "true"
        streamed = gateway.request("POST", "/v1/messages", messages_body("gpt-5", stream=True), headers(ANA_KEY))
        assert streamed.status == 429 and json.loads(streamed.body)["error"]["type"] == "rate_limit_error"


def test_the_anthropic_sdk_backs_off_on_429_and_then_succeeds(upstream):
    # One request per 3 s window: the SDK's first try meets the request just before it (429, retry-after 3 s),
    # its retry the refilled bucket. The SDK waits what retry-after-ms says: ~3 s of wall clock, not minutes.
    governance = {"limits": {"window": 3, "rules": [{"scope": "developer:*", "rpm": 1}]}}
    statuses: list[int] = []
    http = anthropic.DefaultHttpxClient(event_hooks={"response": [lambda response: statuses.append(response.status_code)]})
    with run_gateway(_config(upstream.chat_url, governance), env=ENV) as gateway:
        assert _post(gateway, stream=False).status == 200
        client = anthropic.Anthropic(base_url=gateway.base_url, api_key=ANA_KEY, max_retries=4, timeout=20,
                                     http_client=http)
        message = client.messages.create(model="gpt-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
        assert message.content[0].text == "hello"
        assert statuses[0] == 429 and statuses[-1] == 200
        assert len(upstream.requests) == 2  # the refused tries never reached the upstream


def test_a_concurrent_stream_slot_is_freed_on_every_way_out(upstream):
    governance = {"limits": {"rules": [{"scope": "developer:*", "concurrent_streams": 1}]}}
    body = json.dumps(messages_body("gpt-5", stream=True))
    with run_gateway(_config(upstream.chat_url, governance), env=ENV) as gateway:
        # an upstream failure before the first byte: the 529 frees the slot
        upstream.reset(ErrorReply(500, {"error": {"message": "boom"}}))
        assert _post(gateway, stream=True).status == 529
        gate = Gate()
        upstream.reset(ChatReply(text="hello", usage=(10, 5, 0), gate=gate, gate_before=2))
        held = gateway.connection()
        held.request("POST", "/v1/messages", body, {**headers(ANA_KEY), "content-type": "application/json"})
        response = held.getresponse()
        assert response.status == 200
        assert b"event: message_start" in response.read1(65536)  # the stream is open and holds the slot
        refused = _post(gateway, stream=True)
        assert refused.status == 429 and "concurrent stream" in refused.json()["error"]["message"]
        assert _post(gateway, stream=False).status == 200  # answers that do not stream take no slot
        held.close()  # the client walks away mid-stream
        gate.open()  # the gateway sees it gone at its next write, and its finally frees the slot
        wait_for(lambda: _post(gateway, stream=True).status == 200, 10, "the slot freed by the disconnect")
