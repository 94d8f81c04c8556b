"""`dragoman keys` never upgrades a store: an admin with a newer dragoman running `keys list` on the team's store
would otherwise migrate it, and the older gateway writing it would refuse its next start ("schema is version N,
newer than this gateway's"). The reading subcommands read the store as it is; the writing ones write only a store
at this dragoman's schema and refuse any other in one line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dragoman.observe import migrations
from dragoman.observe.stores import open_store
from tests.audit_helpers import cli

KEYS_SCHEMA = 8  # the migration that added virtual keys


def _store_at(path: Path, version: int) -> str:
    """A store an older gateway made: migrated up to `version` only."""
    store = open_store(str(path), migrate=False)
    store.migrate(version)
    store.close()
    return f"sqlite:///{path}"


def _schema(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])


def test_keys_list_and_show_leave_an_older_store_at_its_schema(tmp_path: Path) -> None:
    path = tmp_path / "older.db"
    store = _store_at(path, migrations.LATEST - 1)
    listed = cli("keys", "list", "--store", store)
    assert listed.returncode == 0, listed.stderr
    shown = cli("keys", "show", "vk_0123456789abcdef", "--store", store)
    assert shown.returncode == 1 and "vk_0123456789abcdef" in shown.stderr
    assert _schema(path) == migrations.LATEST - 1


def test_keys_list_refuses_a_store_older_than_virtual_keys_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ancient.db"
    store = _store_at(path, KEYS_SCHEMA - 1)
    version = _schema(path)  # 7 was never used: 6
    listed = cli("keys", "list", "--store", store)
    assert listed.returncode == 2
    assert listed.stderr.count("\n") == 1 and f"schema is version {version}" in listed.stderr
    assert _schema(path) == version


def test_keys_create_revoke_and_rotate_refuse_an_older_store_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "older.db"
    store = _store_at(path, migrations.LATEST - 1)
    for args in (("create", "--developer", "ana"), ("revoke", "vk_0123456789abcdef"),
                 ("rotate", "vk_0123456789abcdef")):
        refused = cli("keys", *args, "--store", store)
        assert refused.returncode == 2, refused.stdout
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert f"schema is version {migrations.LATEST - 1}" in refused.stderr
        assert "upgrade the gateway" in refused.stderr
    assert _schema(path) == migrations.LATEST - 1


def test_keys_create_makes_a_store_where_there_is_none(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    made = cli("keys", "create", "--developer", "ana", "--store", f"sqlite:///{path}")
    assert made.returncode == 0, made.stderr
    assert _schema(path) == migrations.LATEST


def test_keys_list_does_not_create_a_store(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    listed = cli("keys", "list", "--store", f"sqlite:///{path}")
    assert listed.returncode == 2 and "no audit store" in listed.stderr
    assert not path.exists()
