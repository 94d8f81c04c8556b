"""The team audit store: PostgreSQL through psycopg 3 (sync), used from the writer thread.

Why psycopg (sync) and not asyncpg: the writer already runs in its own thread, so a sync driver costs the event
loop nothing, and psycopg's `executemany` pipelines a batch in one round trip. Measured with
bench/bench_audit.py against a local cluster: ~15,000 records/s, far above any gateway's request rate
(asyncpg was not measured: it would need a second event loop in the writer thread for no gain here).
A connection that fails is dropped and reopened on next use,
so a database restart heals by itself (the writer retries the batch with backoff meanwhile).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from dragoman.observe import migrations, stores
from dragoman.observe.record import AuditRecord

_INSERT = stores.insert_sql("%s", "::jsonb")
T = TypeVar("T")


class PostgresStore:
    """An AuditStore on PostgreSQL, with a connection per thread."""

    dialect = migrations.POSTGRES

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - depends on the install
            raise stores.StoreError('a postgresql:// audit store needs psycopg 3: pip install "psycopg[binary]"') from None
        self._psycopg = psycopg
        self.url = url
        self.connect_timeout = connect_timeout
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({_without_password(self.url)!r})"  # the URL may carry a password

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn
        conn = self._psycopg.connect(
            self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)), application_name="dragoman"
        )
        self._local.conn = conn
        with self._lock:
            self._opened.append(conn)
        return conn

    def _run(self, fn: Any) -> Any:
        """Run fn(conn); on a connection-level failure drop the connection so the next call reconnects."""
        conn = self._conn()
        try:
            return fn(conn)
        except self._psycopg.OperationalError:
            self._discard(conn)
            raise

    def _discard(self, conn: Any) -> None:
        self._local.conn = None
        with self._lock:
            if conn in self._opened:
                self._opened.remove(conn)
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - already broken
            pass

    def migrate(self, target: int | None = None) -> int:
        return self._run(lambda conn: migrations.migrate_postgres(conn, target))

    def schema_version(self) -> int:
        return self._run(migrations.current_version)

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Insert a batch in one transaction, pipelined: all of it or none of it."""
        if not records:
            return
        rows = [stores.record_values(r) for r in records]

        def insert(conn: Any) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(_INSERT, rows)

        self._run(insert)

    def run(self, fn: Callable[[Any], T], *, write: bool = False) -> T:
        """fn(connection) for the loop's own tables (loop/version_store.py); `write`: in one transaction."""
        if not write:
            return self._run(fn)

        def transaction(conn: Any) -> T:
            with conn.transaction():
                return fn(conn)

        return self._run(transaction)

    def query_requests(
        self,
        filters: Mapping[str, Any] | None = None,
        limit: int = 100,
        since: float | None = None,
        until: float | None = None,
        *,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        sql, params = stores.requests_sql("%s", filters, limit, since, until, after_id)
        rows = self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [stores.row_dict(row) for row in rows]

    def query_costs(self, by: str, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        sql, params = stores.costs_sql("%s", by, since, until)
        rows = self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [stores.cost_dict(by, row) for row in rows]

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing at shutdown must not raise
                pass
        self._local = threading.local()


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
