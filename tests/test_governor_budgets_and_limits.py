"""The Governor on both counter backends (memory, and a real redis-server), with an injected clock and Grants
built by hand: budgets per key, developer, team and global refuse at the cap with 402, warn past the soft share,
count real spend after the answer and are seeded from the audit store; rate limits refuse with 429 and exact
retry times; stream slots are freed on settle; a refused request charges nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from dragoman import errors as E
from dragoman.config.governance import BudgetRule, GovernanceSettings, LimitRule, LimitSettings
from dragoman.govern.counters import MemoryCounters
from dragoman.govern.governor import Governor
from dragoman.govern.grant import Budget, Grant, Limits
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import open_store
from tests.redis_server import ModuleLoop, RedisServer, running_redis

# 2037-12-05T22:40:00Z, a Saturday. Redis expires keys on its own clock (a budget's counter at its period's end, a
# stream lease after LEASE): the injected clock must lie in the future, or Redis drops what a test just counted.
NOW = 2_143_665_600.0
ANA = Grant(key_id="k-ana", developer="ana", team="platform")


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        server.client().flushdb()
    return request.param


def _governor(backend: str, request: pytest.FixtureRequest, *, budgets=(), rules=(), store=None,
              clock: Clock | None = None, window: float = 60.0) -> Governor:
    limits = LimitSettings(rules=tuple(rules), window=window)
    if backend == "redis":
        url = request.getfixturevalue("redis_server").url
        limits = LimitSettings(backend="redis", redis_url=url, timeout=0.5, rules=tuple(rules), window=window)
    settings = GovernanceSettings(budgets=tuple(budgets), limits=limits)
    return Governor(settings, lambda: store, None, clock=clock or Clock())


_MODULE_LOOP = ModuleLoop()
_loop = _MODULE_LOOP.loop_fixture()
run = _MODULE_LOOP.run


async def _settled(gov: Governor) -> None:
    if gov._tasks:
        await asyncio.wait(list(gov._tasks))


async def _use(gov: Governor, grant: Grant | None, cost: float, *, input_tokens=10, output_tokens=5, stream=False):
    admission = await gov.admit(grant, "gpt-5", input_tokens, stream)
    gov.settle(admission, input_tokens, output_tokens, cost)
    await _settled(gov)
    return admission


def test_a_team_budget_refuses_with_402_once_spent_and_names_cap_spend_and_reset(backend, request):
    gov = _governor(backend, request, budgets=[BudgetRule(scope="team:platform", limit=1.0, period="month")])

    async def scenario():
        for _ in range(3):
            await _use(gov, ANA, 0.4)  # 0.4, 0.8, 1.2: the third was admitted at 0.8 and overshoots by its own cost
        with pytest.raises(E.BillingError) as refused:
            await gov.admit(ANA, "gpt-5", 10, False)
        await gov.close()
        return refused.value

    err = run(scenario())
    assert err.status == 402 and err.error_type == "billing_error"
    assert err.message == ("budget team:platform is exhausted: $1.20 spent of its $1.00 per month; "
                           "it resets at 2038-01-01T00:00:00Z")


def test_a_new_period_starts_from_zero(backend, request):
    clock = Clock()
    gov = _governor(backend, request, budgets=[BudgetRule(scope="developer:*", limit=1.0, period="day")], clock=clock)

    async def scenario():
        await _use(gov, ANA, 1.5)
        with pytest.raises(E.BillingError):
            await gov.admit(ANA, "gpt-5", 10, False)
        clock.now = NOW - NOW % 86400 + 86400  # the next UTC midnight exactly
        await _use(gov, ANA, 0.1)
        other = Grant(key_id="k-bo", developer="bo")  # developer:* is per developer
        await _use(gov, other, 0.1)
        await gov.close()

    run(scenario())


def test_a_keys_own_budget_applies_to_that_key_only(backend, request):
    gov = _governor(backend, request)
    capped = Grant(key_id="k-capped", developer="ana", budget=Budget(limit_usd=0.5, period="week", soft_fraction=0.5))

    async def scenario():
        first = await _use(gov, capped, 0.3)
        second = await gov.admit(capped, "gpt-5", 10, False)
        gov.settle(second, 10, 5, 0.3)
        await _settled(gov)
        with pytest.raises(E.BillingError, match="budget key:k-capped is exhausted: \\$0.60 spent of its \\$0.50 per week"):
            await gov.admit(capped, "gpt-5", 10, False)
        await _use(gov, ANA, 10.0)  # another key of the same developer: no budget of its own
        await gov.close()
        return first, second

    first, second = run(scenario())
    assert "x-dragoman-budget-warning" not in first.headers
    assert second.headers["x-dragoman-budget-warning"] == "key:k-capped 60% of $0.50/week"


def test_key_budget_rules_cap_each_key_and_are_seeded_from_its_audit_spend(backend, request, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    start_of_day = NOW - NOW % 86400
    store.write([
        AuditRecord(time=start_of_day + 10, request_id="r1", key_id="k-ana", developer="ana", cost_usd=0.7),
        AuditRecord(time=start_of_day + 20, request_id="r2", key_id="k-bo", developer="ana", cost_usd=0.5),
        AuditRecord(time=start_of_day - 10, request_id="r0", key_id="k-ana", cost_usd=99.0),  # yesterday
    ])
    budgets = [BudgetRule(scope="key:k-ana", limit=1.0, period="day"),  # k-ana's, in place of key:*
               BudgetRule(scope="key:*", limit=0.6, period="day")]  # every other key's, each its own
    gov = _governor(backend, request, budgets=budgets, store=store)
    bo, new = Grant(key_id="k-bo", developer="ana"), Grant(key_id="k-new", developer="ana")
    own = Grant(key_id="k-own", budget=Budget(limit_usd=5.0, period="day"))  # a key's own budget replaces key:*

    async def refused(grant: Grant) -> str:
        with pytest.raises(E.BillingError) as refusal:
            await gov.admit(grant, "gpt-5", 10, False)
        return refusal.value.message

    async def scenario():
        await _use(gov, ANA, 0.4)  # seeded with k-ana's 0.7 today (not yesterday's, not k-bo's): admitted at 0.7
        bo_admission = await _use(gov, bo, 0.2)  # seeded with k-bo's 0.5: admitted, past the soft share
        await _use(gov, new, 0.6)  # nothing in the audit: admitted at 0
        await _use(gov, own, 1.0)
        await _use(gov, own, 1.0)  # 2.0 of its own 5.0: key:*'s 0.6 does not apply
        messages = [await refused(grant) for grant in (ANA, bo, new)]
        await gov.close()
        return bo_admission, messages

    bo_admission, messages = run(scenario())
    assert bo_admission.headers["x-dragoman-budget-warning"] == "key:k-bo 83% of $0.60/day"
    assert [m.split(";")[0] for m in messages] == [
        "budget key:k-ana is exhausted: $1.10 spent of its $1.00 per day",
        "budget key:k-bo is exhausted: $0.70 spent of its $0.60 per day",
        "budget key:k-new is exhausted: $0.60 spent of its $0.60 per day",
    ]
    store.close()


def test_spend_is_seeded_from_the_audit_store_when_a_counter_is_missing(backend, request, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    start_of_month = 2_143_238_400.0  # 2037-12-01T00:00:00Z
    store.write([
        AuditRecord(time=start_of_month + 10, request_id="r1", budget_team="platform", cost_usd=0.7),
        AuditRecord(time=start_of_month + 20, request_id="r2", budget_team="platform", cost_usd=0.2),
        AuditRecord(time=start_of_month - 10, request_id="r0", budget_team="platform", cost_usd=99.0),  # last month
        AuditRecord(time=start_of_month + 30, request_id="r3", budget_team="other", cost_usd=5.0),
    ])
    budgets = [BudgetRule(scope="team:platform", limit=1.0, period="month"),
               BudgetRule(scope="global", limit=6.0, period="month")]
    gov = _governor(backend, request, budgets=budgets, store=store)

    async def scenario():
        admission = await gov.admit(ANA, "gpt-5", 10, False)  # seeded: 0.9 of 1.0 (and 5.9 of 6.0 globally)
        gov.settle(admission, 10, 5, 0.15)
        await _settled(gov)
        with pytest.raises(E.BillingError, match="budget team:platform is exhausted: \\$1.05 spent"):
            await gov.admit(ANA, "gpt-5", 10, False)
        rows = await gov.budgets()
        await gov.close()
        return admission, rows

    admission, rows = run(scenario())
    assert admission.headers["x-dragoman-budget-warning"] == "team:platform 90% of $1.00/month, global 98% of $6.00/month"
    assert {r["scope"]: r["spent_usd"] for r in rows} == {"team:platform": 1.05, "global": 6.05}
    assert rows[0]["resets_at"] == "2038-01-01T00:00:00Z" and rows[0]["period"] == "month"
    store.close()


def test_requests_per_minute_refuse_with_429_exact_retry_and_headers(backend, request):
    clock = Clock()
    gov = _governor(backend, request, rules=[LimitRule(scope="developer:*", rpm=2)], clock=clock)

    async def scenario():
        a = await _use(gov, ANA, 0.0)
        b = await _use(gov, ANA, 0.0)
        with pytest.raises(E.RateLimited) as refused:
            await gov.admit(ANA, "gpt-5", 10, False)
        clock.now += 30.0  # one request's worth refilled
        c = await _use(gov, ANA, 0.0)
        await gov.close()
        return a, b, refused.value, c

    a, b, err, c = run(scenario())
    assert a.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert b.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert err.status == 429 and err.error_type == "rate_limit_error"
    assert err.headers["retry-after"] == "30" and err.headers["retry-after-ms"] == "30000"
    assert err.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert err.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert err.message == "rate limit: developer:ana may use 2 requests per 60 s; retry in 30.00 s"
    assert c.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_tokens_per_minute_count_the_estimate_then_the_real_usage(backend, request):
    gov = _governor(backend, request, rules=[LimitRule(scope="key:*", input_tpm=1000, output_tpm=100)])
    grant = Grant(key_id="k1", limits=Limits(input_tpm=1000, output_tpm=100))

    async def scenario():
        first = await gov.admit(grant, "gpt-5", 800, False)
        gov.settle(first, 200, 150, 0.0)  # it really read 200 and wrote 150 (over the 100 of output)
        await _settled(gov)
        with pytest.raises(E.RateLimited, match="output tokens") as refused:
            await gov.admit(grant, "gpt-5", 10, False)
        await gov.close()
        return first, refused.value

    first, err = run(scenario())
    assert first.headers["anthropic-ratelimit-input-tokens-remaining"] == "200"
    assert first.headers["anthropic-ratelimit-output-tokens-remaining"] == "100"
    assert first.headers["anthropic-ratelimit-tokens-remaining"] == "100"
    assert err.headers["anthropic-ratelimit-input-tokens-remaining"] == "800"  # the estimate was corrected
    assert float(err.headers["retry-after-ms"]) == pytest.approx(30_600, abs=1)


def test_concurrent_streams_are_capped_and_freed_on_settle(backend, request):
    gov = _governor(backend, request, rules=[LimitRule(scope="team:platform", concurrent_streams=2)])

    async def scenario():
        s1 = await gov.admit(ANA, "gpt-5", 10, True)
        s2 = await gov.admit(ANA, "gpt-5", 10, True)
        await gov.admit(ANA, "gpt-5", 10, False)  # not a stream: no slot needed
        with pytest.raises(E.RateLimited, match="concurrent stream"):
            await gov.admit(ANA, "gpt-5", 10, True)
        gov.settle(s1, 0, 0, 0.0)
        gov.settle(s1, 0, 0, 0.0)  # settling twice frees one slot, once
        await _settled(gov)
        s3 = await gov.admit(ANA, "gpt-5", 10, True)
        with pytest.raises(E.RateLimited):
            await gov.admit(ANA, "gpt-5", 10, True)
        for s in (s2, s3):
            gov.settle(s, 0, 0, 0.0)
        await gov.close()

    run(scenario())


def test_a_refused_request_charges_nothing(backend, request):
    gov = _governor(backend, request, rules=[LimitRule(scope="developer:ana", rpm=1),
                                             LimitRule(scope="team:platform", rpm=5)])

    async def scenario():
        await _use(gov, ANA, 0.0)
        for _ in range(3):
            with pytest.raises(E.RateLimited, match="developer:ana"):
                await gov.admit(ANA, "gpt-5", 10, False)
        teammate = Grant(key_id="k-bo", developer="bo", team="platform")
        admission = await gov.admit(teammate, "gpt-5", 10, False)
        await gov.close()
        return admission

    assert run(scenario()).headers["anthropic-ratelimit-requests-remaining"] == "3"  # 5 − ana's one − bo's one


def test_without_rules_or_a_grant_of_its_own_nothing_is_counted(backend, request):
    gov = _governor(backend, request)
    admission = run(gov.admit(ANA, "gpt-5", 10, True))
    assert admission.headers == {} and admission.plan is None


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_unreachable_redis_fails_open_or_closed_and_the_circuit_spares_the_network(mode):
    from dragoman.govern.governor import CountersUnavailable
    from dragoman.govern.redis_counters import RedisCounters

    with running_redis() as server:
        settings = GovernanceSettings(budgets=(BudgetRule(scope="global", limit=1.0),), limits=LimitSettings(
            backend="redis", redis_url=server.url, on_unreachable=mode, timeout=0.2,
            rules=(LimitRule(scope="developer:*", rpm=100),)))
        circuit_clock = Clock(0.0)  # frozen: the circuit stays open for the whole test once it opens
        counters = RedisCounters(server.url, 0.2, CountersUnavailable, clock=circuit_clock)
        gov = Governor(settings, counters=counters)
        attempts = []
        admit_script = counters._admit

        async def counted(**kwargs):
            attempts.append(1)
            return await admit_script(**kwargs)

        counters._admit = counted
        assert run(gov.admit(ANA, "gpt-5", 10, False)).plan is not None  # two tries: the budget was seeded between
        before = len(attempts)
        server.kill()

    async def after():
        outcomes = []
        for _ in range(50):
            try:
                outcomes.append(await gov.admit(ANA, "gpt-5", 10, False))
            except E.Overloaded as exc:
                outcomes.append(exc)
        return outcomes

    outcomes = run(after())
    if mode == "open":
        assert all(o.plan is None and o.headers == {} for o in outcomes)
    else:
        assert all(isinstance(o, E.Overloaded) and o.status == 529 and "on_unreachable: closed" in o.message
                   for o in outcomes)
    assert len(attempts) == before + 1  # one call found Redis gone; the circuit kept the other 49 off the network
    circuit_clock.now += 1.0  # its retry interval passed: the next request probes Redis again
    run(after())
    assert len(attempts) == before + 2
    run(gov.close())


def test_memory_counters_are_the_default():
    assert isinstance(Governor(GovernanceSettings()).counters, MemoryCounters)
