"""The Governor on a real redis-server that is slow or gone for a moment (reviews 8 and 11): a settlement Redis did
not take is queued and sent again once it answers: whole when it certainly did not run (no connection), only its
stream slot's release when it was written and timed out (its spend is never counted twice, and no key per
request is left in Redis); an admission that may have run releases its stream slot but keeps its request and
token charge (a refund of what was maybe never charged would let a key past its limit); one whose caller went away
while Redis answered gives back what it charged, and close() waits for it; nothing is retried after close(). A
counter lost between its seed and the admission, or an audit store that does not answer the seed, is
`on_unreachable`'s to decide, never a 500 or a hang. Clocks are injected (the circuit's included); queued
settlements are retried by calling flush_pending, not by waiting."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dragoman import errors as E
from dragoman.config.governance import BudgetRule, GovernanceSettings, LimitSettings
from dragoman.govern.counters import Settlement
from dragoman.govern.governor import CountersUnavailable, Governor
from dragoman.govern.grant import Grant, Limits
from dragoman.govern.pending import PendingSettlements
from dragoman.govern.redis_counters import RedisCounters
from tests.redis_server import connections_refused, ModuleLoop, redis, redis_server, RedisServer  # noqa: F401 - fixtures
from tests.routing_helpers import Clock

NOW = 2_143_665_600.0  # in the future, as in test_governor_budgets_and_limits: Redis expires keys on its own clock
ONE_STREAM = Grant(key_id="k1", limits=Limits(concurrent_streams=1, rpm=100, input_tpm=1000))
THREE_A_MINUTE = Grant(key_id="k1", limits=Limits(concurrent_streams=5, rpm=3))
ROOMY = Grant(key_id="k1", limits=Limits(concurrent_streams=1, rpm=100, input_tpm=100_000))
SLOTS, RPM, INPUT = "dragoman:cs:key:k1", "dragoman:rl:requests:key:k1", "dragoman:rl:input_tokens:key:k1"


_MODULE_LOOP = ModuleLoop()
_loop = _MODULE_LOOP.loop_fixture()
run = _MODULE_LOOP.run


class Setup:
    def __init__(self, server: RedisServer, mode: str = "open", timeout: float = 0.5, budgets=()) -> None:
        self.clock = _clock(NOW)
        self.circuit = Clock()  # the circuit's: it stays open until a test moves it on
        settings = GovernanceSettings(budgets=tuple(budgets), limits=LimitSettings(
            backend="redis", redis_url=server.url, on_unreachable=mode, timeout=timeout))
        self.counters = RedisCounters(server.url, timeout, CountersUnavailable, clock=self.circuit)
        self.gov = Governor(settings, clock=self.clock, counters=self.counters)

    async def settled(self) -> None:
        while self.gov._tasks:
            await asyncio.wait(list(self.gov._tasks))

    async def redis_answers_again(self) -> None:
        """Redis is back: the circuit's retry interval passes, and the queue is retried (the timer's job)."""
        self.circuit.now += 1.0
        await self.gov.flush_pending()
        await self.settled()


def _answered_too_late(script):  # noqa: ANN001, ANN202 - a redis-py script or pipeline call, its stand-in
    async def call(*args, **kwargs):
        await script(*args, **kwargs)  # Redis ran it (the command was on the wire) ...
        raise asyncio.TimeoutError  # ... after the client had given up waiting

    return call


def _clock(now: float) -> Clock:
    clock = Clock()
    clock.now = now
    return clock


def _tat_left(redis, key: str) -> float:
    """How far a bucket's tat lies past NOW (0: full bucket)."""
    value = redis.get(key)
    return 0.0 if value is None else max(float(value) - NOW, 0.0)


def test_a_settlement_that_could_not_connect_is_sent_again_whole_once_redis_answers(redis_server, redis):
    s = Setup(redis_server, budgets=[BudgetRule(scope="key:k1", limit=5.0, period="day")])

    async def scenario():
        admission = await s.gov.admit(ONE_STREAM, "m", 10, True)
        async with connections_refused(s.counters):  # Redis is down as the stream ends: nothing of it was written
            s.gov.settle(admission, 100, 20, 0.25)
            await s.settled()
        assert redis.zcard(SLOTS) == 1
        await s.redis_answers_again()
        return admission.plan.budgets[0].key

    budget = run(scenario())
    assert redis.zcard(SLOTS) == 0
    assert float(redis.get("dragoman:" + budget)) == 0.25 and s.gov.uncounted == 0
    run(s.gov.admit(ONE_STREAM, "m", 10, True))  # the slot is the caller's again
    run(s.gov.close())


def test_a_settlement_that_timed_out_in_a_stalled_redis_frees_its_slot_and_never_counts_twice(
        redis_server, redis):
    s = Setup(redis_server, budgets=[BudgetRule(scope="key:k1", limit=5.0, period="day")])

    async def scenario():
        admission = await s.gov.admit(ONE_STREAM, "m", 10, True)
        redis.execute_command("CLIENT", "PAUSE", "30000", "WRITE")  # Redis stalls as the stream ends
        s.gov.settle(admission, 10, 20, 0.25)
        await s.settled()
        assert redis.zcard(SLOTS) == 1  # the settlement was written, then timed out
        redis.execute_command("CLIENT", "UNPAUSE")
        await s.redis_answers_again()
        return admission.plan.budgets[0].key

    budget = run(scenario())
    assert redis.zcard(SLOTS) == 0  # its slot's release (idempotent) was sent again
    assert float(redis.get("dragoman:" + budget)) <= 0.25  # its spend was not: Redis may have counted it
    assert s.gov.uncounted == 1
    run(s.gov.admit(ONE_STREAM, "m", 10, True))
    run(s.gov.close())


def test_a_settlement_that_timed_out_after_redis_ran_it_counts_its_spend_and_tokens_once(redis_server, redis):
    s = Setup(redis_server, budgets=[BudgetRule(scope="key:k1", limit=5.0, period="day")])
    admission = run(s.gov.admit(ONE_STREAM, "m", 10, True))
    budget = admission.plan.budgets[0].key
    tat = _tat_left(redis, INPUT)
    pipeline = s.counters._pipeline

    async def scenario():
        s.counters._pipeline = _answered_too_late(pipeline)
        s.gov.settle(admission, 100, 20, 0.25)
        await s.settled()
        s.counters._pipeline = pipeline
        await s.redis_answers_again()

    run(scenario())
    assert float(redis.get(f"dragoman:{budget}")) == 0.25
    assert _tat_left(redis, INPUT) == pytest.approx(tat + 90 * 60 / 1000)  # the real 100 tokens, not 10 + 2 × 90
    assert redis.zcard(SLOTS) == 0
    run(s.gov.close())


def test_settling_leaves_no_key_per_request_in_redis(redis_server, redis):
    s = Setup(redis_server, budgets=[BudgetRule(scope="key:k1", limit=50.0, period="day")])

    async def requests():
        for _ in range(20):
            s.gov.settle(await s.gov.admit(ROOMY, "m", 10, True), 100, 20, 0.25)
            await s.settled()

    run(requests())
    budget = next(key for key in redis.keys("dragoman:bg:*"))
    assert float(redis.get(budget)) == pytest.approx(5.0)
    # The request's bucket and the budget, whatever the request rate: nothing per request outlives its answer.
    assert sorted(redis.keys("dragoman:*")) == sorted([budget, RPM, INPUT])
    run(s.gov.close())


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_an_admission_that_timed_out_but_ran_in_redis_releases_its_slot_and_keeps_its_charge(
        redis_server, redis, mode):
    s = Setup(redis_server, mode)
    admit_script = s.counters._admit
    s.counters._admit = _answered_too_late(admit_script)
    if mode == "open":
        assert run(s.gov.admit(ONE_STREAM, "m", 10, True)).plan is None  # served ungoverned
    else:
        with pytest.raises(E.Overloaded):
            run(s.gov.admit(ONE_STREAM, "m", 10, True))
    s.counters._admit = admit_script
    run(s.settled())
    assert redis.zcard(SLOTS) == 1  # charged in Redis; the release waits for the circuit to close
    run(s.redis_answers_again())
    assert redis.zcard(SLOTS) == 0
    # Its request and input tokens stay charged: one request's worth at most, on the safe side of the limit.
    assert _tat_left(redis, RPM) == pytest.approx(60 / 100) and _tat_left(redis, INPUT) == pytest.approx(10 * 60 / 1000)
    assert run(s.gov.admit(ONE_STREAM, "m", 10, True)).plan is not None
    run(s.gov.close())


@pytest.mark.parametrize("ran", [True, False], ids=["timed-out-after-redis-ran-it", "connection-refused"])
def test_admissions_that_failed_on_redis_never_let_a_key_past_its_rate_limit(redis_server, redis, ran):
    s = Setup(redis_server, "closed")

    async def scenario():
        for _ in range(3):
            await s.gov.admit(THREE_A_MINUTE, "m", 10, True)
        with pytest.raises(E.RateLimited):  # the bucket is empty
            await s.gov.admit(THREE_A_MINUTE, "m", 10, True)
        for _ in range(3):  # Redis blips: each request gets a 529 (refused in Redis, or never sent)
            s.circuit.now += 1.0
            with pytest.raises(E.Overloaded):
                if ran:
                    admit_script = s.counters._admit
                    s.counters._admit = _answered_too_late(admit_script)
                    try:
                        await s.gov.admit(THREE_A_MINUTE, "m", 10, True)
                    finally:
                        s.counters._admit = admit_script
                else:
                    async with connections_refused(s.counters):
                        await s.gov.admit(THREE_A_MINUTE, "m", 10, True)
            await s.settled()
        await s.redis_answers_again()
        with pytest.raises(E.RateLimited):  # in the same minute: still 3 admitted, not 3 + a refund per blip
            await s.gov.admit(THREE_A_MINUTE, "m", 10, True)

    run(scenario())
    assert redis.zcard("dragoman:cs:key:k1") == 3  # the three admitted streams, still running
    run(s.gov.close())


def test_an_admission_whose_client_went_away_while_redis_answered_releases_what_it_charged(redis_server, redis):
    s = Setup(redis_server)
    admit_script = s.counters._admit
    sent, answer = _hold_admission_answers(s)

    async def scenario():
        request = asyncio.ensure_future(s.gov.admit(ONE_STREAM, "m", 10, True))
        await sent.wait()
        request.cancel()  # what server.unless_gone does when the client disconnects
        with pytest.raises(asyncio.CancelledError):
            await request
        assert redis.zcard(SLOTS) == 1
        answer.set()
        for _ in range(100):  # loop turns, not time: the admission's call completes, then starts the release
            if s.gov._tasks:
                break
            await asyncio.sleep(0)
        await s.settled()

    run(scenario())
    assert redis.zcard(SLOTS) == 0 and _tat_left(redis, RPM) == 0.0 and _tat_left(redis, INPUT) == 0.0
    s.counters._admit = admit_script
    assert run(s.gov.admit(ONE_STREAM, "m", 10, True)).plan is not None
    run(s.gov.close())


def test_close_waits_for_an_admission_whose_client_went_away_and_sends_its_release(redis_server, redis):
    s = Setup(redis_server)
    sent, answer = _hold_admission_answers(s)

    async def scenario():
        request = asyncio.ensure_future(s.gov.admit(ONE_STREAM, "m", 10, True))
        await sent.wait()
        request.cancel()  # the server's hard stop cancels the request while Redis answers
        with pytest.raises(asyncio.CancelledError):
            await request
        closing = asyncio.ensure_future(s.gov.close())
        for _ in range(100):  # loop turns: close() gets to wait for the admission (or, unfixed, returns)
            if closing.done():
                break
            await asyncio.sleep(0)
        answer.set()
        await closing
        assert not s.gov._tasks  # nothing left running to be destroyed when the loop closes

    run(scenario())
    assert redis.zcard(SLOTS) == 0 and _tat_left(redis, RPM) == 0.0  # released before the counters closed


def test_nothing_is_retried_after_close(redis_server, redis):
    s = Setup(redis_server, timeout=5.0)  # limits.timeout above close()'s wait: a settlement can outlive it
    s.gov.close_wait = 0.0
    pipeline = s.counters._pipeline
    started, fail = asyncio.Event(), asyncio.Event()

    async def stuck_then_refused(batch):
        started.set()
        await fail.wait()
        raise ConnectionRefusedError  # nothing written: would be queued whole and retried by the timer

    async def scenario():
        admission = await s.gov.admit(ONE_STREAM, "m", 10, True)
        s.counters._pipeline = stuck_then_refused
        s.gov.settle(admission, 10, 20, None)
        await started.wait()
        await s.gov.close()
        fail.set()
        for _ in range(20):  # loop turns: the settlement would fail and arm the retry timer now
            await asyncio.sleep(0)
        assert s.gov._retry is None and not s.gov._tasks and not s.counters._settling

    run(scenario())
    s.counters._pipeline = pipeline


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_a_budget_counter_lost_right_after_its_seed_is_on_unreachables_to_decide_not_a_500(
        redis_server, redis, mode):
    s = Setup(redis_server, mode, budgets=[BudgetRule(scope="global", limit=10.0, period="day")])
    seed = s.counters.seed

    async def seed_then_lost(key, spent, expires_at):
        await seed(key, spent, expires_at)
        redis.flushdb()  # Redis restarted empty, failed over to an empty replica, or evicted the key

    s.counters.seed = seed_then_lost
    if mode == "open":
        assert run(s.gov.admit(Grant(key_id="k1"), "m", 10, False)).plan is None
    else:
        with pytest.raises(E.Overloaded):
            run(s.gov.admit(Grant(key_id="k1"), "m", 10, False))
    run(s.gov.close())


def test_the_soft_threshold_log_forgets_budget_periods_that_ended(redis_server, redis):
    s = Setup(redis_server, budgets=[BudgetRule(scope="developer:*", limit=1.0, period="day", soft=0.5)])

    async def past_soft(name: str) -> None:
        grant = Grant(key_id="k-" + name, developer=name)
        s.gov.settle(await s.gov.admit(grant, "m", 10, False), 10, 5, 0.75)
        await s.settled()
        assert "x-dragoman-budget-warning" in (await s.gov.admit(grant, "m", 10, False)).headers

    for day in range(3):
        s.clock.now = NOW + day * 86_400
        run(past_soft(f"dev{day}a"))
        run(past_soft(f"dev{day}b"))
    assert len(s.gov._warned) == 2  # this day's two; those of the days before are gone
    run(s.gov.close())


def test_the_settlement_queue_is_bounded_expires_and_logs_its_drops_at_most_every_ten_seconds(caplog):
    clock = _clock(100.0)
    queue = PendingSettlements(clock, max_count=3, ttl=60.0)
    settlements = [Settlement([], 0.0, [], ["cs:key:k1"], str(i)) for i in range(5)]
    with caplog.at_level(logging.WARNING, "dragoman.govern"):
        for settlement in settlements:
            queue.add(settlement)
        assert [s.lease for _, s in queue.take()] == ["2", "3", "4"]  # the oldest two made room
        queue.add(settlements[0])
        clock.now += 30
        queue.add(settlements[1])
        clock.now += 40  # the first waited 70 s, past its 60
        batch = queue.take()
    assert [s.lease for _, s in batch] == ["1"] and queue.dropped == 3 and len(queue) == 0
    # The two drops of one moment are one log line; the expiry 70 s later (past LOG_EVERY) another.
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 2
    queue.put_back(batch)
    assert [s.lease for _, s in queue.take()] == ["1"]


def test_a_budget_seed_the_audit_store_does_not_answer_is_on_unreachables_to_decide(redis_server, redis):
    import psycopg  # a dependency of dragoman (pyproject.toml): never missing
    from dragoman.observe import store_postgres
    from dragoman.observe.stores import open_store
    from tests.observe_pg import cluster

    url = cluster().new_database()
    store = open_store(url)
    store.migrate()
    s = Setup(redis_server, "open", budgets=[BudgetRule(scope="developer:*", limit=10.0, period="day")])
    s.gov._store = lambda: store
    s.gov.seed_timeout = 0.2
    locker = psycopg.connect(url)
    try:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE requests IN ACCESS EXCLUSIVE MODE")  # VACUUM FULL, a migration waiting...
        # (wait_for: a hang fails the test rather than holding it; the bound asserted is the Governor's own)
        admit = s.gov.admit(Grant(key_id="k1", developer="ana"), "m", 10, False)
        assert run(asyncio.wait_for(admit, 30)).plan is None
        # PostgreSQL ends the query too, so the executor thread is not held for as long as the lock is.
        store_postgres.SPEND_TIMEOUT = 0.2
        query = _MODULE_LOOP.loop.run_in_executor(None, store.query_spend, "budget_developer", "ana",
                                                  NOW - 86_400, NOW)
        with pytest.raises(psycopg.errors.QueryCanceled):
            run(asyncio.wait_for(query, 30))
    finally:
        store_postgres.SPEND_TIMEOUT = 5.0
        locker.execute("ROLLBACK")
        locker.close()
        run(s.gov.close())
        store.close()


def _hold_admission_answers(s: Setup) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the admission script run (and charge) in Redis, then hold its answer: `sent` is set once it ran, and
    the answer comes back when the test sets `answer` (the client may disconnect meanwhile)."""
    admit_script = s.counters._admit
    sent, answer = asyncio.Event(), asyncio.Event()

    async def slow_answer(**kwargs):  # noqa: ANN003, ANN202
        result = await admit_script(**kwargs)  # ran and charged in Redis
        sent.set()
        await answer.wait()  # the answer is still on its way back
        return result

    s.counters._admit = slow_answer
    return sent, answer
