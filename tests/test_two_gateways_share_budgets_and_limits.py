"""Two gateway processes on different ports, sharing one redis-server (counters) and one PostgreSQL (audit),
hammered alternately from several client threads: together they let through no more than the shared limit and
budget allow, and lose no audit record; the shared spend equals the audit's.

Tolerance, stated: a rate limit is exact (one atomic Lua script admits or refuses, across instances). A budget is
checked against spend settled so far, so requests admitted but not yet settled can overshoot it by their own
cost: with T client threads at most 2·T such requests (each thread's request in flight, and its previous one whose
settlement may still be on its way to Redis)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from tests.audit_helpers import ADMIN_KEY, ENV, headers, messages_body, route, wait_records
from tests.gateway import Gateway, run_gateway
from tests.observe_pg import cluster
from tests.redis_server import RedisServer, running_redis
from tests.upstreams import ChatReply, ScriptedChatUpstream

ANA_KEY = "sk-gw-ana-4e2b"
ANA = {"id": "k-ana", "key": ANA_KEY, "developer": "ana", "team": "platform"}
PRICE = {"input": 10_000.0, "cached_input": 10_000.0, "output": 20_000.0}  # (10 in, 5 out) → $0.20
COST = 0.2
THREADS = 4


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@contextlib.contextmanager
def two_gateways(redis_server: RedisServer, governance: dict) -> Iterator[tuple[ScriptedChatUpstream, list[Gateway], str]]:
    redis_server.client().flushdb()
    store = cluster().new_database()
    governance = {**governance, "limits": {"backend": "redis", "redis_url": redis_server.url, "timeout": 0.5,
                                           **governance.get("limits", {})}}
    with ScriptedChatUpstream() as upstream, contextlib.ExitStack() as stack:
        upstream.reset(ChatReply(text="hello", usage=(10, 5, 0)))
        config = yaml.safe_dump({
            "default_route": "priced", "auth": {"keys": [ANA]}, "admin": {"keys": [ADMIN_KEY]},
            "audit": {"store": store, "flush_interval": 0.05}, "governance": governance,
            "routes": [route("priced", upstream.chat_url, pricing=PRICE)],
        }, sort_keys=False)
        gateways = [stack.enter_context(run_gateway(config, env=ENV)) for _ in range(2)]
        yield upstream, gateways, store


def _hammer(gateways: list[Gateway], count: int) -> list[tuple[int, str]]:
    def one(i: int) -> tuple[int, str]:
        stream = i % 3 == 0
        answer = gateways[i % 2].request("POST", "/v1/messages", messages_body("gpt-5", stream=stream), headers(ANA_KEY))
        return answer.status, answer.headers["request-id"]

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(count)))


def test_two_instances_enforce_one_shared_rate_limit_exactly(redis_server):
    # 10 requests per hour-long window: no refill during the test, so exactly 10 of 40 may pass.
    governance = {"limits": {"window": 3600, "rules": [{"scope": "developer:*", "rpm": 10}]}}
    with two_gateways(redis_server, governance) as (upstream, gateways, store):
        results = _hammer(gateways, 40)
        statuses = [status for status, _ in results]
        assert statuses.count(200) == 10 and statuses.count(429) == 30
        assert len(upstream.requests) == 10
        records = wait_records(store, [rid for _, rid in results])
        assert sorted(r["status"] for r in records.values()) == [200] * 10 + [429] * 30


def test_two_instances_share_one_budget_within_the_in_flight_tolerance_and_lose_no_record(redis_server):
    governance = {"budgets": [{"scope": "team:platform", "limit": 1.0, "period": "month"}]}
    with two_gateways(redis_server, governance) as (upstream, gateways, store):
        results = _hammer(gateways, 30)
        ok = [status for status, _ in results].count(200)
        assert 5 <= ok <= 5 + 2 * THREADS  # $1.00 / $0.20, plus at most the unsettled requests' own cost
        assert [status for status, _ in results].count(402) == 30 - ok
        assert len(upstream.requests) == ok
        records = wait_records(store, [rid for _, rid in results])
        assert len(records) == 30
        audit_spend = sum(r["cost_usd"] or 0.0 for r in records.values())
        assert audit_spend == pytest.approx(ok * COST)
        for gateway in gateways:  # both read the same shared counter, equal to the audit's spend
            data = gateway.request("GET", "/api/budgets", headers={"x-api-key": ADMIN_KEY}).json()["data"]
            assert [(b["scope"], round(b["spent_usd"], 6)) for b in data] == [("team:platform", round(audit_spend, 6))]


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_killed_mid_run_gives_the_configured_behaviour(mode):
    governance = {"budgets": [{"scope": "global", "limit": 100.0}],
                  "limits": {"on_unreachable": mode, "timeout": 0.2, "rules": [{"scope": "developer:*", "rpm": 1000}]}}
    with running_redis() as doomed, two_gateways(doomed, governance) as (upstream, gateways, _store):
        before = _hammer(gateways, 6)
        assert [status for status, _ in before] == [200] * 6
        doomed.kill()
        after = [gateways[i % 2].request("POST", "/v1/messages", messages_body("gpt-5", stream=i % 2 == 0),
                                         headers(ANA_KEY), timeout=10) for i in range(10)]
        if mode == "open":
            assert [a.status for a in after] == [200] * 10
            assert all("anthropic-ratelimit-requests-limit" not in a.headers for a in after)  # nothing was counted
            metrics = gateways[0].request("GET", "/metrics").text
            assert "dragoman_governance_backend_errors_total" in metrics
        else:
            assert [a.status for a in after] == [529] * 10
            error = after[0].json()["error"]
            assert error["type"] == "overloaded_error"
            assert "governance.limits.on_unreachable: closed" in error["message"]
            assert len(upstream.requests) == 6  # refused before any upstream call
        for gateway in gateways:
            assert "Traceback" not in gateway.stderr_text()
