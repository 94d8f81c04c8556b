"""Stream slots on a real redis-server are short leases its instance renews while the stream runs: a crashed
instance's slots come back within one lease, a live stream keeps its slot however long it runs, a renewal never
brings back a lease already freed, and one Redis does not take fails nothing and is made good next tick. Two
Governors on one Redis stand for two gateway instances; the clock is injected and the renewal ticks are driven
by calling renew_leases, never waited for."""

from __future__ import annotations

import asyncio
import time

import pytest

from dragoman import errors as E
from dragoman.config.governance import GovernanceSettings, LimitSettings
from dragoman.govern.counters import LEASE, RENEW_EVERY
from dragoman.govern.governor import CountersUnavailable, Governor
from dragoman.govern.grant import Grant, Limits
from dragoman.govern.redis_counters import RedisCounters
from tests.redis_server import connections_refused, ModuleLoop, redis, redis_server, RedisServer  # noqa: F401 - fixtures
from tests.routing_helpers import Clock

NOW = 2_143_665_600.0  # far from Redis's own clock: the leases' keys expire after a duration, never at an instant
ONE_STREAM = Grant(key_id="k1", limits=Limits(concurrent_streams=1))
SLOTS = "dragoman:cs:key:k1"


_MODULE_LOOP = ModuleLoop()
_loop = _MODULE_LOOP.loop_fixture()
run = _MODULE_LOOP.run


class Instance:
    """One gateway instance's Governor on the shared Redis, on the test's clock (the circuit's its own)."""

    def __init__(self, server: RedisServer, clock: Clock) -> None:
        self.circuit = Clock()
        self.counters = RedisCounters(server.url, 0.5, CountersUnavailable, clock=self.circuit)
        settings = GovernanceSettings(limits=LimitSettings(backend="redis", redis_url=server.url, timeout=0.5))
        self.gov = Governor(settings, clock=clock, counters=self.counters)

    async def settled(self) -> None:
        while self.gov._tasks:
            await asyncio.wait(list(self.gov._tasks))


def _clock() -> Clock:
    clock = Clock()
    clock.now = NOW
    return clock


async def _refused(gov: Governor) -> bool:
    try:
        admission = await gov.admit(ONE_STREAM, "m", 10, True)
    except E.RateLimited:
        return True
    gov.settle(admission, 0, 0, None)
    return False


def test_a_crashed_instances_stream_slot_lapses_within_one_lease(redis_server, redis):
    clock = _clock()
    crashed, other = Instance(redis_server, clock), Instance(redis_server, clock)

    async def scenario():
        await crashed.gov.admit(ONE_STREAM, "m", 10, True)  # its stream is never settled: the instance dies
        await crashed.gov.close()  # no renewal from here on, no release either
        clock.now = NOW + LEASE - 1
        assert await _refused(other.gov)
        clock.now = NOW + LEASE + 1
        admission = await other.gov.admit(ONE_STREAM, "m", 10, True)  # the slot came back
        other.gov.settle(admission, 0, 0, None)
        await other.settled()
        await other.gov.close()

    run(scenario())


def test_a_live_stream_keeps_its_slot_for_many_leases_and_frees_it_when_settled(redis_server, redis):
    clock = _clock()
    holder, other = Instance(redis_server, clock), Instance(redis_server, clock)

    async def scenario():
        admission = await holder.gov.admit(ONE_STREAM, "m", 10, True)
        while clock.now < NOW + 5 * LEASE:  # a Claude Code stream running for minutes
            clock.now += RENEW_EVERY
            await holder.gov.renew_leases()
            assert await _refused(other.gov)
        holder.gov.settle(admission, 0, 0, None)
        await holder.settled()
        assert not await _refused(other.gov)
        await other.settled()
        await holder.gov.close()
        await other.gov.close()

    run(scenario())
    assert redis.zcard(SLOTS) == 0


def test_a_renewal_never_brings_back_a_lease_already_freed(redis_server, redis):
    clock = _clock()
    holder = Instance(redis_server, clock)

    async def scenario():
        settled = await holder.gov.admit(ONE_STREAM, "m", 10, True)
        holder.gov.settle(settled, 0, 0, None)
        await holder.settled()
        swept = await holder.gov.admit(ONE_STREAM, "m", 10, True)
        redis.zrem(SLOTS, swept.plan.lease)  # lapsed and swept by another instance's admission, say
        clock.now += RENEW_EVERY
        await holder.gov.renew_leases()
        await holder.gov.close()

    run(scenario())
    assert redis.zcard(SLOTS) == 0 and not redis.exists(SLOTS)


def test_a_stream_whose_release_redis_did_not_take_is_no_longer_renewed(redis_server, redis):
    clock = _clock()
    holder, other = Instance(redis_server, clock), Instance(redis_server, clock)

    async def scenario():
        admission = await holder.gov.admit(ONE_STREAM, "m", 10, True)
        async with connections_refused(holder.counters):  # the release waits in the queue, and is never sent
            holder.gov.settle(admission, 0, 0, None)
            await holder.settled()
        holder.circuit.now += 1.0
        for _ in range(3):
            clock.now += RENEW_EVERY
            await holder.gov.renew_leases()
        clock.now = NOW + LEASE + 1
        assert not await _refused(other.gov)  # the slot lapsed with its lease
        await other.settled()
        await other.gov.close()
        await holder.gov.close()

    run(scenario())


def test_a_renewal_redis_does_not_take_fails_nothing_and_is_made_good_next_tick(redis_server, redis):
    clock = _clock()
    holder, other = Instance(redis_server, clock), Instance(redis_server, clock)

    async def scenario():
        await holder.gov.admit(ONE_STREAM, "m", 10, True)
        clock.now += RENEW_EVERY
        async with connections_refused(holder.counters):
            await holder.gov.renew_leases()  # Redis is down: nothing raised
        assert redis.zrange(SLOTS, 0, -1, withscores=True)[0][1] == NOW + LEASE  # not renewed
        holder.circuit.now += 1.0  # its circuit's retry interval passes: the next tick reaches Redis
        clock.now += RENEW_EVERY
        await holder.gov.renew_leases()
        clock.now = NOW + LEASE + 1  # past the lease as taken, within the renewed one
        assert await _refused(other.gov)
        await holder.gov.close()
        await other.gov.close()

    run(scenario())
    lease_until = redis.zrange(SLOTS, -1, -1, withscores=True)[0][1]
    assert lease_until == NOW + 2 * RENEW_EVERY + LEASE
    assert LEASE * 1000 - 10_000 < redis.pttl(SLOTS) <= LEASE * 1000  # a whole lease from the renewal, on Redis's clock


def test_the_renewal_task_starts_with_the_first_stream_and_stops_with_the_governor(redis_server, redis):
    holder = Instance(redis_server, _clock())

    async def scenario():
        assert holder.gov._renewing is None  # nothing to renew yet: no task
        await holder.gov.admit(ONE_STREAM, "m", 10, True)
        renewing = holder.gov._renewing
        assert renewing is not None and not renewing.done()
        await holder.gov.close()
        assert renewing.done()

    run(scenario())


def test_a_gateway_whose_clock_is_behind_the_redis_hosts_still_holds_its_stream_slot(redis_server, redis):
    clock = Clock()
    clock.now = time.time() - 90  # a gateway 90 s behind the Redis host: its lease's end is Redis's past
    first, second = Instance(redis_server, clock), Instance(redis_server, clock)

    async def scenario():
        admission = await first.gov.admit(ONE_STREAM, "m", 10, True)
        assert await _refused(second.gov)  # the slot is held: its key did not expire at once
        await first.gov.renew_leases()
        assert await _refused(second.gov)
        first.gov.settle(admission, 0, 0, None)
        await first.settled()
        await first.gov.close()
        await second.gov.close()

    run(scenario())

