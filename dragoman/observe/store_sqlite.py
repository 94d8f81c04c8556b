"""The embedded audit store: one SQLite file in WAL mode, written in batches by the writer thread.

WAL lets the CLI and the admin API read while the gateway writes, and lets several worker processes share the
file (writes serialize on SQLite's lock; busy_timeout waits for it instead of failing). `synchronous=NORMAL`
in WAL mode survives any process death, SIGKILL included; only a power cut can lose the last commits.

A file deleted or replaced while the gateway runs (an operator's `rm`, a cleanup job, a restored backup) would keep
taking commits into the unlinked file, lost at exit: every write first compares the path's file with the one its
connection opened (one stat per batch), and on a change recreates the store there and says so.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from dragoman.observe import migrations, stats, stores
from dragoman.observe.record import AuditRecord

log = logging.getLogger("dragoman.audit")

_INSERT = stores.insert_sql("?")
T = TypeVar("T")


class SQLiteStore:
    """An AuditStore on one SQLite file, with a connection per thread."""

    dialect = migrations.SQLITE

    def __init__(self, path: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise stores.StoreError(f"audit store {path!r}: directory {directory!r} does not exist")

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves; check_same_thread off only so close() can
            # close every thread's connection at shutdown.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            self._local.file = _file_identity(self.path)  # after the pragmas: the file exists by then
            with self._lock:
                self._opened.append(conn)
        return conn

    def _writable_conn(self) -> sqlite3.Connection:
        """This thread's connection, reopened (the file recreated and migrated) when the path no longer names the
        file it opened: commits into a deleted file vanish at exit, and nothing else would notice."""
        conn = self._conn()
        if _file_identity(self.path) == self._local.file:
            return conn
        log.warning("audit store %s was deleted or replaced while in use: recreating it and writing there", self.path)
        stores.drop_connection(self, conn)
        conn = self._conn()
        try:
            migrations.migrate_sqlite(conn)
        except BaseException:
            stores.drop_connection(self, conn)  # unmigrated: the next write tries again, never into an unknown schema
            raise
        return conn

    def migrate(self, target: int | None = None) -> int:
        return migrations.migrate_sqlite(self._conn(), target)

    def schema_version(self) -> int:
        return migrations.current_version(self._conn())

    def run(self, fn: Callable[[Any], T], *, write: bool = False) -> T:
        """fn(conn) on this thread's connection, in autocommit (fn may issue BEGIN IMMEDIATE itself to write);
        `write`: in one locked transaction (loop/version_store.py)."""
        if not write:
            return fn(self._conn())
        conn = self._writable_conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def write(self, records: Sequence[AuditRecord], followups: stores.Followups | None = None) -> None:
        """Insert a batch, then the loop's follow-ups, in one transaction: all of it or none of it."""
        statements = stores.followup_statements("?", followups) if followups is not None else []
        if not records and not statements:
            return
        rows = [stores.record_values(r) for r in records]
        conn = self._writable_conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                conn.executemany(_INSERT, rows)
            for sql, params in statements:
                conn.executemany(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def find_tool_calls(self, ids: Sequence[str]) -> list[stores.ToolCallRow]:
        if not ids:
            return []
        rows = self._conn().execute(stores.tool_calls_sql("?", len(ids)), list(ids)).fetchall()
        return [stores.ToolCallRow(*row) for row in rows]

    def update_signal(self, update: stores.SignalUpdate) -> None:
        self.write([], stores.Followups(signals=[update]))

    def claim_signal(self, update: stores.SignalUpdate) -> bool | None:
        return stores.claim_signal(self._changed, "?", update)

    def _changed(self, sql: str, params: Sequence[Any]) -> int:
        """The rows an UPDATE changed, or a SELECT found (autocommit: one statement is one transaction)."""
        cursor = self._conn().execute(sql, params)
        return cursor.rowcount if sql.startswith("UPDATE") else len(cursor.fetchall())

    def query_requests(
        self,
        filters: Mapping[str, Any] | None = None,
        limit: int = 100,
        since: float | None = None,
        until: float | None = None,
        *,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        sql, params = stores.requests_sql("?", filters, limit, since, until, after_id)
        return [stores.row_dict(row) for row in self._conn().execute(sql, params)]

    def query_costs(self, by: str, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        sql, params = stores.costs_sql("?", by, since, until)
        return [stores.cost_dict(by, row) for row in self._conn().execute(sql, params)]

    def query_verdict_counts(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        sql, params = stores.verdict_counts_sql("?", since, until)
        return [stores.verdict_count_dict(row) for row in self._conn().execute(sql, params)]

    def query_failures(self, since: float | None, until: float | None, *, verdicts: Sequence[str],
                       next_turns: Sequence[str], limit: int, before: tuple[float, int] | None = None,
                       ) -> list[dict[str, Any]]:
        sql, params = stores.failures_sql("?", since, until, verdicts, next_turns, limit, before)
        return [stores.row_dict(row, stores.FAILURE_KEYS) for row in self._conn().execute(sql, params)]

    def query_stats(self, since: float, until: float, bucket: float, first: float | None = None) -> list[dict[str, Any]]:
        first = since if first is None else first
        sql, params = stats.stats_sql("?", False, first, since, until, bucket)
        return stats.stats_buckets(self._conn().execute(sql, params), first, until, bucket)

    def query_spend(self, column: str | None, value: str | None, since: float, until: float) -> float:
        sql, params = stores.spend_sql("?", column, value, since, until)
        return float(self._conn().execute(sql, params).fetchone()[0] or 0.0)

    def latest_id(self) -> int:
        return int(self._conn().execute(stores.LATEST_ID_SQL).fetchone()[0] or 0)

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()


def _file_identity(path: str) -> tuple[int, int] | None:
    """Which file the path names now (device, inode), or None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino
