"""A throwaway PostgreSQL cluster for the audit store tests: initdb into a temp dir, start on a free port with
its unix socket in that dir, one fresh database per test, stopped when the test session ends.

PostgreSQL is required, not optional: without it the tests FAIL with the command that installs it (CI installs
Debian's `postgresql` package). Root cannot run postgres, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

INSTALL_HINT = "apt-get update && apt-get install -y postgresql  (and pip install 'psycopg[binary]')"


class PostgresCluster:
    def __init__(self) -> None:
        self.bin = _find_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="dragoman-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._prefix: list[str] = []
        self._names = itertools.count(1)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres") if _has_user("postgres") else None
            if user is None:
                pytest.fail("PostgreSQL tests run as root need the 'postgres' system user (Debian's package creates it)")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._prefix = ["runuser", "-u", "postgres", "--"]

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w", "-t", "30", "start")

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [*self._prefix, os.path.join(self.bin, "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True, check=False,
            )
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"audit_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self._prefix, os.path.join(self.bin, tool), *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.dir / "log"
            detail = log.read_text() if log.exists() else ""
            pytest.fail(f"{tool} failed ({result.returncode}): {result.stderr}{result.stdout}\n{detail}")


def _find_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    pytest.fail(f"PostgreSQL is not installed, and the audit store tests need it. Install it: {INSTALL_HINT}")


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parts[-3])
    except ValueError:
        return 0.0


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_cluster: PostgresCluster | None = None


def cluster() -> PostgresCluster:
    """The session's cluster, started on first use (once, whichever test module asks first)."""
    global _cluster
    if _cluster is None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            pytest.fail(f"psycopg 3 is not installed, and the audit store tests need it: {INSTALL_HINT}")
        started = PostgresCluster()
        try:
            started.start()
        except BaseException:
            started.stop()
            raise
        _cluster = started
        atexit.register(started.stop)
    return _cluster


@pytest.fixture
def pg_url() -> str:
    """A URL to a fresh, empty database on the throwaway cluster."""
    return cluster().new_database()
