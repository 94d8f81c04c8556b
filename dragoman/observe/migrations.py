"""The audit schema as numbered migrations, applied by the gateway itself on both stores.

A migration is never edited once released: change the schema by appending one. `schema_version` holds one row
per applied migration, and every known migration it lacks is applied, in ascending order (a set, not a maximum:
see applied_versions). Concurrent starters (several workers, several gateways on one PostgreSQL) serialize on a
write lock (SQLite `BEGIN IMMEDIATE`) or an advisory lock (PostgreSQL), and each re-reads the applied versions
under it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from dragoman.observe.stores import StoreError

SQLITE = "sqlite"
POSTGRES = "postgres"

_PG_LOCK_ID = 0x647261676F6D  # "dragom": the advisory lock held while migrating


class SchemaTooNew(StoreError, RuntimeError):
    """A newer Dragoman migrated the store: this one must not write a schema it does not know. A StoreError, so
    the CLI prints it as one line; a RuntimeError too, as it was before it had a class of its own."""

    def __init__(self, version: int) -> None:
        super().__init__(f"audit store schema is version {version}, newer than this Dragoman's {LATEST}: "
                         "upgrade Dragoman")
        self.version = version


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]

    def statements(self, dialect: str) -> tuple[str, ...]:
        return self.sqlite if dialect == SQLITE else self.postgres


def _requests_table(dialect: str) -> str:
    pg = dialect == POSTGRES
    ident = "BIGSERIAL PRIMARY KEY" if pg else "INTEGER PRIMARY KEY AUTOINCREMENT"  # ids never reused: follow mode
    real = "DOUBLE PRECISION" if pg else "REAL"
    big = "BIGINT" if pg else "INTEGER"
    json = "JSONB" if pg else "TEXT"
    boolean = "BOOLEAN NOT NULL DEFAULT FALSE" if pg else "INTEGER NOT NULL DEFAULT 0"
    return f"""
CREATE TABLE requests (
    id {ident},
    time {real} NOT NULL,
    time_iso TEXT NOT NULL,
    request_id TEXT NOT NULL,
    key_id TEXT,
    developer TEXT,
    team TEXT,
    repo TEXT,
    session TEXT,
    requested_model TEXT,
    policy TEXT,
    branch TEXT,
    input_estimate {big},
    candidates {json} NOT NULL DEFAULT '[]',
    route TEXT,
    upstream_model TEXT,
    provider TEXT,
    status INTEGER NOT NULL,
    error_type TEXT,
    stream {boolean},
    latency_total_ms {real},
    ttfb_ms {real},
    upstream_ms {real},
    overhead_ms {real},
    input_tokens {big} NOT NULL DEFAULT 0,
    output_tokens {big} NOT NULL DEFAULT 0,
    cache_read_tokens {big} NOT NULL DEFAULT 0,
    reasoning_tokens {big} NOT NULL DEFAULT 0,
    cost_usd {real},
    notes {json} NOT NULL DEFAULT '[]',
    stream_events INTEGER NOT NULL DEFAULT 0
)"""


def _same(*statements: str) -> tuple[str, ...]:
    return statements


_V1_INDEXES = _same(
    "CREATE INDEX requests_time ON requests (time)",
    "CREATE INDEX requests_developer_time ON requests (developer, time)",
    "CREATE INDEX requests_repo_time ON requests (repo, time)",
    "CREATE INDEX requests_route_time ON requests (route, time)",
)
_V2_INDEXES = _same(
    "CREATE INDEX requests_request_id ON requests (request_id)",
    "CREATE INDEX requests_team_time ON requests (team, time)",
    "CREATE INDEX requests_model_time ON requests (upstream_model, time)",
    "CREATE INDEX requests_key_time ON requests (key_id, time)",
)

# Every index is paid on every insert, in the writer thread that shares the GIL with the requests: with eight
# of them, auditing cost 11-14% of throughput (bench/RESULTS.md). Reports read a time range and filter or group
# the rows in it; the time index serves them all, and request_id serves lookups of one request.
_V3_DROP = _same(
    "DROP INDEX requests_developer_time",
    "DROP INDEX requests_repo_time",
    "DROP INDEX requests_route_time",
    "DROP INDEX requests_team_time",
    "DROP INDEX requests_model_time",
    "DROP INDEX requests_key_time",
)


def _loop_columns(dialect: str) -> tuple[str, ...]:
    json = "JSONB" if dialect == POSTGRES else "TEXT"
    columns = (
        "tool_calls INTEGER NOT NULL DEFAULT 0", "verdict TEXT", f"verdict_kinds {json} NOT NULL DEFAULT '[]'",
        "verdict_detail TEXT", "next_turn TEXT", "judge TEXT", "shape TEXT", "prompt_variant TEXT",
        "config_version TEXT", f"loop_events {json} NOT NULL DEFAULT '[]'",
    )
    return tuple(f"ALTER TABLE requests ADD COLUMN {column}" for column in columns)


def _keys_table(dialect: str) -> tuple[str, ...]:
    """Virtual keys (govern/key_store.py): never the key, only its SHA-256. `change` numbers every write, so each
    gateway's key cache reads only the rows changed since the last number it saw."""
    real = "DOUBLE PRECISION" if dialect == POSTGRES else "REAL"
    big = "BIGINT" if dialect == POSTGRES else "INTEGER"
    return (
        f"""
CREATE TABLE virtual_keys (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    developer TEXT,
    team TEXT,
    repo TEXT,
    role TEXT NOT NULL,
    models TEXT NOT NULL DEFAULT '[]',
    budget TEXT,
    limits TEXT NOT NULL DEFAULT '{{}}',
    created {real} NOT NULL,
    expires_at {real},
    revoked_at {real},
    rotated_to TEXT,
    change {big} NOT NULL
)""",
        "CREATE INDEX virtual_keys_change ON virtual_keys (change)",
    )


def _tool_calls_table(dialect: str) -> tuple[str, ...]:
    real = "DOUBLE PRECISION" if dialect == POSTGRES else "REAL"
    return (
        "CREATE TABLE tool_calls (tool_use_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, "
        f"time {real} NOT NULL, route TEXT, model TEXT, shape TEXT, prompt_variant TEXT, config_version TEXT, "
        "tool_name TEXT)",
        "CREATE INDEX tool_calls_time ON tool_calls (time)",
    )


def _config_versions_table(dialect: str) -> tuple[str, ...]:
    pg = dialect == POSTGRES
    ident = "BIGSERIAL PRIMARY KEY" if pg else "INTEGER PRIMARY KEY AUTOINCREMENT"
    real = "DOUBLE PRECISION" if pg else "REAL"
    # One row per application of a config (loop/version_store.py): `version` is its content hash, so a version
    # rolled back to appears again; `content` is the file's text with inline secrets masked.
    return (f"""
CREATE TABLE config_versions (
    id {ident},
    version TEXT NOT NULL,
    time {real} NOT NULL,
    applied_by TEXT NOT NULL,
    rolled_back_from TEXT,
    reason TEXT,
    source TEXT,
    content TEXT
)""", "CREATE INDEX config_versions_version ON config_versions (version)")


# Budgets are charged to the key's developer and team, while `developer`/`team` may come from a client's headers:
# seeding a budget from those would count anyone's spend who claims the name. No index: seeding reads one period,
# which the time index serves, and every index is paid on every insert (see _V3_DROP).
_BUDGET_COLUMNS = _same(
    "ALTER TABLE requests ADD COLUMN budget_developer TEXT",
    "ALTER TABLE requests ADD COLUMN budget_team TEXT",
)

# The next-turn join is scoped to the client key that got the calls (loop/assess.py): one client's turn never
# charges another's call, whatever ids an upstream repeats or a client makes up.
_TOOL_CALL_KEY = _same("ALTER TABLE tool_calls ADD COLUMN key_id TEXT")

# A batch whose commit failed ambiguously (a PostgreSQL connection lost during COMMIT) is retried by the writer and
# may be in the store already: request ids are unique (the gateway makes them: time plus 64 random bits), so the
# insert skips a record whose id is there (stores.insert_sql). Copies such retries left before this are removed
# first, keeping the first: a copy is the same request again, counted twice in costs and budgets.
_UNIQUE_REQUEST_ID = _same(
    "DELETE FROM requests WHERE EXISTS (SELECT 1 FROM requests AS earlier"
    " WHERE earlier.request_id = requests.request_id AND earlier.id < requests.id)",
    "DROP INDEX requests_request_id",
    "CREATE UNIQUE INDEX requests_request_id ON requests (request_id)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "requests table", (_requests_table(SQLITE), *_V1_INDEXES), (_requests_table(POSTGRES), *_V1_INDEXES)),
    Migration(2, "indexes for lookups by request id and cost reports by team, model and key", _V2_INDEXES, _V2_INDEXES),
    Migration(3, "keep only the time and request_id indexes: cheaper inserts", _V3_DROP, _V3_DROP),
    Migration(4, "the correctness loop's columns: verdict, turn shape, config version, loop events",
              _loop_columns(SQLITE), _loop_columns(POSTGRES)),
    Migration(5, "tool-call memory: the tool_use ids the gateway answered with, for the next-turn join",
              _tool_calls_table(SQLITE), _tool_calls_table(POSTGRES)),
    Migration(6, "config versions: every config applied, with its masked text, for rollback",
              _config_versions_table(SQLITE), _config_versions_table(POSTGRES)),
    # 7 was reserved for shared loop state while the loop landed; not used.
    Migration(8, "virtual keys, stored by digest", _keys_table(SQLITE), _keys_table(POSTGRES)),
    Migration(9, "the developer and team whose budgets a request was charged against (its key's)",
              _BUDGET_COLUMNS, _BUDGET_COLUMNS),
    Migration(10, "the client key each tool call was given to: a next turn is joined only to its own key's calls",
              _TOOL_CALL_KEY, _TOOL_CALL_KEY),
    Migration(11, "one row per request id: a retried batch's records are not inserted twice",
              _UNIQUE_REQUEST_ID, _UNIQUE_REQUEST_ID),
)

LATEST = MIGRATIONS[-1].version

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at {real} NOT NULL)"
)


def migrate_sqlite(conn: Any, target: int | None = None) -> int:
    """Apply pending migrations on a sqlite3 connection in autocommit mode; returns the schema version."""
    conn.execute(_VERSION_TABLE.format(real="REAL"))
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _apply(conn, SQLITE, "?", target)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return version


def migrate_postgres(conn: Any, target: int | None = None) -> int:
    """Apply pending migrations on a psycopg connection; DDL is transactional there, so all or nothing."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_ID,))
        conn.execute(_VERSION_TABLE.format(real="DOUBLE PRECISION"))
        return _apply(conn, POSTGRES, "%s", target)


def applied_versions(conn: Any) -> set[int]:
    """The migrations recorded in schema_version. A set, not a maximum: numbers were not released in order (main
    shipped 8 before 5 and 6), so a store may have a higher version recorded and a lower one missing."""
    return {int(row[0]) for row in conn.execute("SELECT version FROM schema_version").fetchall()}


def current_version(conn: Any) -> int:
    """The schema version the store is at: the last known migration before the first one missing (a store missing
    5 is at 4, whatever higher numbers it has: it needs migrating). A version above LATEST as it is: a newer
    Dragoman's store, refused."""
    return _version_of(applied_versions(conn))


def _version_of(applied: set[int]) -> int:
    newest = max(applied, default=0)
    if newest > LATEST:
        return newest
    version = 0
    for migration in MIGRATIONS:
        if migration.version not in applied:
            break
        version = migration.version
    return version


def _apply(conn: Any, dialect: str, ph: str, target: int | None) -> int:
    """Run every known migration up to the goal that the store has not recorded, in ascending order. One run out
    of order (5 or 6 on a store that has 8 to 11) depends on no later one: each creates its own table, and the
    only later migration touching one of them (10, on tool_calls) cannot have run without it (it would fail)."""
    applied = applied_versions(conn)
    newest = max(applied, default=0)
    if newest > LATEST:
        raise SchemaTooNew(newest)
    goal = LATEST if target is None else target
    for migration in MIGRATIONS:
        if migration.version <= goal and migration.version not in applied:
            for statement in migration.statements(dialect):
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO schema_version (version, description, applied_at) VALUES ({ph}, {ph}, {ph})",
                (migration.version, migration.description, time.time()),
            )
            applied.add(migration.version)
    return _version_of(applied)
