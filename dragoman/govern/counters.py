"""Where budgets and rate limits keep their counts: one small interface, two backends. `MemoryCounters` (one
process, the default) lives here; `RedisCounters` (shared by every instance) in redis_counters.py does the same
steps in Lua, one round trip for a request's whole admission and one for its settlement.

Admission is all or nothing: every budget, bucket and stream slot of a request is checked first, and only when
all pass is anything charged. Budgets are checked first (402 wins over 429), then buckets, then streams."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from dragoman.govern.budgets import BudgetItem
from dragoman.govern.limits import RateItem, StreamItem, gcra_admit, gcra_settle

OK, MISSING, BUDGET, RATE, STREAM = "ok", "missing", "budget", "rate", "stream"

# Shared counters hold a stream slot as a lease that lapses LEASE seconds after it was taken or last renewed; the
# instance holding it renews all its live leases every RENEW_EVERY seconds. 60 s: a crashed instance's slots come
# back within a minute, while renewing every 20 s lets a live stream ride out two missed renewals (a Redis blip, a
# stalled event loop: up to about 40 s) before its slot lapses, for one small round trip per instance per 20 s.
LEASE = 60.0
RENEW_EVERY = LEASE / 3


class Plan(NamedTuple):
    """What one request must pass: its budgets, its buckets, its stream slots (`lease` names its slot)."""

    budgets: list[BudgetItem]
    rates: list[RateItem]
    streams: list[StreamItem]
    lease: str


class Outcome(NamedTuple):
    """An admission's result. `status` OK: all charged. MISSING: budget counters (`index` lists them) must be seeded
    first, nothing charged. BUDGET, RATE, STREAM: refused by the item at `index` of its list; retry after `wait`."""

    status: str
    index: list[int]
    wait: float
    spent: list[float]  # per budget item (0 where missing)
    tats: list[float]  # per rate item: after the charge when admitted, as found when refused


class Settlement(NamedTuple):
    """What to count once an answer is over: spend into budget counters that exist, token corrections
    (key, limit, delta) into buckets, and stream slots to free."""

    budget_keys: list[str]
    cost: float
    corrections: list[tuple[str, int, float]]
    streams: list[str]
    lease: str


class Counters(Protocol):
    async def admit(self, plan: Plan, window: float, now: float) -> Outcome: ...

    async def settle(self, settlement: Settlement, window: float, now: float) -> None: ...

    async def seed(self, key: str, spent: float, expires_at: float) -> None:
        """Set a budget counter to `spent` unless it exists (another instance seeded it, or spend arrived)."""

    async def read(self, keys: list[str]) -> list[float | None]:
        """Budget counters as they are (None: missing)."""

    async def renew(self, now: float) -> None:
        """Push the lapse of this instance's live stream leases to `now + LEASE` (shared counters only)."""

    async def close(self) -> None: ...


class MemoryCounters:
    """Counters in this process's memory: exact, and lost on restart (budgets are then seeded from the audit).
    With `serve --workers N` each worker counts alone: use Redis to share."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.tats: dict[str, float] = {}
        self.streams: dict[str, int] = {}

    async def admit(self, plan: Plan, window: float, now: float) -> Outcome:
        return self.admit_now(plan, window, now)

    def admit_now(self, plan: Plan, window: float, now: float) -> Outcome:
        spent_by = self.spent
        spent: list[float] = []
        missing: list[int] = []
        for i, item in enumerate(plan.budgets):
            value = spent_by.get(item.key)
            if value is None:
                missing.append(i)
                value = 0.0
            spent.append(value)
            if value >= item.ref.limit:
                return Outcome(BUDGET, [i], item.end - now, spent, [])
        if missing:
            return Outcome(MISSING, missing, 0.0, spent, [])
        tats = self.tats
        new_tats: list[float] = []
        for i, rate in enumerate(plan.rates):
            tat, wait = gcra_admit(tats.get(rate.key), rate, window, now)
            if wait:
                return Outcome(RATE, [i], wait, spent, [tats.get(rate.key, now) for rate in plan.rates])
            new_tats.append(tat)
        for i, slot in enumerate(plan.streams):
            if self.streams.get(slot.key, 0) >= slot.limit:
                return Outcome(STREAM, [i], 1.0, spent, [tats.get(rate.key, now) for rate in plan.rates])
        for rate, tat in zip(plan.rates, new_tats):
            tats[rate.key] = tat
        for slot in plan.streams:
            self.streams[slot.key] = self.streams.get(slot.key, 0) + 1
        return Outcome(OK, [], 0.0, spent, new_tats)

    async def settle(self, settlement: Settlement, window: float, now: float) -> None:
        self.settle_now(settlement, window, now)

    def settle_now(self, settlement: Settlement, window: float, now: float) -> None:
        if settlement.cost:
            for key in settlement.budget_keys:
                if key in self.spent:  # a missing counter is seeded from the audit, which holds this spend
                    self.spent[key] += settlement.cost
        for key, limit, delta in settlement.corrections:
            if delta:
                self.tats[key] = gcra_settle(self.tats.get(key), limit, delta, window, now)
        for key in settlement.streams:
            count = self.streams.get(key, 0) - 1
            if count > 0:
                self.streams[key] = count
            else:
                self.streams.pop(key, None)

    async def seed(self, key: str, spent: float, expires_at: float) -> None:
        self.spent.setdefault(key, spent)

    async def read(self, keys: list[str]) -> list[float | None]:
        return [self.spent.get(key) for key in keys]

    async def renew(self, now: float) -> None:
        pass  # no lease: this process's slots die with it

    async def close(self) -> None:
        pass
