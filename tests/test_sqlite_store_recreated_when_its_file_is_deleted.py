"""The SQLite store's file deleted or replaced while the gateway runs (an operator's rm, a cleanup job, a restored
backup): the writer's connection would keep committing into the unlinked file, every record lost at exit without a
word. The next batch notices, says so, and recreates the store (schema included) at its path."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from dragoman.observe import migrations
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, open_store
from dragoman.observe.writer import AuditWriter
from tests.audit_helpers import wait_for

T0 = 1_795_000_000.0


def _remove_store_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")


def _written_then_deleted(path: Path) -> AuditStore:
    """A store at `path` that wrote a record, its files then deleted under it."""
    store = open_store(str(path))
    store.write([AuditRecord(time=T0, request_id="req_before")])
    _remove_store_files(path)
    return store


def _request_ids(path: Path) -> list[str]:
    reader = open_store(str(path), migrate=False)
    try:
        return sorted(r["request_id"] for r in reader.query_requests())
    finally:
        reader.close()


def test_a_batch_after_the_file_is_deleted_recreates_it_and_lands_there(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "audit.db"
    store = _written_then_deleted(path)
    with caplog.at_level(logging.WARNING, logger="dragoman.audit"):
        store.write([AuditRecord(time=T0 + 1, request_id="req_after")])
    store.close()
    assert path.exists()
    assert _request_ids(path) == ["req_after"]
    assert any("deleted or replaced" in r.getMessage() for r in caplog.records)
    reader = open_store(str(path), migrate=False)
    assert reader.schema_version() == migrations.LATEST
    reader.close()


def test_a_batch_after_the_file_is_replaced_lands_in_the_new_file(tmp_path: Path) -> None:
    path, other = tmp_path / "audit.db", tmp_path / "restored.db"
    store = open_store(str(path))
    store.write([AuditRecord(time=T0, request_id="req_before")])
    restored = open_store(str(other))
    restored.write([AuditRecord(time=T0 - 1, request_id="req_restored")])
    restored.close()
    _remove_store_files(path)
    os.replace(other, path)
    store.write([AuditRecord(time=T0 + 1, request_id="req_after")])
    store.close()
    assert _request_ids(path) == ["req_after", "req_restored"]


def test_the_writer_loses_nothing_to_a_file_deleted_under_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    writer = AuditWriter(open_store(str(path)), batch=1, flush_interval=0.01)
    writer.submit(AuditRecord(time=T0, request_id="req_before"))
    wait_for(lambda: writer.written == 1, 5, "the first record to be written")
    _remove_store_files(path)
    for i in range(5):
        writer.submit(AuditRecord(time=T0 + i, request_id=f"req_after{i}"))
    assert writer.close(timeout=10)
    assert (writer.written, writer.dropped) == (6, 0)
    assert _request_ids(path) == [f"req_after{i}" for i in range(5)]


def test_a_recreation_whose_migration_failed_migrates_at_the_next_write(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.db"
    store = _written_then_deleted(path)
    migrate = migrations.migrate_sqlite
    failures = iter([sqlite3.OperationalError("disk I/O error")])

    def fails_once(conn: sqlite3.Connection, target: int | None = None) -> int:
        for error in failures:
            raise error
        return migrate(conn, target)

    monkeypatch.setattr(migrations, "migrate_sqlite", fails_once)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        store.write([AuditRecord(time=T0 + 1, request_id="req_lost")])
    store.write([AuditRecord(time=T0 + 2, request_id="req_after")])  # the retry: migrated, never an empty file
    store.close()
    assert _request_ids(path) == ["req_after"]
