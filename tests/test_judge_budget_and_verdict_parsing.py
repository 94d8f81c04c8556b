"""The judge's budget on an injected clock (calls per sliding hour, dollars per UTC day) and how its answer is
read (PASS or FAIL first, then why; anything else is no verdict); a full queue drops the call, counted."""

from __future__ import annotations

import asyncio

import pytest

from dragoman.config.loop import JudgeSettings
from dragoman.loop.judge import Budget, Judge, parse_verdict
from dragoman.observe.record import AuditRecord
from dragoman.protocols import anthropic as A


class Clock:
    def __init__(self) -> None:
        self.now = 86400.0 * 20_000 + 3600.0  # 01:00 UTC on some day

    def __call__(self) -> float:
        return self.now


def test_calls_per_hour_slide_with_the_clock() -> None:
    clock = Clock()
    budget = Budget(JudgeSettings(route="j", max_calls_per_hour=2), clock)
    assert budget.take() is None and budget.take() is None
    assert budget.take() == "calls_per_hour"
    clock.now += 3599
    assert budget.take() == "calls_per_hour"
    clock.now += 1
    assert budget.take() is None


def test_dollars_per_day_reset_at_midnight_utc() -> None:
    clock = Clock()
    budget = Budget(JudgeSettings(route="j", max_calls_per_hour=1000, max_usd_per_day=1.0), clock)
    assert budget.take() is None
    budget.spend(0.6)
    assert budget.take() is None
    budget.spend(0.6)
    assert budget.take() == "usd_per_day"
    clock.now += 23 * 3600  # the next UTC day
    assert budget.take() is None


@pytest.mark.parametrize(("text", "verdict", "why"), [
    ("PASS\nit edited the file", "pass", "it edited the file"),
    ("fail: never ran the tests", "fail", "never ran the tests"),
    ("**FAIL** — wrong file", "fail", "wrong file"),
    ("The answer is fine.", None, "The answer is fine."),
    ("PASSABLE", None, "PASSABLE"),
])
def test_the_judges_answer_is_read_as_pass_fail_and_why(text: str, verdict: str | None, why: str) -> None:
    assert parse_verdict(text) == (verdict, why)


def test_a_full_queue_drops_the_call_and_counts_it() -> None:
    async def scenario() -> Judge:
        async def send(req: A.MessagesRequest) -> tuple[bytes, float | None]:
            raise AssertionError("no worker runs in this test")

        judge = Judge(JudgeSettings(route="j", sample=1.0, queue=1), send, lambda signal: None)
        record = AuditRecord(time=0.0, request_id="req_1", status=200)
        request = b'{"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}'  # as sent
        judge.offer(record, request, b'{"content": []}')
        judge.offer(record, request, b'{"content": []}')
        judge.offer(record, request, None)  # no whole answer (a stream the client stopped reading): not queued
        return judge

    assert asyncio.run(scenario()).dropped == {"queue": 1}
