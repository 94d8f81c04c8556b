"""Audit stores: what every store offers, `open_store(url)`, where the default one lives, and the SQL both share.

`sqlite:////abs/path.db`, `sqlite:///relative.db`, a bare path, or `postgresql://user@host/db`; no URL is the
default store, `$XDG_DATA_HOME/dragoman/dragoman.db` (`~/.local/share/dragoman/dragoman.db` without it).
Both stores return the same plain rows for the same records: dicts keyed by AuditRecord's field names (plus
`id` and `time_iso`), `candidates` and `notes` decoded, `stream` a bool.

Threads: a store opens one connection per thread that uses it (the writer thread writes; queries come from the
CLI or from the server's admin API, run in an executor), so no two threads run statements on one connection; its
close() closes each connection only while no thread is using it (ThreadConnections).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

import msgspec

from dragoman.observe.record import CANCELLED_STATUS, CLIENT_DISCONNECTED, AuditRecord

# Column order for inserts; `time_iso` is derived from `time`.
COLUMNS: tuple[str, ...] = (
    "time", "time_iso", "request_id", "key_id", "developer", "team", "repo", "session", "requested_model",
    "policy", "branch", "input_estimate", "candidates", "route", "upstream_model", "provider", "status",
    "error_type", "stream", "latency_total_ms", "ttfb_ms", "upstream_ms", "overhead_ms", "input_tokens",
    "output_tokens", "cache_read_tokens", "reasoning_tokens", "cost_usd", "notes", "stream_events",
    "tool_calls", "verdict", "verdict_kinds", "verdict_detail", "next_turn", "judge", "shape", "prompt_variant",
    "config_version", "loop_events", "budget_developer", "budget_team",
)
JSON_COLUMNS = frozenset({"candidates", "notes", "verdict_kinds", "loop_events"})
ROW_KEYS: tuple[str, ...] = ("id", *COLUMNS)

# Filters a query accepts, each an exact match on its column; `status` also takes 2xx/4xx/5xx/ok/error.
FILTERS = (
    "developer", "team", "repo", "route", "key_id", "session", "requested_model", "upstream_model", "provider",
    "error_type", "request_id", "status",
)
# `dragoman costs --by X`: the column (or expression) rows are grouped on.
COST_GROUPS: dict[str, str] = {
    "developer": "developer",
    "repo": "repo",
    "team": "team",
    "route": "route",
    "model": "COALESCE(upstream_model, requested_model)",
    "key": "key_id",
}
# The columns a budget's spend is summed over (govern/budgets.py): the key, and the key's developer and team.
SPEND_COLUMNS = ("key_id", "budget_developer", "budget_team")
COST_KEYS = ("requests", "errors", "cancelled", "input_tokens", "output_tokens", "cache_read_tokens",
             "reasoning_tokens", "cost_usd", "unpriced")
# query_verdict_counts: records with a verdict, counted per distinct combination of these (the loop's scores,
# loop/report.py), so a score over any range reads a few grouped rows, never the records themselves.
VERDICT_GROUPS = ("route", "upstream_model", "shape", "prompt_variant", "verdict", "next_turn")
# query_failures: the columns a failure cluster needs (loop/clusters.py), not the whole record.
FAILURE_KEYS = ("id", "time", "request_id", "route", "upstream_model", "verdict", "verdict_kinds", "verdict_detail",
                "next_turn")

_encode = msgspec.json.encode
_decode_list = msgspec.json.Decoder(list).decode


class ToolCallRow(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A tool_use the gateway answered with (migration 5, table `tool_calls`): the correctness loop joins the
    client's next turn to it, from any worker or instance on the same store, when the turn comes with the same
    client key (`key_id`, migration 10)."""

    tool_use_id: str
    request_id: str
    time: float
    route: str | None = None
    model: str | None = None
    shape: str | None = None
    prompt_variant: str | None = None
    config_version: str | None = None
    tool_name: str | None = None
    key_id: str | None = None


class SignalUpdate(msgspec.Struct, frozen=True, gc=False):
    """Set `column` of an earlier request's record to `value`, unless it already holds a value not in `replaces`
    (a weaker signal never overwrites a stronger one)."""

    request_id: str
    column: str  # one of SIGNAL_COLUMNS
    value: str
    replaces: tuple[str, ...] = ()


class Followups(msgspec.Struct):
    """What the correctness loop writes beside a batch of records, in the same transaction."""

    tool_calls: list[ToolCallRow] = []
    signals: list[SignalUpdate] = []
    prune_before: float | None = None  # forget tool calls answered before this time (epoch seconds)

    def extend(self, other: Followups) -> None:
        self.tool_calls += other.tool_calls
        self.signals += other.signals
        if other.prune_before is not None:
            self.prune_before = max(self.prune_before or 0.0, other.prune_before)


SIGNAL_COLUMNS = ("next_turn", "judge")
TOOL_CALL_COLUMNS = ("tool_use_id", "request_id", "time", "route", "model", "shape", "prompt_variant",
                     "config_version", "tool_name", "key_id")


class AuditStore(Protocol):
    """What the writer, the CLI and the admin API need from a store."""

    def migrate(self, target: int | None = None) -> int: ...

    def schema_version(self) -> int: ...

    def write(self, records: Sequence[AuditRecord], followups: Followups | None = None) -> None: ...

    def find_tool_calls(self, ids: Sequence[str]) -> list[ToolCallRow]: ...

    def update_signal(self, update: SignalUpdate) -> None: ...

    def claim_signal(self, update: SignalUpdate) -> bool | None: ...

    def query_requests(
        self,
        filters: Mapping[str, Any] | None = None,
        limit: int = 100,
        since: float | None = None,
        until: float | None = None,
        *,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]: ...

    def query_costs(self, by: str, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]: ...

    def query_verdict_counts(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]: ...

    def query_failures(self, since: float | None, until: float | None, *, verdicts: Sequence[str],
                       next_turns: Sequence[str], limit: int, before: tuple[float, int] | None = None,
                       ) -> list[dict[str, Any]]: ...

    def query_stats(self, since: float, until: float, bucket: float, first: float | None = None) -> list[dict[str, Any]]:
        """Per-bucket sums of the records from `since` to `until`; the buckets start at `first` (default since)."""
        ...

    def query_spend(self, column: str | None, value: str | None, since: float, until: float) -> float: ...

    def latest_id(self) -> int: ...

    def close(self) -> None: ...


# Whether a record failed, as every error count and the status=error filter read it (dashboard, `dragoman logs`,
# `dragoman costs`), and as /metrics and traces count errors (record.failed): an HTTP status of 400 or more, or an
# error after the first byte (a stream that broke mid-way is recorded 200 with error_type stream_error; the client
# saw it fail), but not a request the client cancelled (CANCELLED_SQL, record.cancelled): Claude Code's Esc says
# nothing of the gateway or its upstreams, and counted as errors a day of them hid the real ones. Neither is NULL
# for any row (status is NOT NULL; COALESCE for error_type), so NOT of either is the rest.
CANCELLED_SQL = f"(status = {CANCELLED_STATUS} OR COALESCE(error_type, '') = '{CLIENT_DISCONNECTED}')"
FAILED_SQL = f"((status >= 400 OR error_type IS NOT NULL) AND NOT {CANCELLED_SQL})"


class StoreError(ValueError):
    """A store URL or query the user can fix: the message says how."""


class ThreadConnections:
    """A store's connections, one per thread that uses it, each closed only while no thread is using it.

    close() (at shutdown, from any thread) closes the idle ones at once and leaves each one in use to its thread,
    which closes it when that use ends: closing a connection under a running statement (SQLite busy-waiting on
    another process's write lock, psycopg waiting on its socket) fails or crashes the thread using it, and a
    config-version record or an admin query may still be running in an executor when the gateway shuts down.

    Every use of a connection goes through `use()`, and is done with it when the block ends: a query fetches its
    rows inside. `connect()` opens a connection for the calling thread; `stale(conn)`: it must be replaced before
    its next use (psycopg: closed by a failure)."""

    def __init__(self, connect: Callable[[], Any], stale: Callable[[Any], bool] = lambda conn: False) -> None:
        self._connect = connect
        self._stale = stale
        self._local = threading.local()
        self._lock = threading.Lock()
        self._uses: dict[Any, int] = {}  # every open connection: how many uses of it are in progress
        self._doomed: set[Any] = set()  # connections in use, to close when their last use ends
        self._closed = False

    @contextmanager
    def use(self) -> Iterator[Any]:
        """This thread's connection, marked in use until the block ends (one lock round on entry, one on exit)."""
        conn = self._acquire()
        try:
            yield conn
        finally:
            self._release(conn)

    def current(self) -> Any:
        """This thread's connection, None before its first use (or after drop)."""
        return getattr(self._local, "conn", None)

    def drop(self, conn: Any) -> None:
        """Forget `conn` (this thread's) and close it, now when idle, else when its uses end, so the thread's next
        use opens a new one: after a failure, or when its SQLite file went away."""
        if self.current() is conn:
            self._local.conn = None
        with self._lock:
            if conn not in self._uses:
                return  # close() took it already
            idle = self._uses[conn] == 0
            if idle:
                del self._uses[conn]
            else:
                self._doomed.add(conn)
        if idle:
            _close_quietly(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [conn for conn, uses in self._uses.items() if not uses]
            for conn in idle:
                del self._uses[conn]
            self._doomed.update(self._uses)
        for conn in idle:
            _close_quietly(conn)

    def counts(self) -> tuple[int, int]:
        """(connections open, of which in use)."""
        with self._lock:
            return len(self._uses), sum(1 for uses in self._uses.values() if uses)

    def _acquire(self) -> Any:
        conn = self.current()
        if conn is not None and self._stale(conn):
            self.drop(conn)
            conn = None
        if conn is not None:
            with self._lock:
                if not self._closed:
                    self._uses[conn] += 1
                    return conn
        conn = self._connect()  # outside the lock: connecting may wait on the database
        with self._lock:
            self._uses[conn] = 1
            if self._closed:
                # A use after close() (a reload's version record outlasting shutdown's wait) is served rather
                # than refused, on a connection of its own that its end closes: refusing would lose that record,
                # and keeping the connection would leave it open with nobody to close it.
                self._doomed.add(conn)
            else:
                self._local.conn = conn
        return conn

    def _release(self, conn: Any) -> None:
        with self._lock:
            uses = self._uses[conn] - 1
            last = not uses and conn in self._doomed
            if last:
                del self._uses[conn]
                self._doomed.discard(conn)
            else:
                self._uses[conn] = uses
        if last:
            _close_quietly(conn)


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - already broken or gone; closing must not raise
        pass


def open_store(url: str | None = None, *, migrate: bool = True) -> AuditStore:
    """The store a URL names, its schema migrated to this gateway's version unless `migrate=False`.
    No URL: the default store, its directory created (mode 0700) when missing."""
    if url is None:
        url = default_store(create_directory=True)
    if url.startswith(("postgresql://", "postgres://")):
        from dragoman.observe.store_postgres import PostgresStore

        store: AuditStore = PostgresStore(url)
    else:
        from dragoman.observe.store_sqlite import SQLiteStore

        store = SQLiteStore(sqlite_file(url), migrates=migrate)
    if migrate:
        store.migrate()
    return store


def default_store_path(env: Mapping[str, str] | None = None) -> str:
    """The embedded store's file: in the user's data directory, never the working directory, so the gateway
    and `dragoman logs` find the same file from anywhere (XDG Base Directory spec: $XDG_DATA_HOME, if absolute,
    else ~/.local/share)."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME", "")
    if not os.path.isabs(base):  # the spec: a relative path there is invalid and ignored
        base = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "dragoman", "dragoman.db")


def default_store(env: Mapping[str, str] | None = None, *, create_directory: bool = False) -> str:
    """The default store's URL; with create_directory, its directory is made (0700, as the spec asks) if missing."""
    path = default_store_path(env)
    if create_directory:
        directory = os.path.dirname(path)
        try:
            os.makedirs(os.path.dirname(directory), exist_ok=True)
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the audit store's directory {directory}: {exc.strerror or exc}; "
                             "set XDG_DATA_HOME, DRAGOMAN_AUDIT_STORE or audit.store") from None
    return "sqlite:///" + path


def sqlite_file(url: str) -> str:
    """The file of a SQLite store URL or bare path; StoreError for a scheme that is neither SQLite nor PostgreSQL."""
    if url.startswith("sqlite://"):
        return sqlite_path(url)
    if "://" in url:
        raise StoreError(f"audit store {url!r}: expected sqlite:///path.db, a file path, or postgresql://…")
    return url


def is_postgres(url: str | None) -> bool:
    """The store is a PostgreSQL server (shared by instances), not a local SQLite file."""
    return url is not None and url.startswith(("postgresql://", "postgres://"))


def describe_store(url: str | None) -> str:
    """Where a store is, for people: `SQLite /path/x.db` or `PostgreSQL user@host:5432/db` (never a password)."""
    if url is None:
        url = default_store()
    if not is_postgres(url):
        return f"SQLite {os.path.abspath(sqlite_file(url))}"
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    user = user.partition(":")[0]  # user:password → user
    return f"PostgreSQL {user + '@' if user else ''}{host or 'localhost'}{parts.path or '/'}"


def sqlite_path(url: str) -> str:
    """sqlite:///./x.db → ./x.db, sqlite:////var/x.db → /var/x.db (SQLAlchemy's convention)."""
    rest = url[len("sqlite://"):]
    if not rest.startswith("/") or rest == "/":
        raise StoreError(f"audit store {url!r}: write sqlite:///relative.db or sqlite:////absolute/path.db")
    return rest[1:]


# ---- rows in and out ---------------------------------------------------------------------------------------


def record_values(record: AuditRecord) -> tuple[Any, ...]:
    """The insert parameters of one record, in COLUMNS order (JSON columns as text)."""
    r = record
    return (
        r.time, r.time_iso, r.request_id, r.key_id, r.developer, r.team, r.repo, r.session, r.requested_model,
        r.policy, r.branch, r.input_estimate, _encode(r.candidates).decode(), r.route, r.upstream_model,
        r.provider, r.status, r.error_type, bool(r.stream), r.latency_total_ms, r.ttfb_ms, r.upstream_ms,
        r.overhead_ms, r.input_tokens, r.output_tokens, r.cache_read_tokens, r.reasoning_tokens, r.cost_usd,
        _encode(r.notes).decode(), r.stream_events,
        r.tool_calls, r.verdict, _encode(r.verdict_kinds).decode(), r.verdict_detail, r.next_turn, r.judge, r.shape,
        r.prompt_variant, r.config_version, _encode(r.loop_events).decode(), r.budget_developer, r.budget_team,
    )


def row_dict(row: Sequence[Any], keys: Sequence[str] = ROW_KEYS) -> dict[str, Any]:
    """A selected row (`keys` order: ROW_KEYS, or FAILURE_KEYS) as a plain dict, identical for both stores."""
    out = dict(zip(keys, row))
    for name in JSON_COLUMNS.intersection(keys):
        value = out[name]
        if isinstance(value, (str, bytes)):
            out[name] = _decode_list(value)
    if "stream" in out:
        out["stream"] = bool(out["stream"])
    return out


def verdict_count_dict(row: Sequence[Any]) -> dict[str, Any]:
    return {**dict(zip(VERDICT_GROUPS, row)), "count": int(row[-1])}


_IDS_PER_UPDATE = 200  # request ids in one UPDATE: far below both stores' parameter limits


def followup_statements(ph: str, followups: Followups) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """(sql, parameter rows) to run after a batch's inserts, in its transaction."""
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    if followups.tool_calls:
        values = ", ".join([ph] * len(TOOL_CALL_COLUMNS))
        out.append((f"INSERT INTO tool_calls ({', '.join(TOOL_CALL_COLUMNS)}) VALUES ({values})"
                    " ON CONFLICT (tool_use_id) DO NOTHING",
                    [tuple(msgspec.structs.astuple(row)) for row in followups.tool_calls]))
    # One UPDATE per (column, value, what it may replace) and up to _IDS_PER_UPDATE records, not one per record: a
    # drain's next-turn signals are nearly all "ok", and one statement over many ids costs the store ~30 % less than
    # an executemany of one each, with one step of the statement instead of one per record (bench/RESULTS.md, "The
    # loop's cost, read side by side"). Signals of different groups never race: a weaker value never overwrites a
    # stronger one, whichever statement runs first (`replaces`), and a record is judged once.
    groups: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for update in followups.signals:
        groups.setdefault((update.column, update.value, update.replaces), []).append(update.request_id)
    for (column, value, replaces), request_ids in groups.items():
        for at in range(0, len(request_ids), _IDS_PER_UPDATE):
            chunk = request_ids[at : at + _IDS_PER_UPDATE]
            out.append((signal_sql(ph, column, len(chunk), len(replaces)), [(value, *chunk, *replaces)]))
    if followups.prune_before is not None:
        out.append((f"DELETE FROM tool_calls WHERE time < {ph}", [(followups.prune_before,)]))
    return out


def signal_sql(ph: str, column: str, ids: int = 1, replaces: int = 0) -> str:
    """The UPDATE setting `column` of `ids` records (parameters: the value, the request ids, the values it may
    replace), where it is still NULL or holds one of those."""
    if column not in SIGNAL_COLUMNS:
        raise StoreError(f"signal column {column!r}: use one of {', '.join(SIGNAL_COLUMNS)}")
    keep = f"{column} IS NULL"
    if replaces:
        keep += f" OR {column} IN ({', '.join([ph] * replaces)})"
    return f"UPDATE requests SET {column} = {ph} WHERE request_id IN ({', '.join([ph] * ids)}) AND ({keep})"


def claim_signal(run: Any, ph: str, update: SignalUpdate) -> bool | None:
    """Apply one signal now, alone (`run(sql, params)` returns the rows it changed, or the rows it selected): True
    when it changed the record, False when the record holds that outcome or a stronger one already (another worker
    attributed that next turn: a client's retry reached it), None when there is no such record (not written yet)."""
    sql = signal_sql(ph, update.column, 1, len(update.replaces))
    if run(sql, (update.value, update.request_id, *update.replaces)):
        return True
    return False if run(f"SELECT 1 FROM requests WHERE request_id = {ph}", (update.request_id,)) else None


def tool_calls_sql(ph: str, count: int) -> str:
    return (f"SELECT {', '.join(TOOL_CALL_COLUMNS)} FROM tool_calls"
            f" WHERE tool_use_id IN ({', '.join([ph] * count)})")


def insert_sql(ph: str, json_cast: str = "") -> str:
    values = ", ".join(ph + json_cast if c in JSON_COLUMNS else ph for c in COLUMNS)
    # A retried batch may have been committed already (an ambiguous commit): its records are skipped, not doubled.
    return f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({values}) ON CONFLICT (request_id) DO NOTHING"


def requests_sql(
    ph: str,
    filters: Mapping[str, Any] | None,
    limit: int,
    since: float | None,
    until: float | None,
    after_id: int | None,
) -> tuple[str, list[Any]]:
    """SELECT for query_requests: newest first, or oldest first after `after_id` (follow mode)."""
    where, params = _where(ph, filters, since, until)
    if after_id is not None:
        where.append(f"id > {ph}")
        params.append(int(after_id))
    sql = f"SELECT {', '.join(ROW_KEYS)} FROM requests"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id" if after_id is not None else " ORDER BY time DESC, id DESC"
    sql += f" LIMIT {ph}"
    params.append(max(1, int(limit)))
    return sql, params


def costs_sql(ph: str, by: str, since: float | None, until: float | None) -> tuple[str, list[Any]]:
    """SELECT for query_costs: one row per group, most expensive first."""
    expr = COST_GROUPS.get(by)
    if expr is None:
        raise StoreError(f"costs by {by!r}: choose one of {', '.join(COST_GROUPS)}")
    where, params = _where(ph, None, since, until)
    # CASTs keep SUM(integer) an integer on PostgreSQL (it would be numeric → Decimal) and SQLite alike.
    sql = (
        f"SELECT {expr} AS grp, CAST(COUNT(*) AS BIGINT),"
        f" CAST(SUM(CASE WHEN {FAILED_SQL} THEN 1 ELSE 0 END) AS BIGINT),"
        f" CAST(SUM(CASE WHEN {CANCELLED_SQL} THEN 1 ELSE 0 END) AS BIGINT),"
        " CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT),"
        " CAST(SUM(cache_read_tokens) AS BIGINT), CAST(SUM(reasoning_tokens) AS BIGINT), SUM(cost_usd),"
        " CAST(SUM(CASE WHEN cost_usd IS NULL AND status < 400 THEN 1 ELSE 0 END) AS BIGINT)"
        " FROM requests"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" GROUP BY {expr} ORDER BY COALESCE(SUM(cost_usd), 0) DESC, COUNT(*) DESC, COALESCE({expr}, '')"
    return sql, params


def verdict_counts_sql(ph: str, since: float | None, until: float | None) -> tuple[str, list[Any]]:
    """SELECT for query_verdict_counts: one row per distinct VERDICT_GROUPS of the records with a verdict, and
    how many records have it."""
    where, params = _where(ph, None, since, until)
    where.append("verdict IS NOT NULL")
    groups = ", ".join(VERDICT_GROUPS)
    sql = f"SELECT {groups}, CAST(COUNT(*) AS BIGINT) FROM requests WHERE {' AND '.join(where)} GROUP BY {groups}"
    return sql, params


def failures_sql(ph: str, since: float | None, until: float | None, verdicts: Sequence[str],
                 next_turns: Sequence[str], limit: int, before: tuple[float, int] | None) -> tuple[str, list[Any]]:
    """SELECT for query_failures: FAILURE_KEYS of the records whose verdict is one of `verdicts` or whose
    next_turn is one of `next_turns`, newest first (time, then id), older than `before` (the last row of the
    previous page: keyset paging, so a page costs the same however deep it is)."""
    where, params = _where(ph, None, since, until)
    either = [f"{column} IN ({', '.join([ph] * len(values))})"
              for column, values in (("verdict", verdicts), ("next_turn", next_turns)) if values]
    where.append(f"({' OR '.join(either) or '1 = 0'})")
    params += [*verdicts, *next_turns]
    if before is not None:
        where.append(f"(time < {ph} OR (time = {ph} AND id < {ph}))")
        params += [float(before[0]), float(before[0]), int(before[1])]
    sql = (f"SELECT {', '.join(FAILURE_KEYS)} FROM requests WHERE {' AND '.join(where)}"
           f" ORDER BY time DESC, id DESC LIMIT {ph}")
    params.append(max(1, int(limit)))
    return sql, params


def spend_sql(ph: str, column: str | None, value: str | None, since: float, until: float) -> tuple[str, list[Any]]:
    """SELECT for query_spend: SUM(cost_usd) over [since, until) where `column` (a SPEND_COLUMNS name) is `value`;
    column None: every record."""
    sql, params = f"SELECT SUM(cost_usd) FROM requests WHERE time >= {ph} AND time < {ph}", [float(since), float(until)]
    if column is not None:
        if column not in SPEND_COLUMNS:
            raise StoreError(f"spend by {column!r}: use one of {', '.join(SPEND_COLUMNS)}")
        sql += f" AND {column} = {ph}"
        params.append(value)
    return sql, params


LATEST_ID_SQL = "SELECT MAX(id) FROM requests"  # the primary key's index answers it without a scan


def cost_dict(by: str, row: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {by: row[0]}
    for key, value in zip(COST_KEYS, row[1:]):
        out[key] = (None if value is None else round(float(value), 6)) if key == "cost_usd" else int(value or 0)
    return out


def _where(
    ph: str, filters: Mapping[str, Any] | None, since: float | None, until: float | None
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for name, value in (filters or {}).items():
        if value is None:
            continue
        if name not in FILTERS:
            raise StoreError(f"unknown filter {name!r}: use one of {', '.join(FILTERS)}")
        if name == "status":
            clause, args = _status_clause(ph, value)
            where.append(clause)
            params += args
        else:
            where.append(f"{name} = {ph}")
            params.append(str(value))
    if since is not None:
        where.append(f"time >= {ph}")
        params.append(float(since))
    if until is not None:
        where.append(f"time < {ph}")
        params.append(float(until))
    return where, params


# A status code HTTP has, in ASCII digits, as the admin API accepts: str.isdigit() also passes "²" and 20 digits,
# which int() refuses or SQLite cannot bind (OverflowError), a traceback instead of this refusal.
_STATUS_CODE = re.compile(r"[1-5][0-9][0-9]")


def _status_clause(ph: str, value: Any) -> tuple[str, list[Any]]:
    text = str(value).strip().lower()
    if _STATUS_CODE.fullmatch(text):
        return f"status = {ph}", [int(text)]
    if text == "ok":
        return f"NOT {FAILED_SQL} AND NOT {CANCELLED_SQL}", []
    if text == "error":
        return FAILED_SQL, []
    if text == "cancelled":
        return CANCELLED_SQL, []
    if len(text) == 3 and text[0] in "12345" and text[1:] == "xx":
        low = int(text[0]) * 100
        return f"status >= {ph} AND status < {ph}", [low, low + 100]
    raise StoreError(f"status filter {value!r}: use a code (100 to 599, such as 429), a class (4xx, 5xx), ok, error or cancelled")

