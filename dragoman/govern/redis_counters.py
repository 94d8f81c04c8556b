"""Counters on Redis (or Valkey), shared by every gateway instance: the same steps as MemoryCounters, in Lua, so
each request's admission is ONE atomic EVALSHA (every budget, bucket and stream slot checked, then all charged or
none) and its settlement one more (run off the response path by the Governor).

Keys: `dragoman:bg:<scope>:<period>:<label>` budget spend (USD, a float string, expires a day after its period),
`dragoman:rl:<dimension>:<scope>` a bucket's GCRA `tat` (expires when the bucket is full again: a missing key is a
full bucket), `dragoman:cs:<scope>` a sorted set of stream leases scored by when they lapse; nothing per request
outlives its stream. A lease lasts LEASE seconds and its instance renews it (`renew`, one round trip for all its
live leases, every RENEW_EVERY seconds) until the stream is settled: a stream of any length keeps its slot while
its instance lives, and a crashed instance's slots lapse within LEASE. Times come from the calling instance's clock
(keep them in NTP sync: an instance a lease ahead of another sweeps the other's live leases); keys expire after a
duration, never at an instant, so the Redis host's clock does not matter. A single Redis, not Redis Cluster (a
request's keys span slots).

Unreachable or slow: every call is bounded by `timeout`, connecting included (redis-py retries off); a failure
opens a circuit for RETRY_INTERVAL seconds during which calls fail at once, without touching the network, so a dead
Redis costs nothing per request. The Governor applies on_unreachable. A failure says whether the command may have
run (`maybe_ran`: some of it was written to the socket) or certainly did not (the circuit was open, connecting
failed, or Redis answered with an error): the Governor resends only what is safe to run twice."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import Any

from dragoman.govern.counters import LEASE, Outcome, Plan, Settlement

PREFIX = "dragoman:"
RETRY_INTERVAL = 1.0  # seconds the circuit stays open after a failure before one call probes again
# Set by `_call` for the command it runs: the connection notes in it that it wrote something of that command.
_WRITTEN: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("dragoman_redis_written", default=None)

_ADMIT = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local nb, nr, ns = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local lease, lease_until = ARGV[6], tonumber(ARGV[7])
local a = 8
local spent, missing = {}, {}
for i = 1, nb do
  local v = redis.call('GET', KEYS[i])
  if not v then
    missing[#missing + 1] = tostring(i - 1)
    spent[i] = '0'
  else
    spent[i] = v
    if tonumber(v) >= tonumber(ARGV[a + i - 1]) then return {'budget', {tostring(i - 1)}, '0', spent, {}} end
  end
end
if #missing > 0 then return {'missing', missing, '0', spent, {}} end
a = a + nb
local found, shown, new = {}, {}, {}
for j = 1, nr do
  local tat = tonumber(redis.call('GET', KEYS[nb + j]) or '0')
  if tat < now then tat = now end
  found[j] = tat
  shown[j] = string.format('%.6f', tat)
end
for j = 1, nr do
  local limit, cost = tonumber(ARGV[a + 2 * j - 2]), tonumber(ARGV[a + 2 * j - 1])
  local interval = window / limit
  local need = math.max(math.min(cost, limit), 1)
  local wait = found[j] + need * interval - window - now
  if wait > 1e-9 then return {'rate', {tostring(j - 1)}, string.format('%.6f', wait), spent, shown} end
  new[j] = found[j] + cost * interval
end
a = a + 2 * nr
for k = 1, ns do
  local key = KEYS[nb + nr + k]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[a + k - 1]) then
    return {'stream', {tostring(k - 1)}, '1', spent, shown}
  end
end
for j = 1, nr do
  if new[j] > found[j] then
    redis.call('SET', KEYS[nb + j], string.format('%.6f', new[j]), 'PX', math.ceil((new[j] - now) * 1000) + 1000)
  end
  shown[j] = string.format('%.6f', new[j])
end
for k = 1, ns do
  local key = KEYS[nb + nr + k]
  redis.call('ZADD', key, lease_until, lease)
  redis.call('PEXPIRE', key, math.ceil((lease_until - now) * 1000))
end
return {'ok', {}, '0', spent, shown}
"""

_SETTLE = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local nb, nc, ns = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cost, lease = tonumber(ARGV[6]), ARGV[7]
if cost ~= 0 then
  for i = 1, nb do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBYFLOAT', KEYS[i], ARGV[6]) end
  end
end
for j = 1, nc do
  local key = KEYS[nb + j]
  local limit, delta = tonumber(ARGV[6 + 2 * j]), tonumber(ARGV[7 + 2 * j])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  tat = math.max(tat + delta * window / limit, now)
  if tat > now then
    redis.call('SET', key, string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
  else
    redis.call('DEL', key)
  end
end
for k = 1, ns do redis.call('ZREM', KEYS[nb + nc + k], lease) end
return 1
"""

# ARGV: the new lapse time, a lease's length in ms, then per key of KEYS its count of leases and those leases. XX:
# a lease already freed (settled, or lapsed and swept by an admission) is never created again. The key then lives a
# whole lease from now, as long as any lease in it at least (each was taken or renewed at most a lease ago).
_RENEW = """
local lease_until, ttl, a = ARGV[1], tonumber(ARGV[2]), 3
for k = 1, #KEYS do
  local n = tonumber(ARGV[a])
  for i = 1, n do redis.call('ZADD', KEYS[k], 'XX', lease_until, ARGV[a + i]) end
  a = a + n + 1
  redis.call('PEXPIRE', KEYS[k], ttl)
end
return 1
"""


class RedisCounters:
    """Counters on one Redis; every call bounded by `timeout`, behind a circuit."""

    def __init__(self, url: str, timeout: float, unavailable: type[Exception], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        try:
            import redis.asyncio as redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import NoScriptError
        except ImportError:
            raise RuntimeError("governance.limits.backend redis needs the redis client: pip install 'dragoman[redis]'") from None

        self.url = url
        self.timeout = timeout
        self._unavailable = unavailable
        self._errors = (redis.RedisError, OSError, asyncio.TimeoutError)
        self._answered = redis.ResponseError  # Redis said no to the command (OOM, a script error): it did not run
        self._no_script = NoScriptError
        self.client = redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                     retry=Retry(NoBackoff(), 0), decode_responses=True)
        pool = self.client.connection_pool
        pool.connection_class = _noting_writes(pool.connection_class)  # plain, TLS or unix socket alike
        self._admit = self.client.register_script(_ADMIT)
        self._settle_sha = self.client.register_script(_SETTLE).sha
        self._open_until = 0.0
        self._clock = clock  # the circuit's
        # Settlements wait here while one pipeline of them is in flight, then go together in the next: a request
        # costs one round trip of its own (its admission), and settling costs one per batch, not one per answer.
        self._settles: list[tuple[list[str], list[Any], asyncio.Future]] = []
        self._settling: asyncio.Task | None = None
        self._renew = self.client.register_script(_RENEW)
        # This instance's live stream leases (lease -> its slot keys): taken by an admission Redis admitted, let go
        # by the settlement or release that frees them (sent or only queued: an unrenewed lease lapses anyway).
        self._live: dict[str, list[str]] = {}

    async def admit(self, plan: Plan, window: float, now: float) -> Outcome:
        keys = [PREFIX + b.key for b in plan.budgets] + [PREFIX + r.key for r in plan.rates]
        keys += [PREFIX + s.key for s in plan.streams]
        args: list[Any] = [repr(now), repr(window), len(plan.budgets), len(plan.rates), len(plan.streams),
                           plan.lease, repr(now + LEASE)]
        args += [repr(b.ref.limit) for b in plan.budgets]
        for rate in plan.rates:
            args += [rate.limit, repr(rate.cost)]
        args += [s.limit for s in plan.streams]
        status, index, wait, spent, tats = await self._call(lambda: self._admit(keys=keys, args=args))
        if status == "ok" and plan.streams:
            self._live[plan.lease] = keys[-len(plan.streams):]
        return Outcome(status, [int(i) for i in index], float(wait), [float(v) for v in spent],
                       [float(t) for t in tats])

    async def settle(self, settlement: Settlement, window: float, now: float) -> None:
        """Count `settlement` once Redis answers. Not idempotent (its spend and token corrections add up): the
        Governor sends one again only when the first certainly did not run (CountersUnavailable.maybe_ran)."""
        if settlement.streams:
            self._live.pop(settlement.lease, None)  # the stream is over: its lease is no longer renewed
        keys = [PREFIX + key for key in settlement.budget_keys] + [PREFIX + c[0] for c in settlement.corrections]
        keys += [PREFIX + key for key in settlement.streams]
        args: list[Any] = [repr(now), repr(window), len(settlement.budget_keys), len(settlement.corrections),
                           len(settlement.streams), repr(settlement.cost), settlement.lease]
        for _, limit, delta in settlement.corrections:
            args += [limit, repr(delta)]
        done = asyncio.get_running_loop().create_future()
        self._settles.append((keys, args, done))
        if self._settling is None:
            self._settling = asyncio.ensure_future(self._settle_batches())
        await done

    async def _settle_batches(self) -> None:
        """Send the waiting settlements as one pipeline, again until none waits; each caller learns its outcome."""
        try:
            while self._settles:
                batch, self._settles = self._settles, []
                try:
                    results = await self._call(lambda: self._pipeline(batch))
                except Exception as exc:  # noqa: BLE001 - CountersUnavailable (or a bug): every caller hears it
                    results = [exc] * len(batch)
                for (_, _, done), result in zip(batch, results):
                    if done.done():
                        continue
                    if isinstance(result, self._answered):  # this one refused (the others ran): it did not run
                        result = self._unavailable(f"Redis at {_where(self.url)} refused a settlement: {result}")
                    if isinstance(result, BaseException):
                        done.set_exception(result)
                    else:
                        done.set_result(None)
        finally:
            self._settling = None

    async def _pipeline(self, batch: list[tuple[list[str], list[Any], asyncio.Future]]) -> list[Any]:
        """Each settlement's reply (an error among them: that one did not run). EVALSHA straight, so the batch is
        one write (a registered script on a pipeline asks SCRIPT EXISTS first); a Redis without the script yet
        (new, restarted) refuses those with NOSCRIPT, which are sent again once it is loaded."""
        results = await self._evalshas(batch)
        missing = [i for i, result in enumerate(results) if isinstance(result, self._no_script)]
        if missing:
            await self.client.script_load(_SETTLE)
            for i, result in zip(missing, await self._evalshas([batch[i] for i in missing])):
                results[i] = result
        return results

    async def _evalshas(self, batch: list[tuple[list[str], list[Any], asyncio.Future]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for keys, args, _ in batch:
            pipe.evalsha(self._settle_sha, len(keys), *keys, *args)  # queued on the pipeline, not sent
        return await pipe.execute(raise_on_error=False)

    async def renew(self, now: float) -> None:
        """Every live lease of this instance to lapse at `now + LEASE`, in one round trip (none without any). Raises
        CountersUnavailable like any call; the Governor tries again next tick. Redis out of reach for longer than
        LEASE lets the leases lapse: their streams then no longer count against their limits until they end."""
        by_key: dict[str, list[str]] = {}
        for lease, keys in self._live.items():
            for key in keys:
                by_key.setdefault(key, []).append(lease)
        if not by_key:
            return
        args: list[Any] = [repr(now + LEASE), int(LEASE * 1000)]
        for leases in by_key.values():
            args += [len(leases), *leases]
        await self._call(lambda: self._renew(keys=list(by_key), args=args))

    async def seed(self, key: str, spent: float, expires_at: float) -> None:
        await self._call(lambda: self.client.set(PREFIX + key, repr(spent), nx=True, exat=int(expires_at)))

    async def read(self, keys: list[str]) -> list[float | None]:
        if not keys:
            return []
        values = await self._call(lambda: self.client.mget([PREFIX + key for key in keys]))
        return [None if v is None else float(v) for v in values]

    async def close(self) -> None:
        if self._settling is not None:  # the Governor waited for its settlements: what still runs goes
            self._settling.cancel()
            await asyncio.gather(self._settling, return_exceptions=True)
        self._live.clear()  # nothing renews them now: they lapse within LEASE
        await self.client.aclose()

    async def _call(self, command: Callable[[], Awaitable[Any]]) -> Any:
        """`command()` awaited within the timeout; CountersUnavailable at once while the circuit is open."""
        if self._open_until and self._clock() < self._open_until:
            raise self._unavailable(f"Redis at {_where(self.url)} failed within the last {RETRY_INTERVAL:g} s")
        written: list[bool] = []
        token = _WRITTEN.set(written)
        try:
            async with asyncio.timeout(self.timeout):  # the socket timeouts bound each step; this the whole call
                result = await command()
        except self._errors as exc:
            self._open_until = self._clock() + RETRY_INTERVAL
            # maybe_ran: some of the command reached the socket, so Redis may run it after we gave up on it. Not
            # when connecting failed (nothing of it was written) or Redis answered with an error (it did not run).
            maybe_ran = bool(written) and not isinstance(exc, self._answered)
            raise self._unavailable(f"Redis at {_where(self.url)}: {type(exc).__name__}: {exc}", maybe_ran) from None
        finally:
            _WRITTEN.reset(token)
        self._open_until = 0.0
        return result


def _noting_writes(base: type) -> type:
    """`base` (redis-py's connection class for the URL) noting in _WRITTEN when it writes a command: after it is
    connected, so a refused or timed-out connect (its handshake, AUTH and SELECT, included) writes nothing."""

    class NotingWrites(base):  # type: ignore[misc, valid-type]
        async def connect(self, *args: Any, **kwargs: Any) -> None:
            token = _WRITTEN.set(None)
            try:
                await super().connect(*args, **kwargs)
            finally:
                _WRITTEN.reset(token)

        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if not self.is_connected:
                await self.connect()
            written = _WRITTEN.get()
            if written is not None:
                written.append(True)
            await super().send_packed_command(command, check_health)

    return NotingWrites


def _where(url: str) -> str:
    """host:port/db of a Redis URL, never its password."""
    rest = url.split("://", 1)[-1]
    return rest.rpartition("@")[2]
