"""The circuit breaker's states, driven by an injected clock (no test waits for a cooldown): closed until
`failures` failures in a row, open for `cooldown` seconds, then half-open with exactly one probe, which
closes it on success and opens it again (for a fresh cooldown) on failure."""

from __future__ import annotations

from dragoman.routing.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from tests.routing_helpers import Clock


def _opened(clock: Clock, failures: int = 2, cooldown: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failures, cooldown, clock)
    for _ in range(failures):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == OPEN
    return breaker


def test_opens_after_failures_in_a_row_and_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(3, 30.0, Clock())
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    assert breaker.state == CLOSED and breaker.allow()
    breaker.failure()
    assert breaker.state == OPEN and not breaker.allow()


def test_open_refuses_until_the_cooldown_has_passed_on_its_clock() -> None:
    clock = Clock()
    breaker = _opened(clock, cooldown=30.0)
    clock.advance(29.999)
    assert not breaker.ready() and not breaker.allow()
    assert breaker.state == OPEN
    clock.advance(0.001)
    assert breaker.ready()
    assert breaker.allow()
    assert breaker.state == HALF_OPEN


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = Clock()
    breaker = _opened(clock)
    clock.advance(30)
    assert breaker.allow()
    assert not breaker.ready()
    assert [breaker.allow() for _ in range(3)] == [False, False, False]


def test_a_successful_probe_closes_the_breaker() -> None:
    clock = Clock()
    breaker = _opened(clock)
    clock.advance(30)
    assert breaker.allow()
    breaker.success()
    assert breaker.state == CLOSED
    assert all(breaker.allow() for _ in range(3))


def test_a_failed_probe_opens_the_breaker_for_a_fresh_cooldown() -> None:
    clock = Clock()
    breaker = _opened(clock, cooldown=30.0)
    clock.advance(100)
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == OPEN and not breaker.allow()
    clock.advance(29)  # the cooldown counts from the failed probe, not from the first opening
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow() and breaker.state == HALF_OPEN


def test_release_frees_the_probe_slot_without_a_verdict() -> None:
    clock = Clock()
    breaker = _opened(clock)
    clock.advance(30)
    assert breaker.allow()
    breaker.release()  # e.g. the probe was rate limited, or its client went away
    assert breaker.state == HALF_OPEN
    assert breaker.ready() and breaker.allow(), "the next request must be able to probe"
    assert not breaker.allow()


def test_ready_claims_nothing() -> None:
    clock = Clock()
    breaker = _opened(clock)
    clock.advance(30)
    assert breaker.ready() and breaker.ready()
    assert breaker.state == OPEN  # a peek does not even move it to half-open
    assert breaker.allow()
