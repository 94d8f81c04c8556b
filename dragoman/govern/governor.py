"""The Governor: budgets and rate limits around one Messages request.

    admission = await governor.admit(grant, requested_model, input_estimate, stream)   # or 402 / 429 / 529
    ... the exchange; admission.headers go out with the answer ...
    governor.settle(admission, input_tokens, output_tokens, cost_usd)                  # in the finally

`admit` makes one backend call (one Redis round trip) for every check of the request; a budget counter that does
not exist yet is first seeded from the audit store (once per scope and period). `settle` never waits: in memory it
is a few dict updates, on Redis a background task (one more round trip, off the response path).

When the shared counters cannot be reached (governance.limits.on_unreachable): `open` admits without checks,
counts dragoman_governance_backend_errors_total and logs at most once per _LOG_EVERY seconds; `closed` refuses with
529 overloaded_error. The Redis backend's circuit keeps a dead Redis from costing anything per request.

No stream slot is left held, and nothing is counted twice: a settlement Redis did not take waits in a bounded queue
(pending.py) and is sent again, in order, once Redis answers (a timer every RETRY_AFTER seconds while any wait, or
the next call Redis answers). Whole when it certainly did not run (connecting failed, the circuit was open, Redis
answered with an error); when it may have run (it was written, then timed out), only its idempotent part goes
again, freeing its stream slot: its spend and token corrections are not resent (at most that request's worth
uncounted, logged), which needs no key per request in Redis. An admission that may have run likewise queues the
release of its stream slot only, never a refund of its request and input-token charge (at most one request's worth
over-charged: the safe side of a limit); one Redis answered (admitted or refused) releases nothing, unless its
caller went away while Redis answered (the call runs shielded from the cancellation): an admitted one then gives
back all it charged. close() waits (bounded) for those, then sends the queue once more.

Stream slots on Redis are short leases (counters.LEASE): while this instance's streams run, one task renews all
their leases every RENEW_EVERY seconds in one round trip (started by the first admission that takes a slot,
stopped by close()); a renewal Redis misses is tried again next tick and fails no request."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from dragoman import errors as E
from dragoman.redaction import redact
from dragoman.config.governance import GovernanceSettings
from dragoman.govern import budgets as B
from dragoman.govern import limits as L
from dragoman.govern.counters import (
    BUDGET, MISSING, OK, RATE, RENEW_EVERY, Counters, MemoryCounters, Outcome, Plan, Settlement,
)
from dragoman.govern.grant import Grant
from dragoman.govern.pending import PendingSettlements
from dragoman.govern.periods import rfc3339
from dragoman.observe.stores import AuditStore

log = logging.getLogger("dragoman.govern")

_LOG_EVERY = 10.0  # seconds between two "counters unreachable" log lines
_BUDGET_HEADER = "x-dragoman-budget-warning"
SEED_TIMEOUT = 5.0  # seconds the audit store may take to give a missing budget counter its spend
RETRY_AFTER = 1.0  # seconds between two retries of the queued settlements while Redis does not take them
CLOSE_WAIT = 2.0  # seconds close() waits for admissions and settlements still running, then for the last flush


class CountersUnavailable(Exception):
    """The shared counters did not answer in time (or their circuit is open). `maybe_ran`: the command was written
    to Redis' socket, so Redis may have run it, or run it still, after the client gave up on it."""

    def __init__(self, message: str, maybe_ran: bool = False) -> None:
        super().__init__(message)
        self.maybe_ran = maybe_ran


class Admission:
    """A request let through: the headers its answer carries, and what `settle` must count."""

    __slots__ = ("headers", "plan", "settled")

    def __init__(self, headers: dict[str, str], plan: Plan | None) -> None:
        self.headers = headers
        self.plan = plan
        self.settled = plan is None


UNGOVERNED = Admission({}, None)  # nothing applies (or the counters were unreachable, open): nothing to settle


class Governor:
    """Budgets and rate limits for one gateway process, on memory or Redis counters."""

    def __init__(
        self,
        settings: GovernanceSettings,
        store: Callable[[], AuditStore | None] = lambda: None,
        metrics: Any = None,
        *,
        clock: Callable[[], float] = time.time,
        counters: Counters | None = None,
    ) -> None:
        limits = settings.limits
        self.backend = limits.backend
        self.counters: Counters = counters or _counters(settings)
        self._store = store
        self.metrics = metrics
        self.clock = clock
        self._leases = map(f"{os.getpid()}-{os.urandom(4).hex()}-{{}}".format, itertools.count())
        self._seeding: dict[str, asyncio.Future] = {}
        self._warned: dict[str, float] = {}  # budget counters already logged past their soft share: their period end
        self._warned_until = float("inf")  # the first of those ends: then the ended ones are forgotten
        self.seed_timeout = SEED_TIMEOUT
        self._pending = PendingSettlements(clock)
        self._flushing: asyncio.Future | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._last_error_log = -_LOG_EVERY
        self._tasks: set[asyncio.Task] = set()
        self._renewing: asyncio.Task | None = None  # renews the stream leases; not in _tasks: it never ends
        self._closed = False
        self.uncounted = 0  # settlements whose spend and tokens were not resent: they may have run (see _resendable)
        self._last_uncounted_log = -_LOG_EVERY
        self.close_wait = CLOSE_WAIT
        self.configure(settings)

    def configure(self, settings: GovernanceSettings) -> None:
        """Take a reloaded config's budgets and limits (the backend stays what the process started with)."""
        limits = settings.limits
        self.window = limits.window
        self.fail_open = limits.on_unreachable == "open"
        self.budget_rules = B.BudgetRules(settings.budgets)
        self.limit_rules = L.LimitRules(limits.rules)
        self._per_grant: dict[Grant | None, tuple[list[tuple[str, Any]], list[B.BudgetRef]]] = {}
        self._items: dict[Grant | None, tuple[float, list[B.BudgetItem]]] = {}

    # ---- admission ---------------------------------------------------------------------------------------

    async def admit(self, grant: Grant | None, requested_model: str, input_estimate: int, stream: bool) -> Admission:
        """Let the request through (its Admission) or raise BillingError (402), RateLimited (429) or, with closed
        counters unreachable, Overloaded (529). The model allow-list (403) is checked before, by the keys."""
        scoped, refs = self._scopes(grant)
        if not scoped and not refs:
            return UNGOVERNED
        now = self.clock()
        rates, streams = L.rate_items(scoped, input_estimate, stream)
        # Every plan has a lease id: it names its stream slots, which its settlement or release frees by that name.
        plan = Plan(self._budget_items(grant, refs, now), rates, streams, next(self._leases))
        try:
            outcome = await self._counted(plan, now)
            if outcome.status == MISSING:
                await self._seed([plan.budgets[i] for i in outcome.index])
                outcome = await self._counted(plan, now)
                if outcome.status == MISSING:  # gone again since its seed: Redis restarted, was flushed, evicts
                    raise CountersUnavailable("budget counters vanished right after their seed")
        except CountersUnavailable as exc:
            if exc.maybe_ran:
                self._send_if_any(_release_slots(plan))
            return self._unavailable(exc)
        if self._pending:
            self._kick()  # Redis answers again: what it missed goes now
        if outcome.status == OK:
            if plan.streams and self._renewing is None:
                self._start_renewing()
            return Admission(self._headers(plan, outcome.spent, outcome.tats, now), plan)
        raise self._refusal(plan, outcome, now)

    async def _counted(self, plan: Plan, now: float) -> Outcome:
        """The counters' admission of `plan`. On Redis the call is shielded: should the caller go away (the client
        disconnected) while it runs, it completes (tracked: close() waits for it), and what it charged is released."""
        if isinstance(self.counters, MemoryCounters):
            return self.counters.admit_now(plan, self.window, now)
        task = self._track(self.counters.admit(plan, self.window, now))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(functools.partial(self._orphaned, plan))
            raise

    def _orphaned(self, plan: Plan, task: asyncio.Future) -> None:
        """An admission whose caller went away: give back what it charged (all of it when Redis admitted it, its
        stream slot when it may have run); one Redis refused charged nothing."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None and task.result().status == OK:
            self._send(_refund(plan))
        elif getattr(exc, "maybe_ran", False):
            self._send_if_any(_release_slots(plan))

    def _scopes(self, grant: Grant | None) -> tuple[list[tuple[str, Any]], list[B.BudgetRef]]:
        found = self._per_grant.get(grant)
        if found is None:
            if len(self._per_grant) > 10_000:
                self._per_grant.clear()
                self._items.clear()
            found = self._per_grant[grant] = (self.limit_rules.for_grant(grant), self.budget_rules.for_grant(grant))
        return found

    def _budget_items(self, grant: Grant | None, refs: list[B.BudgetRef], now: float) -> list[B.BudgetItem]:
        """The counters of `refs` this period, cached until the first of their periods ends."""
        if not refs:
            return []
        cached = self._items.get(grant)
        if cached is not None and cached[0] > now:
            return cached[1]
        items = B.budget_items(refs, now)
        self._items[grant] = (min(item.end for item in items), items)
        return items

    def _headers(self, plan: Plan, spent: list[float], tats: list[float], now: float) -> dict[str, str]:
        headers = L.ratelimit_headers(plan.rates, tats, self.window, now) if plan.rates else {}
        warnings = []
        for item, value in zip(plan.budgets, spent):
            text = B.warning(item, value)
            if text is not None:
                warnings.append(text)
                if item.key not in self._warned:
                    self._remember_warned(item, now)
                    log.warning("budget %s passed its soft threshold: $%.2f spent of $%.2f per %s (resets %s)",
                                item.ref.scope, value, item.ref.limit, item.ref.period, rfc3339(item.end))
        if warnings:
            headers[_BUDGET_HEADER] = ", ".join(warnings)
        return headers

    def _remember_warned(self, item: B.BudgetItem, now: float) -> None:
        """Note that `item` was logged; a counter whose period ended is forgotten (a new period has a new key)."""
        if now >= self._warned_until:
            self._warned = {key: end for key, end in self._warned.items() if end > now}
            self._warned_until = min(self._warned.values(), default=float("inf"))
        self._warned[item.key] = item.end
        self._warned_until = min(self._warned_until, item.end)

    def _refusal(self, plan: Plan, outcome: Outcome, now: float) -> E.GatewayError:
        """The error a refused request gets: 402 for a budget, 429 for a bucket or stream slot."""
        index = outcome.index[0]
        if outcome.status == BUDGET:
            item = plan.budgets[index]
            self._count("budget_refused", item.ref.scope)
            return E.BillingError(B.exhausted_message(item, outcome.spent[index]), headers={"x-should-retry": "false"})
        limited = plan.rates[index] if outcome.status == RATE else plan.streams[index]
        self._count("rate_limited", limited.scope)
        headers = L.ratelimit_headers(plan.rates, outcome.tats, self.window, now) if outcome.tats else {}
        headers.update(L.retry_headers(outcome.wait))
        return E.RateLimited(L.refusal_message(limited, self.window, outcome.wait), headers=headers)

    def _unavailable(self, exc: Exception) -> Admission:
        if self.metrics is not None:
            self.metrics.governance_backend_error()
        now = time.monotonic()
        if now - self._last_error_log >= _LOG_EVERY:
            self._last_error_log = now
            what = "admitting without budget and rate-limit checks" if self.fail_open else "refusing requests"
            log.warning("governance counters unreachable (%s): %s (governance.limits.on_unreachable: %s)",
                        redact(str(exc)), what, "open" if self.fail_open else "closed")
        if self.fail_open:
            return UNGOVERNED
        raise E.Overloaded("the gateway's shared rate-limit and budget state is unreachable, and it is configured "
                           "to refuse requests then (governance.limits.on_unreachable: closed); retry shortly")

    def _count(self, what: str, scope: str) -> None:
        if self.metrics is not None:
            getattr(self.metrics, what)(scope.partition(":")[0])

    # ---- seeding from the audit store ---------------------------------------------------------------------

    async def _seed(self, items: list[B.BudgetItem]) -> None:
        """Seed missing budget counters from the audit's spend; concurrent requests share one query per counter."""
        await asyncio.gather(*(self._seed_one(item) for item in items))

    async def _seed_one(self, item: B.BudgetItem) -> None:
        running = self._seeding.get(item.key)
        if running is None:
            running = self._seeding[item.key] = asyncio.ensure_future(self._query_and_seed(item))
            running.add_done_callback(lambda _: self._seeding.pop(item.key, None))
        await asyncio.shield(running)

    async def _query_and_seed(self, item: B.BudgetItem) -> None:
        loop = asyncio.get_running_loop()
        query = loop.run_in_executor(None, self.audit_spend, item.ref.scope, item.start, item.end)
        try:
            # Bounded: a locked requests table or a PostgreSQL that stopped answering must not hold every request
            # of the scope (PostgreSQL also ends the query itself, store_postgres.SPEND_TIMEOUT).
            spent = await asyncio.wait_for(query, self.seed_timeout)
        except asyncio.TimeoutError:
            raise CountersUnavailable(f"audit store: the spend of {item.ref.scope} took over "
                                      f"{self.seed_timeout:g} s") from None
        except Exception as exc:  # noqa: BLE001 - a store that cannot answer is handled like unreachable counters
            raise CountersUnavailable(f"audit store: {exc}") from None
        await self.counters.seed(item.key, spent, item.end + 86_400)

    def audit_spend(self, scope: str, start: float, end: float) -> float:
        """The audit's SUM(cost_usd) for `scope` over [start, end); 0 without a store. Blocking."""
        store = self._store()
        if store is None:
            return 0.0
        column, value = B.seed_filter(scope)
        # To the micro-dollar, as the cost reports round: a float SUM drifts (0.7 + 0.2 is 0.8999…).
        return round(store.query_spend(column, value, start, end), 6)

    # ---- settlement --------------------------------------------------------------------------------------

    def settle(self, admission: Admission, input_tokens: int, output_tokens: int, cost_usd: float | None) -> None:
        """Count the answer's real usage and spend, and free its stream slot. Idempotent; never waits."""
        if admission.settled:
            return
        admission.settled = True
        plan = admission.plan
        assert plan is not None
        corrections = []
        for rate in plan.rates:
            if rate.dimension == L.INPUT:
                corrections.append((rate.key, rate.limit, input_tokens - rate.cost))
            elif rate.dimension == L.OUTPUT:
                corrections.append((rate.key, rate.limit, float(output_tokens)))
        settlement = Settlement([b.key for b in plan.budgets], cost_usd or 0.0, corrections,
                                [s.key for s in plan.streams], plan.lease)
        counters = self.counters
        if isinstance(counters, MemoryCounters):
            counters.settle_now(settlement, self.window, self.clock())
            return
        self._send(settlement)

    def _send(self, settlement: Settlement) -> None:
        self._track(self._settle(settlement))

    def _send_if_any(self, settlement: Settlement) -> None:
        if settlement.streams:
            self._send(settlement)

    def _track(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _settle(self, settlement: Settlement) -> None:
        try:
            await self.counters.settle(settlement, self.window, self.clock())
        except CountersUnavailable as exc:
            self._unavailable_settle(exc)
            resend = self._resendable(settlement, exc)
            if resend is not None:
                self._pending.add(resend)
                self._schedule_retry()
        else:
            if self._pending:
                self._kick()

    def _resendable(self, settlement: Settlement, exc: BaseException) -> Settlement | None:
        """What of a failed `settlement` may be sent again: all of it if it certainly did not run; else only the
        freeing of its stream slots (idempotent; None without any), its spend and token corrections dropped rather
        than risk counting them twice (logged at most every _LOG_EVERY seconds, counted in `uncounted`)."""
        if not getattr(exc, "maybe_ran", False):
            return settlement
        if settlement.cost or any(delta for _, _, delta in settlement.corrections):
            self.uncounted += 1
            now = time.monotonic()
            if now - self._last_uncounted_log >= _LOG_EVERY:
                self._last_uncounted_log = now
                log.warning("governance: %d settlement(s) timed out after they were written to Redis, which may have "
                            "counted them: their spend and token corrections are not sent again (the spend is in "
                            "the audit); their stream slots are freed", self.uncounted)
        if not settlement.streams:
            return None
        return Settlement([], 0.0, [], settlement.streams, settlement.lease)

    def _unavailable_settle(self, exc: Exception) -> None:
        if self.metrics is not None:
            self.metrics.governance_backend_error()
        log.debug("settlement queued for a retry: %s", exc)

    async def flush_pending(self) -> None:
        """Send the queued settlements now, oldest first; those Redis does not take stay queued. Concurrent
        callers share one attempt."""
        self._kick()
        if self._flushing is not None:
            await asyncio.shield(self._flushing)

    def _flushed(self, _: asyncio.Future) -> None:
        self._flushing = None

    async def _flush(self) -> None:
        batch = self._pending.take()
        if not batch:
            return
        now = self.clock()
        # One pipeline for all of them (RedisCounters batches settlements sent together), in queue order.
        results = await asyncio.gather(*(self.counters.settle(s, self.window, now) for _, s in batch),
                                       return_exceptions=True)
        failed = [(queued, self._resendable(s, result)) for (queued, s), result in zip(batch, results)
                  if isinstance(result, BaseException)]
        failed = [(queued, s) for queued, s in failed if s is not None]
        if failed:
            self._pending.put_back(failed)
            self._schedule_retry()

    def _kick(self) -> None:
        """Start sending the queue unless that is under way (or the Governor is closed)."""
        if self._flushing is None and not self._closed:
            self._flushing = self._track(self._flush())
            self._flushing.add_done_callback(self._flushed)

    def _schedule_retry(self) -> None:
        """Retry the queue in RETRY_AFTER seconds (a timer, not a loop: it is armed only while settlements wait)."""
        if self._retry is None and not self._closed:
            self._retry = asyncio.get_running_loop().call_later(RETRY_AFTER, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if self._pending:
            self._kick()

    # ---- stream leases -----------------------------------------------------------------------------------

    def _start_renewing(self) -> None:
        """Start the renewal of stream leases, once: counters in memory have none, and a closed Governor renews
        nothing."""
        if not isinstance(self.counters, MemoryCounters) and not self._closed:
            self._renewing = asyncio.ensure_future(self._renew_forever())

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            await self.renew_leases()

    async def renew_leases(self) -> None:
        """Renew every live stream lease of this instance now (one round trip). Never raises: one Redis did not
        take is tried again next tick, and the request holding it goes on either way."""
        try:
            await self.counters.renew(self.clock())
        except CountersUnavailable as exc:
            if self.metrics is not None:
                self.metrics.governance_backend_error()
            log.debug("stream leases not renewed, tried again in %g s: %s", RENEW_EVERY, redact(str(exc)))
        except Exception:  # noqa: BLE001 - a bug must not stop the renewals (each lease would lapse under its stream)
            log.exception("governance: renewing the stream leases failed; tried again in %g s", RENEW_EVERY)

    # ---- reading -----------------------------------------------------------------------------------------

    async def budgets(self) -> list[dict[str, Any]]:
        """Every budget with a counter this period (configured explicit scopes always), for GET /api/budgets."""
        now = self.clock()
        by_key: dict[tuple[str, str], B.BudgetRef] = {}
        configured = [ref for ref in self.budget_rules.refs() if not ref.scope.endswith(":*")]
        met = [ref for _, grant_refs in list(self._per_grant.values()) for ref in grant_refs]  # wildcards, keys' own
        for ref in configured + met:
            by_key.setdefault((ref.scope, ref.period), ref)
        items = B.budget_items(list(by_key.values()), now)
        try:
            values = await self.counters.read([item.key for item in items])
        except CountersUnavailable:
            values = [None] * len(items)
        out = []
        for item, value in zip(items, values):
            if value is None:
                loop = asyncio.get_running_loop()
                value = await loop.run_in_executor(None, self.audit_spend, item.ref.scope, item.start, item.end)
            out.append({"scope": item.ref.scope, "period": item.ref.period, "limit_usd": item.ref.limit,
                        "spent_usd": round(value, 6), "soft_fraction": item.ref.soft, "resets_at": rfc3339(item.end)})
        return out

    async def close(self) -> None:
        """Wait (bounded) for admissions and settlements still running, and the releases they queue; send the
        queue once more; then cancel what still runs, and close the counters. Nothing is retried after."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.close_wait
        while self._tasks and loop.time() < deadline:  # a finishing admission may start its release: wait for it too
            await asyncio.wait(list(self._tasks), timeout=deadline - loop.time())
        self._closed = True  # from here on no timer is armed and no flush started
        if self._renewing is not None:  # the leases still live lapse within LEASE, as a crashed instance's would
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._pending:
            await asyncio.wait([self._track(self._flush())], timeout=self.close_wait)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.counters.close()


def _refund(plan: Plan) -> Settlement:
    """A settlement undoing all that admitting `plan` charged (Redis said it did): its stream slots, and its
    request and input-token charges. No spend: an admission spends nothing."""
    refunds = [(rate.key, rate.limit, -rate.cost) for rate in plan.rates if rate.cost]
    return Settlement([], 0.0, refunds, [slot.key for slot in plan.streams], plan.lease)


def _release_slots(plan: Plan) -> Settlement:
    """For an admission that may or may not have run: free its stream slots (ZREM of its lease, harmless if it never
    ran). Its request and input-token charges stay: refunding what was maybe never charged could let a key past
    its limit; keeping them over-charges at most this one request."""
    return Settlement([], 0.0, [], [slot.key for slot in plan.streams], plan.lease)


def _counters(settings: GovernanceSettings) -> Counters:
    limits = settings.limits
    if limits.backend == "redis":
        from dragoman.govern.redis_counters import RedisCounters

        assert limits.redis_url is not None
        return RedisCounters(limits.redis_url, limits.timeout, CountersUnavailable)
    return MemoryCounters()
