"""The reports (`dragoman logs`, `costs`, `scores`, `clusters`, `versions`) and `dragoman rollback` read the audit
store at the schema it has and never migrate it: a newer CLI once ran DDL on the store an older gateway wrote, and
that gateway then refused its next start ("newer than this gateway's"). A store they cannot read, or whose schema
this dragoman does not read, a file that is not SQLite, and a store that fails under the query each end in one
`error:` line and exit status 1, never a traceback; a status filter that is no HTTP status is bad input (exit 2)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from dragoman.cli import main
from dragoman.loop import version_store
from dragoman.loop.version_store import VersionEntry
from dragoman.observe import migrations
from dragoman.observe.record import AuditRecord
from dragoman.observe import stores
from dragoman.observe.stores import AuditStore, StoreError, open_store
from dragoman.reports import OLDEST_READ_SCHEMA
from tests.gateway import free_port
from tests.observe_pg import cluster, store_url  # noqa: F401 (fixtures)

ROUTES = """\
routes:
  - name: r
    upstream: {provider: openai_compatible, model: one, endpoint: "http://127.0.0.1:9/v1"}
"""
REPORTS = (["logs"], ["costs"], ["scores"], ["clusters"], ["versions"])


def _store_at(url: str, version: int) -> None:
    """A store as a gateway of schema `version` left it: a record with a verdict, two config versions."""
    store = open_store(url, migrate=False)
    try:
        assert store.migrate(target=version) == version
        _written_as_an_older_gateway_did(store, AuditRecord(
            time=time.time(), request_id="req_1", developer="ana", route="r", status=200, verdict="pass",
            config_version="abcdef222222"))
        for i, version_id in enumerate(["abcdef111111", "abcdef222222"]):
            version_store.record_applied(store, VersionEntry(version=version_id, time=1.0 + i, applied_by="startup",
                                                             content=ROUTES.replace("one", version_id)))
    finally:
        store.close()


def _written_as_an_older_gateway_did(store: AuditStore, record: AuditRecord) -> None:
    """A plain INSERT: this gateway's skips a request id already stored (ON CONFLICT), which needs the unique index
    of a later schema (migration 11) than the one these stores are left at."""
    insert = sys.modules[type(store).__module__]._INSERT.replace(" ON CONFLICT (request_id) DO NOTHING", "")
    assert insert != sys.modules[type(store).__module__]._INSERT
    store.run(lambda conn: conn.execute(insert, stores.record_values(record)), write=True)


def _schema(url: str) -> int:
    store = open_store(url, migrate=False)
    try:
        return store.schema_version()
    finally:
        store.close()


def _config(tmp_path: Path) -> str:
    path = tmp_path / "dragoman.yaml"
    path.write_text(ROUTES.replace("one", "abcdef222222"))
    return str(path)


def _one_error(capsys: pytest.CaptureFixture[str], status: int, *argv: str) -> str:
    """The one error line `dragoman argv` printed, having exited with `status`."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == status, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    return err.strip()


def test_logs_on_an_older_gateways_store_leaves_its_schema_as_it_was(store_url: str) -> None:
    _store_at(store_url, migrations.LATEST - 1)
    assert main(["logs", "--store", store_url]) == 0
    assert _schema(store_url) == migrations.LATEST - 1


@pytest.mark.parametrize("argv", REPORTS)
def test_every_report_reads_the_oldest_schema_it_claims_without_migrating(
        capsys: pytest.CaptureFixture[str], store_url: str, argv: list[str]) -> None:
    _store_at(store_url, OLDEST_READ_SCHEMA)
    assert main([*argv, "--store", store_url]) == 0, capsys.readouterr().err
    assert _schema(store_url) == OLDEST_READ_SCHEMA


def test_a_rollback_writes_its_row_into_an_older_store_without_migrating_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/audit.db"
    _store_at(url, OLDEST_READ_SCHEMA)
    config = _config(tmp_path)
    assert main(["rollback", "--config", config, "--store", url, "abcdef111111"]) == 0, capsys.readouterr().err
    assert "abcdef111111" in Path(config).read_text()
    assert _schema(url) == OLDEST_READ_SCHEMA
    store = open_store(url, migrate=False)
    try:
        assert version_store.history(store, 1)[0].applied_by == "rollback:manual"
    finally:
        store.close()


@pytest.mark.parametrize("argv", REPORTS)
def test_a_store_older_than_the_reports_read_is_refused_untouched(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]) -> None:
    url = f"sqlite:///{tmp_path}/audit.db"
    store = open_store(url, migrate=False)
    store.migrate(target=OLDEST_READ_SCHEMA - 1)
    store.close()
    line = _one_error(capsys, 1, *argv, "--store", url)
    assert f"schema is version {OLDEST_READ_SCHEMA - 1}" in line and "upgrade the gateway" in line
    assert _schema(url) == OLDEST_READ_SCHEMA - 1


def _commands(tmp_path: Path) -> list[list[str]]:
    return [*REPORTS, ["rollback", "--config", _config(tmp_path)]]


def test_a_file_that_is_not_sqlite_is_one_line_from_every_report(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "notadb.db"
    path.write_text("garbage garbage garbage garbage\n")
    for argv in _commands(tmp_path):
        line = _one_error(capsys, 1, *argv, "--store", str(path))
        assert "cannot read the audit store" in line and "not a database" in line, argv
    # `dragoman keys` opens (and may create) the store it manages: an unusable one is its exit status 2
    assert "not a database" in _one_error(capsys, 2, "keys", "list", "--store", str(path))


def test_a_store_a_newer_dragoman_migrated_is_one_line_from_every_report(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/audit.db"
    _store_at(url, migrations.LATEST)
    store = open_store(url, migrate=False)
    store.run(lambda conn: conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO schema_version VALUES (?, 'from the future', 0)", (migrations.LATEST + 89,)))
    store.close()
    for argv in _commands(tmp_path):
        line = _one_error(capsys, 1, *argv, "--store", url)
        assert f"version {migrations.LATEST + 89}" in line and "upgrade Dragoman" in line, argv
    assert "upgrade Dragoman" in _one_error(capsys, 2, "keys", "list", "--store", url)


def test_a_store_newer_than_this_dragoman_is_a_store_error() -> None:
    # callers catch StoreError (the CLI prints it as one line); it was a bare RuntimeError
    assert issubclass(migrations.SchemaTooNew, StoreError)


def test_a_store_that_fails_under_the_query_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/audit.db"
    _store_at(url, migrations.LATEST)
    store = open_store(url, migrate=False)
    for table in ("requests", "config_versions"):  # a damaged store: the schema says they are there
        store.run(lambda conn: conn.execute(f"DROP TABLE {table}"))  # type: ignore[attr-defined]
    store.close()
    for argv in _commands(tmp_path):
        line = _one_error(capsys, 1, *argv, "--store", url)
        assert line.startswith("error: the audit store failed: no such table"), argv


@pytest.mark.parametrize("status", ["99999999999999999999", "9" * 400, "\u00b2", "600", "099", "42"])
def test_a_status_filter_that_is_no_http_status_is_bad_input(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, status: str) -> None:
    url = f"sqlite:///{tmp_path}/audit.db"
    _store_at(url, migrations.LATEST)
    line = _one_error(capsys, 2, "logs", "--store", url, "--status", status)
    assert "status filter" in line and "100 to 599" in line


def test_a_status_code_still_filters(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/audit.db"
    _store_at(url, migrations.LATEST)
    assert main(["logs", "--store", url, "--status", "200", "--format", "json"]) == 0
    assert '"request_id":"req_1"' in capsys.readouterr().out
    assert main(["logs", "--store", url, "--status", " 404 ", "--format", "json"]) == 0
    assert capsys.readouterr().out == "[]\n"


def test_a_postgresql_store_that_cannot_be_reached_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://dragoman@127.0.0.1:{free_port()}/audit"  # nothing listens there: refused at once
    line = _one_error(capsys, 1, "logs", "--store", url)
    assert line.startswith("error: cannot read the audit store PostgreSQL dragoman@127.0.0.1:"), line
