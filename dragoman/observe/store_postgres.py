"""The team audit store: PostgreSQL through psycopg 3 (sync), used from the writer thread.

Why psycopg (sync) and not asyncpg: the writer already runs in its own thread, so a sync driver costs the event
loop nothing, and psycopg's `executemany` pipelines a batch in one round trip. Measured with
bench/bench_audit.py against a local cluster: ~15,000 records/s, far above any gateway's request rate
(asyncpg was not measured: it would need a second event loop in the writer thread for no gain here).
A connection that fails is dropped and reopened on next use,
so a database restart heals by itself (the writer retries the batch with backoff meanwhile).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from dragoman.observe import migrations, stats, stores
from dragoman.observe.record import AuditRecord

_INSERT = stores.insert_sql("%s", "::jsonb")
_JSON_AT = frozenset(i for i, column in enumerate(stores.COLUMNS) if column in stores.JSON_COLUMNS)
T = TypeVar("T")
SPEND_TIMEOUT = 5.0  # seconds a budget seed's SUM(cost_usd) may run (statement_timeout), as the Governor waits for it


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
        self.connections = stores.ThreadConnections(self._connect, stale=lambda conn: conn.closed)

    def __repr__(self) -> str:
        return f"PostgresStore({_without_password(self.url)!r})"  # the URL may carry a password

    def _connect(self) -> Any:
        return self._psycopg.connect(
            self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)), application_name="dragoman"
        )

    def run(self, fn: Callable[[Any], T], *, write: bool = False) -> T:
        """Run fn(conn) on this thread's connection (autocommit; `write`: in one transaction); on a
        connection-level failure drop the connection so the next call reconnects. fn is done with conn when it
        returns (it fetches its rows): close() may close conn from then on."""
        if write:
            inner = fn

            def fn(conn: Any) -> T:  # noqa: F811 - the same call, wrapped in a transaction
                with conn.transaction():
                    return inner(conn)

        with self.connections.use() as conn:
            try:
                return fn(conn)
            except self._psycopg.OperationalError:
                self.connections.drop(conn)
                raise

    def migrate(self, target: int | None = None) -> int:
        return self.run(lambda conn: migrations.migrate_postgres(conn, target))

    def schema_version(self) -> int:
        return self.run(migrations.current_version)

    def write(self, records: Sequence[AuditRecord], followups: stores.Followups | None = None) -> None:
        """Insert a batch, then the loop's follow-ups, in one transaction, pipelined: all of it or none of it."""
        statements = stores.followup_statements("%s", followups) if followups is not None else []
        if not records and not statements:
            return
        rows = [_no_nul(stores.record_values(r), _JSON_AT) for r in records]
        statements = [(sql, [_no_nul(row) for row in params]) for sql, params in statements]

        def insert(conn: Any) -> None:
            with conn.transaction(), conn.cursor() as cur:
                if rows:
                    cur.executemany(_INSERT, rows)
                for sql, params in statements:
                    cur.executemany(sql, params)

        self.run(insert)

    def find_tool_calls(self, ids: Sequence[str]) -> list[stores.ToolCallRow]:
        if not ids:
            return []
        sql = stores.tool_calls_sql("%s", len(ids))
        rows = self.run(lambda conn: conn.execute(sql, list(ids)).fetchall())
        return [stores.ToolCallRow(*row) for row in rows]

    def update_signal(self, update: stores.SignalUpdate) -> None:
        self.write([], stores.Followups(signals=[update]))

    def claim_signal(self, update: stores.SignalUpdate) -> bool | None:
        return stores.claim_signal(self._changed, "%s", update)

    def _changed(self, sql: str, params: Sequence[Any]) -> int:
        """The rows an UPDATE changed, or a SELECT found (autocommit: one statement is one transaction)."""
        def run(conn: Any) -> int:
            cursor = conn.execute(sql, _no_nul(params))
            return cursor.rowcount if sql.startswith("UPDATE") else len(cursor.fetchall())

        return self.run(run)

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
        rows = self.run(lambda conn: conn.execute(sql, params).fetchall())
        return [stores.row_dict(row) for row in rows]

    def query_costs(self, by: str, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        sql, params = stores.costs_sql("%s", by, since, until)
        rows = self.run(lambda conn: conn.execute(sql, params).fetchall())
        return [stores.cost_dict(by, row) for row in rows]

    def query_verdict_counts(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        sql, params = stores.verdict_counts_sql("%s", since, until)
        return [stores.verdict_count_dict(row) for row in self.run(lambda conn: conn.execute(sql, params).fetchall())]

    def query_failures(self, since: float | None, until: float | None, *, verdicts: Sequence[str],
                       next_turns: Sequence[str], limit: int, before: tuple[float, int] | None = None,
                       ) -> list[dict[str, Any]]:
        sql, params = stores.failures_sql("%s", since, until, verdicts, next_turns, limit, before)
        return [stores.row_dict(row, stores.FAILURE_KEYS) for row in self.run(lambda conn: conn.execute(sql, params).fetchall())]

    def query_stats(self, since: float, until: float, bucket: float, first: float | None = None) -> list[dict[str, Any]]:
        first = since if first is None else first
        sql, params = stats.stats_sql("%s", True, first, since, until, bucket)
        rows = self.run(lambda conn: conn.execute(sql, params).fetchall())
        return stats.stats_buckets(rows, first, until, bucket)

    def query_spend(self, column: str | None, value: str | None, since: float, until: float) -> float:
        sql, params = stores.spend_sql("%s", column, value, since, until)

        def spend(conn: Any) -> Any:
            # Admission waits on this (a budget counter's seed): a locked requests table must end the query, not
            # hold the request and an executor thread. SET LOCAL: for this transaction only.
            conn.execute(f"SET LOCAL statement_timeout = {int(SPEND_TIMEOUT * 1000)}")
            return conn.execute(sql, params).fetchone()[0]

        return float(self.run(spend, write=True) or 0.0)

    def latest_id(self) -> int:
        return int(self.run(lambda conn: conn.execute(stores.LATEST_ID_SQL).fetchone()[0]) or 0)

    def close(self) -> None:
        """Close every connection no thread is using; each one in use is closed by its thread when done."""
        self.connections.close()


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# A JSON escape of NUL: `\u0000` whose backslash is not itself escaped (an even run of backslashes before it), so
# the text `\\u0000` (an escaped backslash, then "u0000"), which a string holding backslash-u0000 encodes to, stays.
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _no_nul(values: Sequence[Any], json_at: frozenset[int] = frozenset()) -> tuple[Any, ...]:
    """PostgreSQL refuses NUL in TEXT, and its JSON escape in JSONB, and a client controls many of these strings
    (model, metadata): U+FFFD in its place, else one request would stall its whole batch. Only those: any other
    text, a literal backslash-u0000 included, is stored as SQLite stores it. `json_at`: the JSONB positions."""
    return tuple(_json_no_nul(v) if i in json_at else _text_no_nul(v) for i, v in enumerate(values))


def _text_no_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _json_no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\\u0000" in value:
        return _NUL_ESCAPE.sub(r"\1\\ufffd", value)
    return value
