"""404s for unknown paths are logged so a misconfigured client shows up, but a scanner cannot flood the log:
each distinct path once, at most `burst` new paths a window, the rest counted on the next line, memory bounded."""

from __future__ import annotations

import logging

import pytest

from dragoman.not_found_log import NotFoundLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines:
    """The messages logged so far."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    def __call__(self) -> list[str]:
        return self._caplog.messages


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Lines:
    caplog.set_level(logging.WARNING, logger="test.notfound")
    return Lines(caplog)


def _log(clock: Clock, **kwargs: int) -> NotFoundLog:
    return NotFoundLog(logging.getLogger("test.notfound"), clock=clock, **kwargs)


def test_each_distinct_path_is_logged_once(lines: Lines) -> None:
    note = _log(Clock())
    for _ in range(5):
        note("POST", "/v2/messages")
    note("GET", "/v2/messages")
    assert lines() == ["404 POST /v2/messages: no such endpoint", "404 GET /v2/messages: no such endpoint"]


def test_a_scanner_gets_burst_lines_per_window_and_a_count(lines: Lines) -> None:
    clock = Clock()
    note = _log(clock, burst=3, window=60)
    for i in range(100):
        note("GET", f"/wp-admin/{i}.php")
    assert len(lines()) == 3
    clock.now += 60
    note("GET", "/.env")
    assert lines()[-1] == "404 GET /.env: no such endpoint (97 more unknown paths were not logged)"
    note("GET", "/.git/config")
    assert lines()[-1] == "404 GET /.git/config: no such endpoint"


def test_memory_of_seen_paths_is_bounded(lines: Lines) -> None:
    note = _log(Clock(), burst=10_000, max_paths=8)
    for i in range(50):
        note("GET", f"/p/{i}")
    assert len(note._seen) <= 8
    note("GET", "/p/0")  # forgotten once the set started over: logged again, never more than once per fill
    assert lines().count("404 GET /p/0: no such endpoint") == 2


def test_client_text_stays_on_one_bounded_line(lines: Lines) -> None:
    note = _log(Clock())
    note("GET", "/a\nFAKE 200 OK\r" + "x" * 5000)
    (line,) = lines()
    assert "\n" not in line and "\r" not in line
    assert line.startswith("404 GET /a\\nFAKE 200 OK\\r")
    assert len(line) < 300


def test_a_key_in_the_path_is_redacted(lines: Lines) -> None:
    # a client that put its key into ANTHROPIC_BASE_URL sends it in every path
    note = _log(Clock())
    key = "sk-ant-api03-" + "Ab3" * 30
    note("POST", f"/{key}/v1/messages")
    assert key not in lines()[0] and "[REDACTED]" in lines()[0]
