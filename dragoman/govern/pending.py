"""Settlements the shared counters did not take (Redis slow or down), kept to be sent again in order once Redis
answers: dropping one would hold a stream slot until its lease lapses (no longer renewed, within counters.LEASE)
and lose its spend. Bounded: at most PENDING_MAX wait (past that the oldest go), and one that waited PENDING_TTL
seconds goes (by then the spend is in the audit, which seeds the next period's counters, and a stream lease is
the last resort). Drops are counted and logged at most every LOG_EVERY seconds."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from dragoman.govern.counters import Settlement

log = logging.getLogger("dragoman.govern")

PENDING_MAX = 10_000
PENDING_TTL = 300.0  # seconds
LOG_EVERY = 10.0


class PendingSettlements:
    """A bounded FIFO of (queued at, settlement), on the Governor's clock."""

    def __init__(self, clock: Callable[[], float], max_count: int = PENDING_MAX, ttl: float = PENDING_TTL) -> None:
        self._clock = clock
        self._max = max_count
        self._ttl = ttl
        self._queue: deque[tuple[float, Settlement]] = deque()
        self.dropped = 0
        self._last_log: float | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, settlement: Settlement) -> None:
        self._queue.append((self._clock(), settlement))
        self._trim()

    def take(self) -> list[tuple[float, Settlement]]:
        """Every waiting settlement still worth sending, oldest first; the queue is then empty."""
        now = self._clock()
        batch = [entry for entry in self._queue if entry[0] + self._ttl > now]
        self._dropped(len(self._queue) - len(batch), "waited too long")
        self._queue.clear()
        return batch

    def put_back(self, entries: list[tuple[float, Settlement]]) -> None:
        """Settlements a retry could not send: ahead of those queued since, with their first queuing time."""
        self._queue.extendleft(reversed(entries))
        self._trim()

    def _trim(self) -> None:
        over = len(self._queue) - self._max
        for _ in range(over):
            self._queue.popleft()
        self._dropped(over, "too many waiting")

    def _dropped(self, count: int, why: str) -> None:
        if count <= 0:
            return
        self.dropped += count
        now = self._clock()
        if self._last_log is None or now - self._last_log >= LOG_EVERY:
            self._last_log = now
            log.warning("governance: %d settlement(s) dropped (%s) while the shared counters were unreachable, %d "
                        "so far: their spend is in the audit, their stream slots lapse with their leases",
                        count, why, self.dropped)
