"""Hot reload under load, over real sockets: while 4 client threads keep asking, the config file is replaced
(atomically by rename, and in place) with a valid new one — later requests reach the new upstream — and with
an invalid one — the server keeps serving the previous config and its stderr says why, with file:line.
SIGHUP reloads too. Not one request of the load loop may fail. Once with one process, once with --workers 2."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

import anthropic
import pytest

from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, USER_HI, config_yaml, route, wait_until, write_keeping_stamp
from tests.upstreams import ChatReply, Gate, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(20)

ROUTE = "gpt-5-via-gateway"
SIZE = 1024  # every config written here is padded to this size (see routing_helpers.write_keeping_stamp)
LOAD_SECONDS = 60.0  # an upper bound: the loop stops when its test leaves it


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[ScriptedChatUpstream, ScriptedChatUpstream]]:
    with ScriptedChatUpstream() as one, ScriptedChatUpstream() as two:
        yield one, two


@pytest.fixture
def u1(upstreams) -> ScriptedChatUpstream:
    upstreams[0].reset(ChatReply(text="from-u1", chunk_delay=0.02))
    return upstreams[0]


@pytest.fixture
def u2(upstreams) -> ScriptedChatUpstream:
    upstreams[1].reset(ChatReply(text="from-u2", chunk_delay=0.02))
    return upstreams[1]


def _pad(text: str) -> str:
    assert len(text.encode()) < SIZE - 3
    return text + "#" + " " * (SIZE - len(text.encode()) - 3) + "\n\n"


def _plain(upstream: ScriptedChatUpstream) -> str:
    return config_yaml([route(ROUTE, upstream.base_url)], default_route=ROUTE)


def valid(upstream: ScriptedChatUpstream) -> str:
    return _pad(_plain(upstream))


def _line_of(text: str, needle: str) -> int:
    return next(i for i, row in enumerate(text.splitlines(), 1) if needle in row)


def invalid(upstream: ScriptedChatUpstream) -> tuple[str, int]:
    """A config with a bad provider, and the line the error must name."""
    text = _pad(_plain(upstream).replace("provider: openai", "provider: openai_compatibel"))
    return text, _line_of(text, "openai_compatibel")


def broken_yaml(upstream: ScriptedChatUpstream) -> tuple[str, int]:
    """A config with a duplicate key, and the line of the duplicate."""
    text = _pad(_plain(upstream).replace("  model: gpt-5\n", "  model: gpt-5\n    model: gpt-4o\n", 1))
    return text, _line_of(text, "model: gpt-4o")


def replace_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_in_place(path: Path, text: str) -> None:
    with open(path, "r+", encoding="utf-8") as f:
        f.truncate(0)
        f.write(text)


class LoadLoop:
    """`threads` clients asking in a loop (JSON and streamed, alternately) until stopped or `seconds` pass."""

    def __init__(self, base_url: str, threads: int = 4, seconds: float = LOAD_SECONDS) -> None:
        self.base_url = base_url
        self.deadline = time.monotonic() + seconds
        self.answers: list[tuple[float, str]] = []  # (finish time, text)
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> "LoadLoop":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _run(self, index: int) -> None:
        with anthropic.Anthropic(base_url=self.base_url, api_key="sk-client", max_retries=0, timeout=10) as client:
            n = 0
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                n += 1
                try:
                    if (index + n) % 2:
                        with client.messages.stream(model=ROUTE, max_tokens=50, messages=USER_HI) as s:
                            message = s.get_final_message()
                    else:
                        message = client.messages.create(model=ROUTE, max_tokens=50, messages=USER_HI)
                    text = "".join(b.text for b in message.content if b.type == "text")
                    with self._lock:
                        self.answers.append((time.monotonic(), text))
                except Exception as exc:  # noqa: BLE001 - every failure is reported by the test
                    with self._lock:
                        self.failures.append(f"{type(exc).__name__}: {exc}")

    def since(self, moment: float) -> list[str]:
        with self._lock:
            return [text for at, text in self.answers if at > moment]

    def wait_for_answers_after(self, moment: float, n: int) -> None:
        """Block until `n` answers finished after `moment` (the load loop is the event: no fixed sleep)."""
        wait_until(lambda: len(self.since(moment)) >= n, 20, f"{n} answers")

    def settled_on(self, text: str, moment: float, n: int = 12) -> bool:
        """The last `n` answers finished after `moment` are all `text`."""
        recent = self.since(moment)
        return len(recent) >= n and set(recent[-n:]) == {text}


def _reload_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "reload failed" in line]


# ---- one process ------------------------------------------------------------------------------------


def test_file_replaced_under_load_reloads_and_an_invalid_file_keeps_the_old_config(u1, u2):
    with run_gateway(valid(u1), env=KEYS_ENV) as gw:
        path = gw.stderr_path.parent / "dragoman.yaml"
        with LoadLoop(gw.base_url) as load:
            wait_until(lambda: load.settled_on("from-u1", 0, 4), 20, "answers from the first upstream")

            replaced = time.monotonic()
            replace_atomically(path, valid(u2))
            wait_until(lambda: load.settled_on("from-u2", replaced), 20, "answers from the new upstream (rename)")

            text, line = invalid(u1)
            broken = time.monotonic()
            write_in_place(path, text)
            wait_until(lambda: _reload_errors(gw.stderr_text()), 20, "the reload error on stderr")
            error = _reload_errors(gw.stderr_text())[-1]
            assert f"{path}:{line}:" in error and "openai_compatibel" in error, error
            load.wait_for_answers_after(time.monotonic(), 4)
            assert set(load.since(broken)) == {"from-u2"}, "an invalid file must keep the previous config serving"

            fixed = time.monotonic()
            write_in_place(path, valid(u1))
            wait_until(lambda: load.settled_on("from-u1", fixed), 20, "answers from the first upstream again (in place)")
        assert load.failures == [], load.failures[:5]
        assert len(load.answers) > 20
        assert gw.proc.poll() is None


def test_sighup_reloads_and_a_broken_file_on_sighup_is_refused(u1, u2):
    with run_gateway(valid(u1), env=KEYS_ENV) as gw:
        path = gw.stderr_path.parent / "dragoman.yaml"
        with LoadLoop(gw.base_url) as load:
            wait_until(lambda: load.settled_on("from-u1", 0, 4), 20, "answers from the first upstream")

            write_keeping_stamp(path, valid(u2))  # invisible to the file watch: only SIGHUP can load it
            hup = time.monotonic()
            os.kill(gw.proc.pid, signal.SIGHUP)
            wait_until(lambda: load.settled_on("from-u2", hup), 20, "answers from the new upstream after SIGHUP")

            text, line = broken_yaml(u1)
            write_keeping_stamp(path, text)
            hup = time.monotonic()
            os.kill(gw.proc.pid, signal.SIGHUP)
            wait_until(lambda: _reload_errors(gw.stderr_text()), 20, "the reload error on stderr")
            error = _reload_errors(gw.stderr_text())[-1]
            assert f"{path}:{line}" in error, error
            load.wait_for_answers_after(time.monotonic(), 4)
            assert set(load.since(hup)) == {"from-u2"}, "a broken file on SIGHUP must keep the previous config serving"
        assert load.failures == [], load.failures[:5]
        assert gw.proc.poll() is None, "SIGHUP must not stop the server"


def test_a_reload_names_the_settings_that_wait_for_a_restart_and_applies_the_rest(u1, u2):
    waits = "take effect at the next restart"
    with run_gateway(valid(u1), env=KEYS_ENV) as gw:
        path = gw.stderr_path.parent / "dragoman.yaml"
        with LoadLoop(gw.base_url) as load:
            wait_until(lambda: load.settled_on("from-u1", 0, 4), 20, "answers from the first upstream")
            # The virtual-key cache and the audit writer are built once per process: a reload cannot apply them
            write_keeping_stamp(path, _pad(_plain(u2) + "governance:\n  keys: {enabled: false}\n"
                                                        "audit:\n  flush_interval: 0.2\n"))
            hup = time.monotonic()
            os.kill(gw.proc.pid, signal.SIGHUP)
            wait_until(lambda: load.settled_on("from-u2", hup), 20, "answers from the new upstream after SIGHUP")
            wait_until(lambda: waits in gw.stderr_text(), 20, "the reload naming what waits for a restart")
            [line] = [row for row in gw.stderr_text().splitlines() if waits in row]
            assert line.endswith(": audit, governance.keys"), line
            # a reload that changes only what a reload applies says nothing of the kind
            write_keeping_stamp(path, _pad(_plain(u1) + "governance:\n  keys: {enabled: false}\n"
                                                        "audit:\n  flush_interval: 0.2\n"))
            hup = time.monotonic()
            os.kill(gw.proc.pid, signal.SIGHUP)
            wait_until(lambda: load.settled_on("from-u1", hup), 20, "answers from the first upstream again")
        assert [row for row in gw.stderr_text().splitlines() if waits in row] == [line]
        assert load.failures == [], load.failures[:5]


def test_requests_in_flight_finish_on_the_config_they_started_with(u1, u2):
    # The first request to u1 streams its first words, then waits at the gate until the reload is done.
    gate = Gate()
    held = ChatReply(text="slow answer from u1", pieces=5, gate=gate, gate_before=2)
    first = threading.Lock()
    u1.script(lambda body: held if first.acquire(blocking=False) else ChatReply(text="from-u1"))
    with run_gateway(valid(u1), env=KEYS_ENV) as gw:
        path = gw.stderr_path.parent / "dragoman.yaml"
        result: dict[str, object] = {}

        def slow() -> None:
            with anthropic.Anthropic(base_url=gw.base_url, api_key="k", max_retries=0, timeout=10) as client:
                try:
                    with client.messages.stream(model=ROUTE, max_tokens=50, messages=USER_HI) as s:
                        result["text"] = s.get_final_message().content[0].text
                except Exception as exc:  # noqa: BLE001
                    result["error"] = exc

        thread = threading.Thread(target=slow)
        thread.start()
        try:
            assert gate.reached.wait(20), "the slow request never reached u1"
            write_keeping_stamp(path, valid(u2))
            os.kill(gw.proc.pid, signal.SIGHUP)
            with anthropic.Anthropic(base_url=gw.base_url, api_key="k", max_retries=0, timeout=10) as client:
                wait_until(lambda: client.messages.create(model=ROUTE, max_tokens=50, messages=USER_HI)
                           .content[0].text == "from-u2", 20, "the new config", step=0.1)
            assert "text" not in result, "the slow request finished before the reload"
        finally:
            gate.open()
        thread.join(timeout=10)
        assert result == {"text": "slow answer from u1"}


# ---- two worker processes ---------------------------------------------------------------------------


def run_workers(config_text: str, workers: int = 2) -> contextlib.AbstractContextManager[Gateway]:
    """`dragoman serve --workers N`, stopped on exit."""
    return run_gateway(config_text, env=KEYS_ENV, workers=workers)


def test_two_workers_reload_on_file_change_and_on_sighup(u1, u2):
    with run_workers(valid(u1)) as gw:
        path = gw.stderr_path.parent / "dragoman.yaml"
        with LoadLoop(gw.base_url) as load:
            wait_until(lambda: load.settled_on("from-u1", 0, 8), 20, "answers from the first upstream")

            replaced = time.monotonic()
            replace_atomically(path, valid(u2))
            wait_until(lambda: load.settled_on("from-u2", replaced, 20), 20, "every worker on the new upstream")

            text, line = invalid(u1)
            write_keeping_stamp(path, text)
            hup = time.monotonic()
            os.kill(gw.proc.pid, signal.SIGHUP)  # the supervisor passes it on to each worker
            wait_until(lambda: len(_reload_errors(gw.stderr_text())) >= 2, 20, "both workers refusing the file")
            assert all(f"{path}:{line}:" in error for error in _reload_errors(gw.stderr_text()))
            load.wait_for_answers_after(time.monotonic(), 8)
            assert set(load.since(hup)) == {"from-u2"}, "an invalid file must keep the previous config serving"

            write_keeping_stamp(path, valid(u1))
            hup = time.monotonic()
            os.kill(gw.proc.pid, signal.SIGHUP)
            wait_until(lambda: load.settled_on("from-u1", hup, 20), 20, "every worker back on the first upstream")
        assert load.failures == [], load.failures[:5]
        assert gw.proc.poll() is None, "SIGHUP must not stop the supervisor"
