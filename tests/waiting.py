"""The one way the tests wait for what another process or thread does: `wait_for(predicate, timeout, what)`.

What they wait on (a port that answers, a row another process wrote, a file a gateway rewrote) lives in another
process, so there is no event object to block on in this one: the condition itself is polled, with a short pause
between looks, and a deadline that only bounds a broken run (its expiry fails the test naming what never
happened; no test asserts how long anything took). Every poll loop in the suite is this one."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, step: float = 0.02,
             *, alive: subprocess.Popen | None = None, log: Callable[[], str] | None = None) -> T:
    """Poll `predicate` until it returns something truthy, and return that; AssertionError naming `what` when
    `timeout` seconds pass first, or at once when the process `alive` exits meanwhile (with `log()` shown)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {alive.returncode}\n{log() if log else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{log() if log else ''}")
        time.sleep(step)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> None:
    """`wait_for`, for a condition whose value nobody needs."""
    wait_for(predicate, timeout, what, step)
