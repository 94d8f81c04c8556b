"""The judge's budget on an injected clock (calls per sliding hour, dollars per UTC day) and how its answer is
read (PASS or FAIL first, then why; anything else is no verdict); a full queue drops the call, counted. The budget
survives a reload or rollback that rebuilds the Judge (held to the new limits), and a call the gateway cannot price
counts at the price table's highest prices, never as $0."""

from __future__ import annotations

import asyncio
import logging
import types
from typing import Any

import pytest

from dragoman.config.loop import JudgeSettings, LoopSettings
from dragoman.config.model import Config
from dragoman.correctness_loop import CorrectnessLoop
from dragoman.loop.assess import Assessor
from dragoman.loop.judge import MAX_TOKENS, Budget, Judge, JudgeCall, _decode_request, parse_verdict
from dragoman.observe.pricing import BUILTIN
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


# ---- the budget across Judges, and calls without a price --------------------------------------------------------

BODY = b'{"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}'
PASS = b'{"content": [{"type": "text", "text": "PASS\\nok"}], "usage": {"input_tokens": 1000, "output_tokens": 100}}'


def _call(n: int) -> JudgeCall:
    return JudgeCall(request_id=f"req_{n}", route="r", model="m", shape=None, prompt_variant=None,
                     config_version=None, request=_decode_request(BODY), answer=b'{"content": []}')


def _loop(sent: list[A.MessagesRequest], cost: float) -> CorrectnessLoop:
    """A CorrectnessLoop as a gateway holds it, its judge route's send scripted ($`cost` a call)."""
    gateway = types.SimpleNamespace(observe=types.SimpleNamespace(store=None, metrics=None))
    loop = CorrectnessLoop(gateway, Assessor())  # type: ignore[arg-type]

    async def send(req: A.MessagesRequest) -> tuple[bytes, float | None]:
        sent.append(req)
        return PASS, cost

    loop._judge_send = send  # type: ignore[method-assign]
    return loop


def _config(**judge: Any) -> Config:
    return types.SimpleNamespace(loop=LoopSettings(judge=JudgeSettings(route="j", **judge)))  # type: ignore[return-value]


def test_a_reload_that_rebuilds_the_judge_keeps_the_hours_calls_under_the_new_limit() -> None:
    async def scenario() -> tuple[int, list[str | None]]:
        sent: list[A.MessagesRequest] = []
        loop = _loop(sent, 0.0)
        loop._start_judge(_config(sample=0.05, max_calls_per_hour=2))
        first = loop.judge
        verdicts = [await first.judge(_call(n)) for n in range(3)]  # type: ignore[union-attr]
        loop._start_judge(_config(sample=0.06, max_calls_per_hour=2))  # a reload (or a rollback): a new Judge
        assert loop.judge is not first
        verdicts.append(await loop.judge.judge(_call(3)))  # type: ignore[union-attr]
        loop._start_judge(_config(sample=0.06, max_calls_per_hour=3))  # a higher limit: one more call this hour
        verdicts += [await loop.judge.judge(_call(n)) for n in (4, 5)]  # type: ignore[union-attr]
        loop.stop()
        return len(sent), verdicts

    sent, verdicts = asyncio.run(scenario())
    assert verdicts == ["pass", "pass", None, None, "pass", None]
    assert sent == 3


def test_a_rollback_to_other_judge_settings_keeps_the_days_dollars() -> None:
    async def scenario() -> tuple[int, str | None]:
        sent: list[A.MessagesRequest] = []
        loop = _loop(sent, 1.0)  # $1 a judge call
        loop._start_judge(_config(max_calls_per_hour=100, max_usd_per_day=2.0))
        for n in range(2):
            await loop.judge.judge(_call(n))  # type: ignore[union-attr]
        loop._start_judge(_config(max_calls_per_hour=100, max_usd_per_day=2.0, concurrency=3))
        refused = await loop.judge.judge(_call(2))  # type: ignore[union-attr]
        dropped = dict(loop.judge.dropped)  # type: ignore[union-attr]
        loop.stop()
        assert dropped == {"usd_per_day": 1}
        return len(sent), refused

    assert asyncio.run(scenario()) == (2, None)


def test_a_judge_call_without_a_price_counts_against_the_dollar_cap_and_is_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[list[str | None], dict[str, int]]:
        async def unpriced(req: A.MessagesRequest) -> tuple[bytes, float | None]:
            return PASS, None  # the pricer knows neither the route's pricing nor the model

        # At the table's highest prices 1000 input and 100 output tokens cost $0.0225: after two, $0.045 is past $0.04.
        judge = Judge(JudgeSettings(route="j", max_calls_per_hour=1000, max_usd_per_day=0.04), unpriced,
                      lambda signal: None)
        verdicts = [await judge.judge(_call(n)) for n in range(3)]
        return verdicts, dict(judge.dropped)

    with caplog.at_level(logging.WARNING, logger="dragoman.loop"):
        verdicts, dropped = asyncio.run(scenario())
    assert verdicts == ["pass", "pass", None] and dropped == {"usd_per_day": 1}
    assert len([r for r in caplog.records if "has no price" in r.getMessage()]) == 1


def test_an_unpriced_answer_without_usage_is_bounded_by_the_request_and_max_tokens() -> None:
    async def scenario() -> float:
        async def unpriced(req: A.MessagesRequest) -> tuple[bytes, float | None]:
            return b'{"content": [{"type": "text", "text": "FAIL\\nno"}]}', None

        judge = Judge(JudgeSettings(route="j", max_calls_per_hour=1000), unpriced, lambda signal: None)
        await judge.judge(_call(0))
        return judge.budget._spent

    highest_output = max(price.output for price in BUILTIN.values())
    assert asyncio.run(scenario()) >= MAX_TOKENS * highest_output / 1_000_000
