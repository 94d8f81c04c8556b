"""A throwaway redis-server for the governance tests: on a free loopback port, its files in a temp dir, no
persistence, started and waited for (PING) per use, killed at the end (or mid-test, to see an outage).

The binary: DRAGOMAN_REDIS_SERVER, else `redis-server` on PATH (Debian's package; `.ci/run` installs it). Without
one, the tests that need it skip with the install hint, and fail in CI (CI=true), as tests/prerequisites.py does
for Node and a compiler. (The `redis-server` name on PyPI has no wheel for current Pythons: not a fallback.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.waiting import wait_for

INSTALL_HINT = "install redis-server (Debian: apt-get install redis-server) or set DRAGOMAN_REDIS_SERVER=<path>"
START_TIMEOUT = 10.0


def redis_binary() -> str:
    """The redis-server to run; skips the test (fails it in CI) when there is none."""
    path = os.environ.get("DRAGOMAN_REDIS_SERVER") or shutil.which("redis-server")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"redis-server not found: {INSTALL_HINT}")
        pytest.skip(f"redis-server not found: {INSTALL_HINT}")
    return path


class RedisServer:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="dragoman-redis-"))
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.dir / "log", "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        log.close()
        try:
            wait_for(self.pings, START_TIMEOUT, "redis-server answering PING", alive=self.proc,
                     log=lambda: (self.dir / "log").read_text(errors="replace"))
        except AssertionError as err:
            raise RuntimeError(f"redis-server did not start: {err}") from None

    def pings(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5,
                                    socket_connect_timeout=0.5).ping())
        except (redis.RedisError, OSError):
            return False

    def client(self):  # noqa: ANN201 - redis.Redis
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, decode_responses=True)

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled cable would: no goodbye to connected clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    server = RedisServer(redis_binary())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def connections_refused(counters) -> AsyncIterator[None]:  # noqa: ANN001 - a RedisCounters
    """Redis refuses `counters`' connections (down, restarting): nothing of a command is written."""
    pool = counters.client.connection_pool
    port = pool.connection_kwargs["port"]
    pool.connection_kwargs["port"] = _free_port()
    await pool.disconnect()
    pool.reset()  # new connections, to the new port
    try:
        yield
    finally:
        pool.connection_kwargs["port"] = port
        await pool.disconnect()
        pool.reset()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ModuleLoop:
    """One event loop for a test module (a Redis client stays on the loop it connected on): `run(coro)` runs a
    coroutine on it; `loop_fixture()` is the module's autouse fixture that opens and closes it."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def run(self, coro):  # noqa: ANN001, ANN201 - any coroutine, its result
        assert self.loop is not None
        return self.loop.run_until_complete(coro)

    def loop_fixture(self):  # noqa: ANN201 - a pytest fixture
        @pytest.fixture(scope="module", autouse=True)
        def _loop() -> Iterator[None]:
            self.loop = asyncio.new_event_loop()
            yield
            self.loop.close()

        return _loop


# The fixtures of a test module that shares one redis-server among its tests (import both by name).
@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def redis(redis_server: RedisServer):  # noqa: ANN201 - redis.Redis, empty for each test
    client = redis_server.client()
    client.flushdb()
    yield client
    client.execute_command("CLIENT", "UNPAUSE")  # a test that paused the server leaves it serving

