"""`--workers 2` against a real gateway process: a replacement worker that cannot start (its audit store is out of
reach for a moment: here its SQLite directory is moved away) is started again with backoff while the other worker
keeps serving, instead of the supervisor stopping every worker and exiting 0; a first start that fails in every
worker exits with the startup-failure code, as one process does, so systemd or Kubernetes restart it."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from dragoman.serving import _Backoff
from dragoman.worker_config import STARTUP_FAILURE
from tests.gateway import run_gateway
from tests.test_replacement_worker_starts_from_last_good_config import _serving, _workers
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)

RETRYING = "could not start; starting another in"


def test_replacement_that_cannot_start_is_retried_while_the_other_worker_serves() -> None:
    with tempfile.TemporaryDirectory(prefix="dragoman-store-") as tmp:
        store_dir = Path(tmp) / "store"
        store_dir.mkdir()
        away = Path(tmp) / "away"
        env = {"DRAGOMAN_AUDIT_STORE": str(store_dir / "audit.db")}
        with run_gateway(None, env=env, workers=2) as gw:
            wait_until(lambda: _serving(gw) == 2, 20, "both workers serving")
            before = _workers(gw.proc.pid)
            assert len(before) == 2, before

            os.rename(store_dir, away)  # a replacement cannot open the store now; the running workers hold it open
            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: RETRYING in gw.stderr_text() or gw.proc.poll() is not None, 20,
                       "the replacement failing to start")
            assert gw.proc.poll() is None, gw.stderr_text()  # the supervisor did not stop
            assert gw.request("GET", "/healthz").status == 200  # the surviving worker serves meanwhile
            assert _workers(gw.proc.pid) >= before - {victim}, "the surviving worker was stopped"

            os.rename(away, store_dir)  # the cause is gone: the next try starts a serving worker
            wait_until(lambda: _serving(gw) == 3 or gw.proc.poll() is not None, 40, "the replacement serving")
            assert gw.proc.poll() is None, gw.stderr_text()
            after = _workers(gw.proc.pid)
            assert len(after) == 2 and victim not in after, (before, after)
            assert gw.request("GET", "/healthz").status == 200
            stderr = gw.stderr_text()

    assert "could not start; stopping" not in stderr, stderr


def test_first_start_that_fails_in_every_worker_exits_with_the_startup_failure_code() -> None:
    with tempfile.TemporaryDirectory(prefix="dragoman-store-") as tmp:
        env = {"DRAGOMAN_AUDIT_STORE": str(Path(tmp) / "missing" / "audit.db")}  # its directory does not exist
        with run_gateway(None, env=env, workers=2, healthy=False) as gw:
            code = gw.proc.wait(timeout=40)
            stderr = gw.stderr_text()
    assert code == STARTUP_FAILURE, stderr
    assert "could not start; stopping" in stderr, stderr


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_between_failed_starts_doubles_up_to_its_cap() -> None:
    clock = _Clock()
    backoff = _Backoff(first=1.0, cap=30.0, clock=clock)
    assert not backoff.pending() and not backoff.due()
    delays = []
    for _ in range(7):
        delays.append(backoff.failed())
        assert backoff.pending()
        clock.now += delays[-1] - 0.001
        assert not backoff.due(), "a start before the backoff ran out: a hot crash loop"
        clock.now += 0.001
        assert backoff.due()
        assert not backoff.pending() and not backoff.due(), "one start per failure"
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
