"""Benchmark (not a test): what budgets and rate limits add to a request.

    python bench/bench_governance.py [--samples N] [--requests N] [--no-e2e]

1. Micro, per request on the event loop: key lookup (KeyTable.lookup, the config key's Grant) + Governor.admit +
   Governor.settle, for a caller with 2 budgets (team, global) and developer limits on every dimension (rpm, input
   and output tokens, concurrent streams; streamed request), on the memory backend and on a real redis-server
   (one EVALSHA to admit; settle's EVALSHA is timed apart, it runs off the response path). Also "nothing applies"
   (governance configured for other scopes). p50/p95 in µs.
2. A/B end to end: one gateway process per variant (governance off, memory, Redis), a scripted upstream, N
   sequential non-streamed requests over real sockets; p50/p95 latency in µs and the difference to "off".
Needs redis-server (Debian package) for the Redis rows; without it they are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dragoman.config.governance import BudgetRule, GovernanceSettings, LimitRule, LimitSettings  # noqa: E402
from dragoman.config.secrets import GatewayKey  # noqa: E402
from dragoman.govern.authenticate import config_grants  # noqa: E402
from dragoman.govern.governor import Governor  # noqa: E402

KEY = "sk-bench-ana"
BUDGETS = (BudgetRule(scope="team:platform", limit=1e9), BudgetRule(scope="global", limit=1e12))
RULES = (LimitRule(scope="developer:*", rpm=10**9, input_tpm=10**12, output_tpm=10**12, concurrent_streams=10**6),)


def _settings(backend: str, redis_url: str | None = None, *, applies: bool = True) -> GovernanceSettings:
    rules = RULES if applies else (LimitRule(scope="developer:nobody", rpm=1),)
    budgets = BUDGETS if applies else (BudgetRule(scope="team:nobody", limit=1.0),)
    return GovernanceSettings(budgets=budgets, limits=LimitSettings(backend=backend, redis_url=redis_url,
                                                                    timeout=0.5, rules=rules))


async def _micro(governor: Governor, samples: int) -> tuple[tuple[float, float], tuple[float, float]]:
    table = config_grants({KEY: GatewayKey(id="k-ana", developer="ana", team="platform")})  # as the gateway makes it
    clock = time.perf_counter_ns
    admit_times, settle_times = [], []
    warm = min(samples, 2000)
    gc.disable()
    try:
        for i in range(samples + warm):
            start = clock()
            grant = table.lookup(KEY)
            admission = await governor.admit(grant, "gpt-5", 1200, True)
            middle = clock()
            governor.settle(admission, 1100, 300, 0.0123)
            if governor._tasks:
                await asyncio.wait(list(governor._tasks))
            end = clock()
            if i >= warm:
                admit_times.append(middle - start)
                settle_times.append(end - middle)
    finally:
        gc.enable()
    return _pct(admit_times), _pct(settle_times)


def _pct(times: list[int]) -> tuple[float, float]:
    times.sort()
    return times[len(times) // 2] / 1000, times[int(len(times) * 0.95)] / 1000


def micro(samples: int, redis_url: str | None) -> None:
    print(f"## Per request on the loop (µs, {samples} samples)\n")
    print("| backend | what | admit (lookup + grant + checks) p50 / p95 | settle p50 / p95 |")
    print("|---|---|---|---|")
    variants: list[tuple[str, str, GovernanceSettings]] = [
        ("memory", "nothing applies to the caller", _settings("memory", applies=False)),
        ("memory", "2 budgets + 4 limits, streamed", _settings("memory")),
    ]
    if redis_url:
        variants.append(("redis", "2 budgets + 4 limits, streamed", _settings("redis", redis_url)))
    for backend, what, settings in variants:
        async def run(settings: GovernanceSettings = settings) -> Any:
            governor = Governor(settings)
            try:
                return await _micro(governor, samples)
            finally:
                await governor.close()

        (a50, a95), (s50, s95) = asyncio.run(run())
        settle = f"{s50:.1f} / {s95:.1f}" + (" (off the response path)" if backend == "redis" else "")
        print(f"| {backend} | {what} | {a50:.1f} / {a95:.1f} | {settle} |")
    print()


def e2e(requests: int, redis_url: str | None) -> None:
    from tests.gateway import run_gateway
    from tests.upstreams import ChatReply, ScriptedChatUpstream
    import yaml

    print(f"## End to end, {requests} sequential non-streamed requests per variant (latency µs)\n")
    print("| variant | p50 | p95 | p50 − off |")
    print("|---|---|---|---|")
    variants = [("off", None), ("memory", _governance_block("memory", None))]
    if redis_url:
        variants.append(("redis", _governance_block("redis", redis_url)))
    base = None
    with ScriptedChatUpstream() as upstream:
        upstream.reset(ChatReply(text="hello", usage=(10, 5, 0)))
        for name, governance in variants:
            config: dict[str, Any] = {
                "default_route": "r", "auth": {"keys": [{"id": "k-ana", "key": KEY, "developer": "ana",
                                                          "team": "platform"}]},
                "audit": {"enabled": False},
                "routes": [{"name": "r", "upstream": {"provider": "openai", "model": "gpt-5",
                                                      "endpoint": upstream.chat_url, "api_key_ref": "k"}}],
            }
            if governance:
                config["governance"] = governance
            with run_gateway(yaml.safe_dump(config), env={"K": "sk-up"}) as gateway:
                times = _sequential(gateway, requests)
                upstream.reset(ChatReply(text="hello", usage=(10, 5, 0)))  # forget the recorded requests
            p50, p95 = _pct(times)
            base = p50 if base is None else base
            print(f"| {name} | {p50:.0f} | {p95:.0f} | {p50 - base:+.0f} |")
    print()


def _governance_block(backend: str, redis_url: str | None) -> dict:
    limits: dict[str, Any] = {"backend": backend, "rules": [
        {"scope": "developer:*", "rpm": 10**9, "input_tpm": 10**12, "output_tpm": 10**12, "concurrent_streams": 10**6}]}
    if redis_url:
        limits["redis_url"] = redis_url
    return {"budgets": [{"scope": "team:platform", "limit": 1e9}, {"scope": "global", "limit": 1e12}],
            "limits": limits}


def _sequential(gateway: Any, requests: int) -> list[int]:
    import http.client
    import json

    body = json.dumps({"model": "gpt-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    head = {"content-type": "application/json", "x-api-key": KEY, "anthropic-version": "2023-06-01"}
    times = []
    for i in range(requests + 200):
        start = time.perf_counter_ns()
        conn.request("POST", "/v1/messages", body, head)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        if i >= 200:
            times.append(time.perf_counter_ns() - start)
    conn.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--no-e2e", action="store_true")
    args = parser.parse_args()
    redis = None
    if shutil.which("redis-server"):
        from tests.redis_server import RedisServer

        redis = RedisServer(shutil.which("redis-server") or "")
        redis.start()
    try:
        url = redis.url if redis else None
        micro(args.samples, url)
        if not args.no_e2e:
            e2e(args.requests, url)
    finally:
        if redis:
            redis.stop()


if __name__ == "__main__":
    main()
