"""The embedded audit store: one SQLite file in WAL mode, written in batches by the writer thread.

WAL lets the CLI and the admin API read while the gateway writes, and lets several worker processes share the
file (writes serialize on SQLite's lock; busy_timeout waits for it instead of failing). `synchronous=NORMAL`
in WAL mode survives any process death, SIGKILL included; only a power cut can lose the last commits.

A file deleted or replaced while the gateway runs (an operator's `rm`, a cleanup job, a restored backup) would keep
taking commits into the unlinked file, lost at exit: every write first compares the path's file with the one its
connection opened (one stat per batch), and on a change recreates the store there and says so. Reads do the same
check (one stat per query): a reader's connection to the unlinked file would show its old rows for ever.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from dragoman.observe import migrations, stats, stores
from dragoman.observe.record import AuditRecord

log = logging.getLogger("dragoman.audit")

_INSERT = stores.insert_sql("?")
T = TypeVar("T")


class SQLiteStore:
    """An AuditStore on one SQLite file, with a connection per thread."""

    dialect = migrations.SQLITE

    def __init__(self, path: str, *, busy_timeout_ms: int = 10_000, migrates: bool = True) -> None:
        self.path = path
        self.migrates = migrates  # opened migrated (a gateway's): its reads too recreate a deleted file
        self.replacements = 0  # files connected to after the first: the key cache then reads every key anew
        self._known_file: tuple[int, int] | None = None  # the file the last connection opened, any thread's
        self._known_lock = threading.Lock()
        self.busy_timeout_ms = busy_timeout_ms
        self.connections = stores.ThreadConnections(self._connect)
        self._thread = threading.local()  # `file`: what this thread's connection opened; `unmigrated`: recreated
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise stores.StoreError(f"audit store {path!r}: directory {directory!r} does not exist")

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves; check_same_thread off only so close() can close
        # another thread's connection while that thread is not using it (ThreadConnections).
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()  # nobody else holds it yet
            raise
        self._thread.file = _file_identity(self.path)  # after the pragmas: the file exists by then
        with self._known_lock:  # counted store-wide: a thread whose first connection is to a new file never saw the old
            if self._thread.file != self._known_file:
                self.replacements += self._known_file is not None
                self._known_file = self._thread.file
        return conn

    @contextmanager
    def _use(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """This thread's connection for one use: statements run and their rows fetched inside the block.
        First reopened when the path no longer names the file it opened (one stat): commits into a deleted file
        vanish at exit, and reads from it would show its old rows for ever (the admin API, the key cache). A
        write, or a read by a store that migrates (the gateway's), recreates and migrates a file gone or new; a
        read by a store opened as it is (the CLI's) never creates one: it keeps the old file until another exists."""
        creates = write or self.migrates
        self._leave_replaced_file(creates)
        with self.connections.use() as conn:
            if creates and getattr(self._thread, "unmigrated", False):
                self._migrate_recreated(conn)
            yield conn

    def _leave_replaced_file(self, creates: bool) -> None:
        conn = self.connections.current()
        now = _file_identity(self.path)
        if conn is None:
            # A thread's first connection, made after the file went away, would otherwise create it unmigrated.
            if creates and now is None:
                self._thread.unmigrated = True
            return
        if now == self._thread.file or (now is None and not creates):
            return
        log.warning("audit store %s was deleted or replaced while in use: using the file now there%s", self.path,
                    " (recreated)" if now is None else "")
        self.connections.drop(conn)
        self._thread.unmigrated = True

    def _migrate_recreated(self, conn: sqlite3.Connection) -> None:
        try:
            migrations.migrate_sqlite(conn)
        except BaseException:
            self.connections.drop(conn)  # unmigrated: the next write tries again, never into an unknown schema
            raise
        self._thread.unmigrated = False

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._use() as conn:
            return conn.execute(sql, params).fetchall()

    def migrate(self, target: int | None = None) -> int:
        with self._use() as conn:
            return migrations.migrate_sqlite(conn, target)

    def schema_version(self) -> int:
        with self._use() as conn:
            return migrations.current_version(conn)

    def run(self, fn: Callable[[Any], T], *, write: bool = False) -> T:
        """fn(conn) on this thread's connection, in autocommit (fn may issue BEGIN IMMEDIATE itself to write);
        `write`: in one locked transaction (loop/version_store.py). fn is done with conn when it returns (it
        fetches its rows): close() may close conn from then on."""
        with self._use(write=write) as conn:
            return _transaction(conn, fn) if write else fn(conn)

    def write(self, records: Sequence[AuditRecord], followups: stores.Followups | None = None) -> None:
        """Insert a batch, then the loop's follow-ups, in one transaction: all of it or none of it."""
        statements = stores.followup_statements("?", followups) if followups is not None else []
        if not records and not statements:
            return
        rows = [stores.record_values(r) for r in records]

        def insert(conn: sqlite3.Connection) -> None:
            if rows:
                conn.executemany(_INSERT, rows)
            for sql, params in statements:
                conn.executemany(sql, params)

        self.run(insert, write=True)

    def find_tool_calls(self, ids: Sequence[str]) -> list[stores.ToolCallRow]:
        if not ids:
            return []
        rows = self._rows(stores.tool_calls_sql("?", len(ids)), list(ids))
        return [stores.ToolCallRow(*row) for row in rows]

    def update_signal(self, update: stores.SignalUpdate) -> None:
        self.write([], stores.Followups(signals=[update]))

    def claim_signal(self, update: stores.SignalUpdate) -> bool | None:
        return stores.claim_signal(self._changed, "?", update)

    def _changed(self, sql: str, params: Sequence[Any]) -> int:
        """The rows an UPDATE changed, or a SELECT found (autocommit: one statement is one transaction)."""
        with self._use() as conn:
            cursor = conn.execute(sql, params)
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
        return [stores.row_dict(row) for row in self._rows(sql, params)]

    def query_costs(self, by: str, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        sql, params = stores.costs_sql("?", by, since, until)
        return [stores.cost_dict(by, row) for row in self._rows(sql, params)]

    def query_verdict_counts(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        sql, params = stores.verdict_counts_sql("?", since, until)
        return [stores.verdict_count_dict(row) for row in self._rows(sql, params)]

    def query_failures(self, since: float | None, until: float | None, *, verdicts: Sequence[str],
                       next_turns: Sequence[str], limit: int, before: tuple[float, int] | None = None,
                       ) -> list[dict[str, Any]]:
        sql, params = stores.failures_sql("?", since, until, verdicts, next_turns, limit, before)
        return [stores.row_dict(row, stores.FAILURE_KEYS) for row in self._rows(sql, params)]

    def query_stats(self, since: float, until: float, bucket: float, first: float | None = None) -> list[dict[str, Any]]:
        first = since if first is None else first
        sql, params = stats.stats_sql("?", False, first, since, until, bucket)
        return stats.stats_buckets(self._rows(sql, params), first, until, bucket)

    def query_spend(self, column: str | None, value: str | None, since: float, until: float) -> float:
        sql, params = stores.spend_sql("?", column, value, since, until)
        return float(self._rows(sql, params)[0][0] or 0.0)

    def latest_id(self) -> int:
        return int(self._rows(stores.LATEST_ID_SQL)[0][0] or 0)

    def close(self) -> None:
        """Close every connection no thread is using; each one in use is closed by its thread when done."""
        self.connections.close()


def _transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """fn(conn) in one write transaction, taken at once (BEGIN IMMEDIATE: it waits busy_timeout for the lock)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _file_identity(path: str) -> tuple[int, int] | None:
    """Which file the path names now (device, inode), or None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino
