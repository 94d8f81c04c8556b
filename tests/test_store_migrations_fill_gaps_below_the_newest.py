"""Migrations are applied by the set of versions a store has recorded, not by its highest one.

Main released migration 8 before 5 and 6: a store made then records 1,2,3,4,8 (or 1-5,8), and a gateway that only
ran migrations above the highest recorded one never created `tool_calls` (it refused to start) or `config_versions`
(config versions and rollback answered 529 "retry" for ever). The same on SQLite and on a real PostgreSQL
(tests/observe_pg.py starts one). Such a store is "needs migrating" to the reports too, never "current".
"""

from __future__ import annotations

import threading
import time

import pytest

from dragoman.loop import version_store
from dragoman.loop.version_store import VersionEntry
from dragoman.observe import migrations
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, open_store
from dragoman.reports import StoreUnavailable, open_existing_store
from tests.observe_pg import cluster, store_url  # noqa: F401 (fixtures)

ALL = sorted(m.version for m in migrations.MIGRATIONS)
# As main left stores: 658dea2..5f14e1c shipped 1-4 and 8; e2f9408 shipped 1-5 and 8, which a gateway that went
# by the highest version then "migrated to 11" without 6.
GAPS = {"8 before 5 and 6": (1, 2, 3, 4, 8), "6 missing under 11": (1, 2, 3, 4, 5, 8, 9, 10, 11)}


def _ph(store: AuditStore) -> str:
    return "?" if store.dialect == migrations.SQLITE else "%s"


def _store_with_only(url: str, versions: tuple[int, ...]) -> None:
    """A store that ran exactly these migrations, each recorded, through the module's own migration list."""
    store = open_store(url, migrate=False)
    try:
        assert store.migrate(target=1) == 1  # creates schema_version and the requests table
        ph = _ph(store)

        def apply(conn) -> None:
            for migration in migrations.MIGRATIONS:
                if migration.version in versions and migration.version > 1:
                    for statement in migration.statements(store.dialect):
                        conn.execute(statement)
                    conn.execute(f"INSERT INTO schema_version (version, description, applied_at) VALUES "
                                 f"({ph}, {ph}, {ph})", (migration.version, migration.description, time.time()))
            conn.execute(f"INSERT INTO requests (time, time_iso, request_id, status) VALUES ({ph}, {ph}, {ph}, {ph})",
                         (1.0, "1970-01-01T00:00:01.000+00:00", "req_old", 200))

        store.run(apply, write=True)
    finally:
        store.close()


def _recorded(store: AuditStore) -> list[int]:
    return sorted(row[0] for row in store.run(
        lambda conn: conn.execute("SELECT version FROM schema_version").fetchall()))


@pytest.mark.parametrize("versions", list(GAPS.values()), ids=list(GAPS))
def test_a_store_missing_migrations_below_its_newest_gets_them(store_url: str, versions: tuple[int, ...]) -> None:
    _store_with_only(store_url, versions)
    store = open_store(store_url)
    try:
        assert _recorded(store) == ALL
        assert store.schema_version() == migrations.LATEST
        assert [r["request_id"] for r in store.query_requests()] == ["req_old"]
        # the tables of 5 (with 10's column) and 6 are there and used as the gateway uses them
        store.run(lambda conn: conn.execute(f"INSERT INTO tool_calls (tool_use_id, request_id, time, key_id) "
                                            f"VALUES ({_ph(store)}, {_ph(store)}, 1.0, {_ph(store)})",
                                            ("toolu_1", "req_old", "key_1")), write=True)
        assert version_store.record_applied(store, VersionEntry(version="abcdef111111", time=2.0,
                                                                applied_by="startup", content="routes: []\n"))
        assert [e.version for e in version_store.history(store, with_scores=False)] == ["abcdef111111"]
        store.write([AuditRecord(time=3.0, request_id="req_new", status=200)])
        assert store.migrate() == migrations.LATEST  # nothing left to do
        assert _recorded(store) == ALL
    finally:
        store.close()


@pytest.mark.parametrize("versions", list(GAPS.values()), ids=list(GAPS))
def test_a_store_missing_a_migration_is_at_the_version_before_it(store_url: str, versions: tuple[int, ...]) -> None:
    _store_with_only(store_url, versions)
    store = open_store(store_url, migrate=False)
    try:
        first_missing = min(set(ALL) - set(versions))
        assert store.schema_version() == max(v for v in ALL if v < first_missing)
    finally:
        store.close()
    with pytest.raises(StoreUnavailable, match="a gateway migrates its store when it starts"):
        open_existing_store(store_url, "test")


def test_a_newer_store_with_a_gap_is_still_refused(store_url: str) -> None:
    _store_with_only(store_url, (1, 2, 3, 4, 8))
    store = open_store(store_url, migrate=False)
    try:
        store.run(lambda conn: conn.execute(
            f"INSERT INTO schema_version (version, description, applied_at) VALUES ({_ph(store)}, 'future', 1.0)",
            (migrations.LATEST + 1,)), write=True)
        assert store.schema_version() == migrations.LATEST + 1
        with pytest.raises(migrations.SchemaTooNew, match="upgrade Dragoman"):
            store.migrate()
        assert _recorded(store) == [1, 2, 3, 4, 8, migrations.LATEST + 1]  # nothing written under it
    finally:
        store.close()


def test_two_starters_fill_the_gap_once(store_url: str) -> None:
    """Two workers starting together on a gap store: they serialize on the migration lock, the second finds
    nothing to do (each migration applied and recorded once; a second run of 5 would fail on its table)."""
    _store_with_only(store_url, (1, 2, 3, 4, 8))
    stores = [open_store(store_url, migrate=False) for _ in range(2)]
    start = threading.Barrier(2)
    results: list[object] = [None, None]

    def migrate(i: int) -> None:
        start.wait()
        try:
            results[i] = stores[i].migrate()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=migrate, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert results == [migrations.LATEST, migrations.LATEST]
        assert _recorded(stores[0]) == ALL
    finally:
        for store in stores:
            store.close()
