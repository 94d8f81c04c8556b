"""A circuit breaker per upstream: stop sending to an upstream that keeps failing, probe it to close again."""

from __future__ import annotations

import time
from typing import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Closed → open after `failures` failures in a row; open → half-open after `cooldown` seconds, when one
    probe request is let through; its success closes the breaker, its failure opens it again.

    `clock` (seconds, monotonic) is injectable so tests drive the cooldown instead of waiting it out."""

    __slots__ = ("failures", "cooldown", "_clock", "state", "_count", "_opened_at", "_probing")

    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self.state = CLOSED
        self._count = 0
        self._opened_at = 0.0
        self._probing = False

    def allow(self) -> bool:
        """May a request go to this upstream now? In half-open only one may, the probe: it holds the slot until
        the caller reports success(), failure() or release(). Ask only for a request about to be sent."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and self._cooled():
            self.state = HALF_OPEN
            self._probing = False
        if self.state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def ready(self) -> bool:
        """Would allow() let a request through now? Claims nothing and changes nothing."""
        if self.state == OPEN:
            return self._cooled()
        return self.state == CLOSED or not self._probing

    def success(self) -> None:
        self.state = CLOSED
        self._count = 0
        self._probing = False

    def release(self) -> None:
        """The probe ended without a verdict on the upstream's health (rate limited, cancelled): free its slot."""
        self._probing = False

    def failure(self) -> None:
        self._count += 1
        if self.state == HALF_OPEN or self._count >= self.failures:
            self.state = OPEN
            self._opened_at = self._clock()
            self._probing = False

    def _cooled(self) -> bool:
        return self._clock() - self._opened_at >= self.cooldown
