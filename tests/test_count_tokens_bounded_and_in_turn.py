"""count_tokens keeps the event loop running however large the request (the tokenizer holds the GIL while it
encodes): a request's first `COUNT_CHARS` characters are counted exactly and the rest estimated at their rate, so
the tokenizer never sees more than the cap; a request within the cap is counted exactly as before; and counts take
turns on one thread of their own instead of running side by side."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from dragoman import tokens
from dragoman.protocols import anthropic as A
from tests.shared_fixtures import claude_code_text

pytestmark = pytest.mark.timeout(60)

CAP = 100_000  # the tests' cap, so the tokenizer's work stays small


class _Recording:
    """The real encoding, noting how many characters it was given."""

    def __init__(self, encoding: Any) -> None:
        self._encoding = encoding
        self.seen = 0

    def encode_ordinary(self, text: str) -> list[int]:
        self.seen += len(text)
        return self._encoding.encode_ordinary(text)


def _request(system: str, *turns: str) -> A.CountTokensRequest:
    return A.CountTokensRequest(model="m", system=system,
                                messages=[A.Message(role="user", content=turn) for turn in turns])


def _count(monkeypatch: pytest.MonkeyPatch, request: A.CountTokensRequest, cap: int) -> tuple[int, int]:
    """(count_tokens(request) with `cap`, the characters the tokenizer was given)."""
    recording = _Recording(tokens._get_encoding())
    monkeypatch.setattr(tokens, "_get_encoding", lambda: recording)
    monkeypatch.setattr(tokens, "COUNT_CHARS", cap, raising=False)
    return tokens.count_tokens(request), recording.seen


def test_a_request_past_the_cap_is_counted_up_to_it_and_estimated_beyond(monkeypatch):
    # The cap falls inside the second message: the tokenizer sees the system prompt, the first message and
    # part of the second, never the third.
    text = claude_code_text(3 * CAP)
    request = _request(text[:CAP // 4], text[:CAP // 2], text[:CAP], text)
    size = CAP // 4 + CAP // 2 + CAP + len(text)
    exact, seen = _count(monkeypatch, request, cap=size)
    assert seen == size

    estimate, seen = _count(monkeypatch, request, cap=CAP)
    assert seen == CAP, "the tokenizer was given more than the cap"
    # The rest is estimated at the counted part's rate: on Claude Code's own text, 1.7% high.
    assert abs(estimate - exact) <= exact * 0.03, (estimate, exact)


def test_a_request_within_the_cap_is_counted_exactly(monkeypatch):
    text = claude_code_text(CAP)
    request = _request(text[:CAP // 4], text[CAP // 4:])
    whole = len(tokens._get_encoding().encode_ordinary(text[:CAP // 4]))
    whole += len(tokens._get_encoding().encode_ordinary(text[CAP // 4:]))
    count, seen = _count(monkeypatch, request, cap=CAP)
    assert seen == CAP
    assert count == whole + 4  # 4: the message's framing


def test_counts_take_turns_on_one_thread_of_their_own():
    gate = threading.Event()
    first_in = threading.Event()
    log: list[tuple[str, str, str]] = []
    busy = []

    def count(request: A.CountTokensRequest) -> int:
        busy.append(request.model)
        log.append(("in", request.model, threading.current_thread().name))
        if request.model == "first":
            first_in.set()
            assert gate.wait(10), "the test never let the first count finish"
        log.append(("out", request.model, str(len(busy))))
        busy.remove(request.model)
        return 1

    async def scenario() -> None:
        first = asyncio.ensure_future(tokens.count_in_turn(A.CountTokensRequest(model="first", messages=[]), count))
        assert await asyncio.to_thread(first_in.wait, 10), "the first count never started"
        second = asyncio.ensure_future(tokens.count_in_turn(A.CountTokensRequest(model="second", messages=[]), count))
        await asyncio.sleep(0)  # the second count is handed over while the first still runs
        gate.set()
        assert await asyncio.gather(first, second) == [1, 1]

    asyncio.run(scenario())
    assert [(step, model) for step, model, _ in log] == [("in", "first"), ("out", "first"), ("in", "second"),
                                                          ("out", "second")]
    assert [busy_then for step, _, busy_then in log if step == "out"] == ["1", "1"], "two counts ran side by side"
    assert all(name.startswith("dragoman-count-tokens") for step, _, name in log if step == "in")
