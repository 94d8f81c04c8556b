"""A store closed while another thread is inside a statement on its connection: at shutdown the gateway waits at
most 10 s for a reload's config-version record, and an admin query may still run in an executor, while SQLite's
write lock can be held longer (another process, a backup). close() used to close that thread's connection under
the running statement: when the statement returned, the sqlite3 module touched a closed connection (an error at
best, a crash of the whole process at worst), and psycopg lost its socket mid-query. Now the thread using the
connection finishes its statement, and closes the connection itself when its use ends."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dragoman.observe import migrations
from dragoman.observe.record import AuditRecord
from dragoman.observe.store_postgres import PostgresStore
from dragoman.observe.store_sqlite import SQLiteStore
from dragoman.observe.stores import AuditStore, open_store
from tests.observe_pg import cluster, store, store_url  # noqa: F401 (fixtures)

T0 = 1_795_000_000.0
WAIT = 60.0  # bounds on waiting for the other thread, never reached when all goes well


class Outcome:
    """What a call made on another thread returned or raised."""

    def __init__(self) -> None:
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            self.error = exc


def _started(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _closed(conn: Any) -> bool:
    if not isinstance(conn, sqlite3.Connection):
        return bool(conn.closed)  # psycopg
    try:
        conn.total_changes  # noqa: B018 - raises on a closed connection
    except sqlite3.ProgrammingError:
        return True
    return False


def test_a_sqlite_write_waiting_for_the_lock_at_close_commits_then_its_connection_closes(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.db")
    open_store(path).close()  # the schema, migrated
    # SQLite's own default, as the gateway runs: the write outlasts close() below and gets the lock once the holder
    # lets go (before the fix, close() waited the whole timeout on the connection under the write, which failed).
    store = SQLiteStore(path, busy_timeout_ms=10_000)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction: the store's write must wait
    waiting = threading.Event()
    seen: list[sqlite3.Connection] = []

    def trace(statement: str) -> None:  # called inside sqlite3_step, on the writing thread
        if statement == "BEGIN IMMEDIATE":
            waiting.set()

    def write() -> None:
        seen.append(store.run(lambda conn: conn))
        seen[0].set_trace_callback(trace)
        store.write([AuditRecord(time=T0, request_id="req_late")])

    def release() -> None:
        holder.rollback()
        holder.close()

    outcome = _closed_while_waiting(store, write, waiting, release)
    _landed_then_closed(store, outcome, seen[0], ["req_late"])


def test_a_postgres_write_waiting_for_a_lock_at_close_commits_then_its_connection_closes() -> None:
    import psycopg

    url = cluster().new_database()
    open_store(url).close()
    store = PostgresStore(url)
    holder = psycopg.connect(url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(4242)")
    waiting = threading.Event()
    seen: list[Any] = []

    def insert(conn: Any) -> None:
        seen.append(conn)
        conn.add_notice_handler(lambda notice: waiting.set())  # the notice comes while the statement runs
        conn.execute("DO $$ BEGIN RAISE NOTICE 'waiting'; PERFORM pg_advisory_xact_lock(4242); END $$")
        _insert(conn, "%s", "req_late")

    def release() -> None:
        holder.execute("SELECT pg_advisory_unlock(4242)")
        holder.close()

    outcome = _closed_while_waiting(store, lambda: store.run(insert, write=True), waiting, release)
    _landed_then_closed(store, outcome, seen[0], ["req_late"])


def test_a_transaction_closed_between_its_statements_finishes_then_its_connection_closes(
        store: AuditStore) -> None:
    ph = "?" if store.dialect == migrations.SQLITE else "%s"  # type: ignore[attr-defined]
    between, closed = threading.Event(), threading.Event()
    seen: list[Any] = []

    def two_inserts(conn: Any) -> None:
        seen.append(conn)
        for request_id in ("req_first", "req_second"):
            _insert(conn, ph, request_id)
            between.set()
            closed.wait(WAIT)

    idle = store.run(lambda conn: conn)  # type: ignore[attr-defined]  # this thread's, as the fixture migrated
    outcome = Outcome()
    thread = _started(lambda: outcome.run(lambda: store.run(two_inserts, write=True)))  # type: ignore[attr-defined]
    assert between.wait(WAIT)
    store.close()  # between the two statements of the transaction
    assert _closed(idle)  # closed at once: nobody was using it
    assert not _closed(seen[0])  # left to the thread using it (before: closed, the next statement failed)
    closed.set()
    thread.join(WAIT)
    _landed_then_closed(store, outcome, seen[0], ["req_first", "req_second"])


def test_close_closes_idle_connections_and_a_use_after_it_closes_its_own(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "audit.db"))
    store.migrate()
    mine = store.run(lambda conn: conn)
    outcome = Outcome()
    _started(lambda: outcome.run(lambda: store.run(lambda conn: conn))).join(WAIT)
    theirs = outcome.result
    store.close()
    assert _closed(mine) and _closed(theirs)
    # A late user (a reload's version record outlasting shutdown's wait) still gets its statement run, on a
    # connection of its own that its use closes: nothing is left open that nobody would close.
    late = store.run(lambda conn: (conn, conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]))
    assert late[1] == 0
    assert _closed(late[0])
    assert store.connections.counts() == (0, 0)


def _closed_while_waiting(store: Any, call: Callable[[], Any], waiting: threading.Event,
                          release: Callable[[], None]) -> Outcome:
    """`call` on another thread; once `waiting` says its statement waits for a lock, the store closed (the
    gateway's shutdown), then the lock released; how the call ended."""
    outcome = Outcome()
    thread = _started(lambda: outcome.run(call))
    try:
        assert waiting.wait(WAIT), "the store's statement never began"
        store.close()
    finally:
        release()
    thread.join(WAIT)
    assert not thread.is_alive()
    return outcome


def _landed_then_closed(store: Any, outcome: Outcome, conn: Any, request_ids: list[str]) -> None:
    """The call committed its rows, then the connection it used was closed (by its own thread), and no other."""
    assert outcome.error is None, repr(outcome.error)
    reader = open_store(store.url if isinstance(store, PostgresStore) else store.path, migrate=False)
    assert sorted(r["request_id"] for r in reader.query_requests()) == request_ids
    reader.close()
    assert _closed(conn)
    assert store.connections.counts() == (0, 0)


def _insert(conn: Any, ph: str, request_id: str) -> None:
    conn.execute(f"INSERT INTO requests (time, time_iso, request_id, status) VALUES ({ph}, {ph}, {ph}, 200)",
                 (T0, "2026-11-18T00:00:00.000+00:00", request_id))
