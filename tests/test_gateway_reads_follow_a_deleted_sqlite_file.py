"""A running gateway's SQLite file deleted (an operator's rm, a cleanup job): its reads must follow the file now at
the path, not keep each thread's connection to the unlinked one. Otherwise /api/requests shows the deleted file's
rows for ever and never a new request, and the key cache keeps serving the deleted file's keys: a key created in
the new file is refused until a restart, one that is no longer in the store keeps working."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from dragoman.observe import migrations

from tests.audit_helpers import wait_for
from tests.virtual_keys_helpers import ADMIN_KEY, answering, api, call, create, gateways, wait_status
from tests.upstreams import ScriptedChatUpstream


def _remove_store_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")


def _schema(path: Path) -> int:
    """The schema version of the file at `path`; 0 while there is none, or it is not migrated yet."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)
    except sqlite3.Error:
        return 0


def _listed(gateway, ids: set[str]) -> set[str]:  # type: ignore[no-untyped-def]
    answer = api(gateway, "GET", "/api/requests?limit=100", ADMIN_KEY)
    assert answer.status == 200, answer.body
    return ids & {row["request_id"] for row in answer.json()["data"]}


def test_api_requests_shows_the_requests_stored_after_the_file_was_deleted(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with ScriptedChatUpstream(answering()) as upstream, gateways(upstream, f"sqlite:///{path}", 1) as [gateway]:
        before = {call(gateway, None).headers["request-id"] for _ in range(3)}
        # Every reader thread has its connection to the first file once these answer.
        wait_for(lambda: _listed(gateway, before) == before, 10.0, "the first requests in /api/requests", step=0.05)
        _remove_store_files(path)
        after = {call(gateway, None).headers["request-id"] for _ in range(3)}
        wait_for(lambda: _listed(gateway, after) == after, 10.0, "the requests after the delete in /api/requests",
                 step=0.05)
        for _ in range(6):  # whichever thread answers: the new file's rows, none of the deleted one's
            assert _listed(gateway, before | after) == after
        assert "deleted or replaced" in gateway.stderr_text()


def test_the_key_cache_follows_the_file_now_at_the_path(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = f"sqlite:///{path}"
    old_key = create(store, "--developer", "ana")["key"]
    with ScriptedChatUpstream(answering()) as upstream, gateways(upstream, store, 1) as [gateway]:
        assert call(gateway, old_key).status == 200
        _remove_store_files(path)
        call(gateway, old_key)  # its record: the writer recreates the store
        wait_for(lambda: _schema(path) == migrations.LATEST, 10.0, "the gateway to recreate its store", step=0.05)
        new_key = create(store, "--developer", "bo")["key"]
        wait_status(gateway, new_key, 200, "the key made in the new file to be accepted")
        wait_status(gateway, old_key, 401, "the key gone with the deleted file to be refused")
