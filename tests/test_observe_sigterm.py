"""Kill test: SIGTERM during a burst of requests; every request that got a response has its audit record.

The app (tests/observe_sigterm_app.py) is wired the way the gateway is: Observability in the lifespan, a
record submitted after the last byte. uvicorn finishes in-flight requests on SIGTERM, then runs the lifespan
shutdown, where the writer flushes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from dragoman.observe.stores import open_store
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, deadline: float) -> None:
    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    wait_for(listening, max(deadline - time.monotonic(), 1.0), "the server listening", alive=proc,
             log=lambda: proc.stderr.read().decode() if proc.stderr else "")


async def _burst(port: int, proc: subprocess.Popen, total: int = 400, kill_after: int = 60) -> set[str]:
    """`total` requests at once (the client pool lets 100 through at a time, each held 0.2 s by the app);
    SIGTERM goes out when the `kill_after`-th answer arrives, with the next requests in flight."""
    answered: set[str] = set()
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            rid = f"req_{i:05d}"
            try:
                async with session.get(f"http://127.0.0.1:{port}/", headers={"x-request-id": rid}) as resp:
                    if resp.status == 200 and (await resp.text()) == rid:
                        answered.add(rid)
                        if len(answered) == kill_after:
                            proc.send_signal(signal.SIGTERM)
            except aiohttp.ClientError:
                pass  # refused or cut after SIGTERM: no response, so no record is owed

        await asyncio.gather(*(one(i) for i in range(total)))
    return answered


def test_sigterm_during_a_burst_loses_no_record(tmp_path) -> None:
    port = _free_port()
    env = dict(os.environ, AUDIT_DB=str(tmp_path / "audit.db"), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.observe_sigterm_app:app", "--port", str(port), "--lifespan", "on",
         "--log-level", "warning", "--timeout-graceful-shutdown", "20"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(port, proc, time.monotonic() + 20)
        answered = asyncio.run(_burst(port, proc))
        # uvicorn re-raises the captured SIGTERM after its graceful shutdown, so -SIGTERM is a clean exit.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM), proc.stderr.read().decode() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    store = open_store(f"sqlite:///{tmp_path}/audit.db")
    recorded = {r["request_id"] for r in store.query_requests(limit=10_000)}
    store.close()
    assert len(answered) >= 60, "the burst should have been partly answered before the shutdown"
    assert answered <= recorded, f"{len(answered - recorded)} answered request(s) have no record"
