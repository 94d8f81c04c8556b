"""A database that fails under the admin API (locked, unreachable) is a retryable 529 `overloaded_error` naming
the failure's kind, never a 500 with a traceback."""

from __future__ import annotations

from pathlib import Path


def test_a_failing_store_is_a_retryable_529_on_the_admin_api(tmp_path: Path) -> None:
    import sqlite3

    from dragoman.admin_api import AdminApi, Services
    from dragoman.govern.key_cache import KeyCache
    from dragoman.govern.key_store import KeyStore
    from dragoman.observe.stores import open_store

    class Broken(KeyStore):
        def every(self):  # noqa: ANN202
            raise sqlite3.OperationalError("database is locked")

    store = open_store(str(tmp_path / "k.db"))
    try:
        status, body = AdminApi(Services(keys=KeyCache(Broken(store))), ["adm-1"]).handle(
            "GET", "/api/keys", b"", [(b"x-api-key", b"adm-1")])
    finally:
        store.close()
    assert status == 529 and b"overloaded_error" in body and b"OperationalError" in body
