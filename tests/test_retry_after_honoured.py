"""How long the gateway waits before retrying an upstream: the upstream's retry-after (or retry-after-ms) when it
is within `max_backoff`; beyond it, no wait at all (the next candidate is better); otherwise jittered
exponential backoff. The wait `candidates.select` actually takes is recorded, not timed."""

from __future__ import annotations

import asyncio
import random

import pytest

from dragoman.exchange import candidates
from dragoman.config.model import Retry
from dragoman.routing.retry import retry_delay
from tests.routing_helpers import PRIMARY_TEXT, Candidates, Clock, config_yaml, route
from tests.upstreams import ChatReply, ErrorReply

pytestmark = pytest.mark.timeout(20)

RETRY = Retry(attempts=3, backoff=0.5, max_backoff=2.0)


def test_retry_after_within_max_backoff_is_the_wait() -> None:
    assert retry_delay(1, RETRY, "0.6") == 0.6
    assert retry_delay(1, RETRY, "2") == 2.0


def test_retry_after_ms_is_preferred_when_present() -> None:
    assert retry_delay(1, RETRY, "2", retry_after_ms="450") == 0.45


def test_retry_after_beyond_max_backoff_means_do_not_retry_here() -> None:
    assert retry_delay(1, RETRY, "30") is None


def test_no_retry_once_the_attempts_are_used() -> None:
    assert retry_delay(RETRY.attempts, RETRY, None) is None


def test_without_retry_after_the_backoff_is_jittered_and_doubles() -> None:
    rand = random.Random(7)
    first = [retry_delay(1, RETRY, None, rand) for _ in range(50)]
    second = [retry_delay(2, RETRY, None, rand) for _ in range(50)]
    assert all(0.25 <= d <= 0.5 for d in first) and len(set(first)) > 1
    assert all(0.5 <= d <= 1.0 for d in second)


class _RecordedSleeps:
    """candidates' view of asyncio with `sleep` recorded and not waited: every other name is the real asyncio's."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result=None):  # noqa: ANN001, ANN201
        self.sleeps.append(delay)
        return await asyncio.sleep(0, result)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded = _RecordedSleeps()
    monkeypatch.setattr(candidates, "asyncio", recorded)
    return recorded.sleeps


def _rate_limited(retry_after: str) -> ErrorReply:
    return ErrorReply(429, {"error": {"message": "Rate limit reached", "type": "requests"}}, {"retry-after": retry_after})


def _ask(primary, backup, model: str = "primary") -> str:
    text = config_yaml([
        route("primary", primary.base_url, fallbacks=["backup"], retry={"attempts": 2, "backoff": 0.05, "max_backoff": 1}),
        route("backup", backup.base_url, retry={"attempts": 1}),
    ])

    async def one() -> str:
        async with Candidates(text, Clock()) as c:
            return (await c.ask(model))[0]

    return asyncio.run(one())


def _overloaded(status: int, retry_after: str) -> ErrorReply:
    return ErrorReply(status, {"error": {"message": "Overloaded", "type": "server_error"}},
                      {"retry-after": retry_after})


def _retryable(status: int, retry_after: str) -> ErrorReply:
    return _rate_limited(retry_after) if status == 429 else _overloaded(status, retry_after)


# Every status a retry may follow carries its retry-after into the wait, not only a 429.
RETRYABLE = [429, 503, 529]


@pytest.mark.parametrize("status", RETRYABLE)
def test_select_waits_the_retry_after_of_any_retryable_status(status, waits, primary, backup):
    primary.script([_retryable(status, "0.6"), ChatReply(text=PRIMARY_TEXT)])
    assert _ask(primary, backup) == "primary"
    assert waits == [0.6]
    assert len(primary.requests) == 2 and not backup.requests


@pytest.mark.parametrize("status", RETRYABLE)
def test_select_moves_on_at_once_when_retry_after_exceeds_max_backoff(status, waits, primary, backup):
    primary.script(_retryable(status, "30"))
    assert _ask(primary, backup) == "backup"
    assert waits == []
    assert len(primary.requests) == 1 and len(backup.requests) == 1
