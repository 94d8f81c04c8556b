"""Config versions in the audit store (table `config_versions`, migration 6), on SQLite and PostgreSQL alike.

One row per application of a config: the gateway's start, a reload, a rollback. Several workers (or gateways on
one PostgreSQL) apply the same file at about the same time; `record_applied` adds a row only when the newest row
of that file is another version, under the store's write lock, so they leave one row between them. `source` says
which file (its absolute path: the deployment): gateways with different config files may share one store, and
one's versions are never another's "version before" (`history(source=…)`). Scores are not kept here: they are
counted from the audit records' `config_version` and `verdict` columns when asked for."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from dragoman import errors as E
from dragoman.observe.migrations import POSTGRES

_PG_LOCK_ID = 0x64726776  # "drgv": serializes record_applied across gateways on one PostgreSQL
_COLUMNS = "version, time, applied_by, rolled_back_from, reason, source, content"
ID_LENGTH = 12  # hex digits of a version (versions.content_version)
_PREFIX = re.compile(f"[0-9a-f]{{6,{ID_LENGTH}}}")
_CANDIDATES_SHOWN = 5  # an ambiguous prefix's error names this many (a 6-digit prefix rarely begins 2)


class VersionIdError(ValueError):
    """A version asked for that is not 6+ hex digits, or a prefix of more than one version: the message says
    which and what to write instead."""

    def __init__(self, message: str, *, candidates: list[str] | None = None) -> None:
        super().__init__(message)
        self.candidates = candidates or []


class VersionEntry(msgspec.Struct, kw_only=True):
    """A config applied: its version (content hash), when, by whom or what, and its masked text."""

    version: str
    time: float
    applied_by: str  # startup | file change | SIGHUP | rollback:auto | rollback:manual | rollback:admin key_…
    rolled_back_from: str | None = None
    reason: str | None = None  # why a rollback happened (the scores), for people
    source: str | None = None  # the file (its absolute path, since rows name their deployment), or <zero-config>
    content: str | None = None  # the text, inline secrets masked (loop/secret_mask.py)
    calls: int = 0  # assessed calls under this version, and how many passed (from the audit records)
    passed: int = 0

    @property
    def score(self) -> float | None:
        return round(self.passed / self.calls, 4) if self.calls else None


def record_applied(store: Any, entry: VersionEntry) -> bool:
    """Add `entry` unless the newest row of its source (file) already has its version. True when added."""
    ph = _ph(store)
    where, params = _of_source(ph, entry.source)

    def insert(conn: Any) -> bool:
        if store.dialect == POSTGRES:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_ID,))
        row = conn.execute(f"SELECT version FROM config_versions WHERE {where} ORDER BY id DESC LIMIT 1",
                           params).fetchone()
        if row is not None and row[0] == entry.version:
            return False
        conn.execute(f"INSERT INTO config_versions ({_COLUMNS}) VALUES ({', '.join([ph] * 7)})",
                     (entry.version, entry.time, entry.applied_by, entry.rolled_back_from, entry.reason,
                      entry.source, entry.content))
        return True

    return store.run(insert, write=True)


def history(store: Any, limit: int = 50, *, with_scores: bool = True, source: str | None = None) -> list[VersionEntry]:
    """The newest `limit` applications (of the file `source`, when given), newest first, each with its version's
    calls and passes."""
    ph = _ph(store)
    where, params = _of_source(ph, source) if source is not None else ("1 = 1", ())
    rows = store.run(lambda conn: conn.execute(
        f"SELECT {_COLUMNS} FROM config_versions WHERE {where} ORDER BY id DESC LIMIT {ph}",
        (*params, int(limit))).fetchall())
    entries = [_entry(row) for row in rows]
    if with_scores and entries:
        scores = _scores(store, min(e.time for e in entries))
        for entry in entries:
            entry.calls, entry.passed = scores.get(entry.version, (0, 0))
    return entries


def find(store: Any, version: str) -> VersionEntry | None:
    """The newest application of `version` (a prefix of at least 6 hex digits is enough), with its score.
    VersionIdError when `version` is not such a prefix or names more than one version."""
    prefix = checked_prefix(version)
    ph = _ph(store)
    # substr, not LIKE: a prefix is compared as it is (no wildcards, no case folding) on SQLite and PostgreSQL
    matching = store.run(lambda conn: conn.execute(
        f"SELECT DISTINCT version FROM config_versions WHERE substr(version, 1, {ph}) = {ph}",
        (len(prefix), prefix)).fetchall())
    found = one_version(prefix, [row[0] for row in matching])
    if found is None:
        return None
    rows = store.run(lambda conn: conn.execute(
        f"SELECT {_COLUMNS} FROM config_versions WHERE version = {ph} ORDER BY id DESC LIMIT 1",
        (found,)).fetchall())
    entry = _entry(rows[0])
    first = store.run(lambda conn: conn.execute(
        f"SELECT MIN(time) FROM config_versions WHERE version = {ph}", (entry.version,)).fetchone())
    entry.calls, entry.passed = _scores(store, first[0], entry.version).get(entry.version, (0, 0))
    return entry


def checked_prefix(version: str) -> str:
    """`version` as a prefix to look up (lower case), or VersionIdError: only hex digits, 6 to ID_LENGTH of
    them, reach a query (a NUL or a non-ASCII character would otherwise reach the driver)."""
    lowered = version.lower() if version.isascii() else version
    if not _PREFIX.fullmatch(lowered):
        raise VersionIdError(f"version {E.quoted(version, 40)}: write 6 to {ID_LENGTH} of its hex digits "
                             "(dragoman versions lists them)")
    return lowered


def one_version(prefix: str, matching: list[str]) -> str | None:
    """The one version `prefix` names among `matching` (None: none), or VersionIdError naming them."""
    distinct = sorted(set(matching))
    if len(distinct) > 1:
        shown = ", ".join(distinct[:_CANDIDATES_SHOWN]) + (", ..." if len(distinct) > _CANDIDATES_SHOWN else "")
        raise VersionIdError(f"version {prefix!r} is ambiguous: it begins {len(distinct)} versions ({shown}); "
                             "write more of its digits", candidates=distinct)
    return distinct[0] if distinct else None


def sources(store: Any, version: str) -> set[str | None]:
    """The files (sources) that applied `version`."""
    ph = _ph(store)
    rows = store.run(lambda conn: conn.execute(
        f"SELECT DISTINCT source FROM config_versions WHERE version = {ph}", (version,)).fetchall())
    return {row[0] for row in rows}


def calls_since(store: Any, version: str, since: float, limit: int) -> tuple[int, int]:
    """`version`'s assessed calls since `since`, and how many passed, counting `limit` calls at most: whether a
    version live for weeks is past its watch needs its first calls, not a count of all of them."""
    ph = _ph(store)
    row = store.run(lambda conn: conn.execute(
        "SELECT CAST(COUNT(*) AS BIGINT), CAST(SUM(p) AS BIGINT) FROM (SELECT CASE WHEN verdict = 'pass' THEN 1 "
        f"ELSE 0 END AS p FROM requests WHERE time >= {ph} AND config_version = {ph} AND verdict IS NOT NULL "
        f"LIMIT {ph}) AS seen", (float(since), version, int(limit))).fetchone())
    return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)


def auto_rolled_back(store: Any, version: str) -> bool:
    """Whether `version` was once rolled back automatically (it is then never rolled back automatically again)."""
    ph = _ph(store)
    row = store.run(lambda conn: conn.execute(
        f"SELECT COUNT(*) FROM config_versions WHERE rolled_back_from = {ph} AND applied_by = {ph}",
        (version, "rollback:auto")).fetchone())
    return bool(row and row[0])


def _scores(store: Any, since: float, version: str | None = None) -> dict[str, tuple[int, int]]:
    """Assessed calls and passes per config version since `since` (the time index bounds the scan)."""
    ph = _ph(store)
    sql = ("SELECT config_version, CAST(COUNT(*) AS BIGINT), CAST(SUM(CASE WHEN verdict = 'pass' THEN 1 ELSE 0 END)"
           f" AS BIGINT) FROM requests WHERE time >= {ph} AND verdict IS NOT NULL AND config_version IS NOT NULL")
    params: list[Any] = [float(since)]
    if version is not None:
        sql += f" AND config_version = {ph}"
        params.append(version)
    sql += " GROUP BY config_version"
    rows = store.run(lambda conn: conn.execute(sql, params).fetchall())
    return {row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in rows}


def _entry(row: Any) -> VersionEntry:
    return VersionEntry(version=row[0], time=float(row[1]), applied_by=row[2], rolled_back_from=row[3],
                        reason=row[4], source=row[5], content=row[6])


def _of_source(ph: str, source: str | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause for one file's rows (rows without a source: an entry made without one)."""
    return ("source IS NULL", ()) if source is None else (f"source = {ph}", (source,))


def _ph(store: Any) -> str:
    return "%s" if store.dialect == POSTGRES else "?"
