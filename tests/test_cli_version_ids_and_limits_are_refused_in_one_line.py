"""Bad input to `dragoman versions`, `dragoman rollback` and `dragoman logs` is refused with exit status 2 and one
error line, never a traceback and never a guess: a --limit out of 1..10000 (a number past 2**63 once ended in
SQLite's OverflowError), and a version that is not 6 to 12 hex digits or begins more than one version (LIKE
wildcards once matched the newest version, and an ambiguous prefix silently picked it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dragoman.cli import main
from dragoman.loop import version_store
from dragoman.loop.version_store import VersionEntry
from dragoman.observe.stores import open_store

ROUTES = """\
routes:
  - name: r
    upstream: {provider: openai_compatible, model: one, endpoint: "http://127.0.0.1:9/v1"}
"""


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/audit.db"
    store = open_store(url)
    try:
        for i, version in enumerate(["abcdef111111", "abcdef222222", "ab3333333333"]):
            version_store.record_applied(store, VersionEntry(version=version, time=1.0 + i, applied_by="startup",
                                                             content=ROUTES.replace("one", version)))
    finally:
        store.close()
    return url


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one error line `dragoman argv` printed, having exited with status 2."""
    try:
        status = main(list(argv))
    except SystemExit as exit_:  # argparse's usage error
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.parametrize("command", ["versions", "logs"])
@pytest.mark.parametrize("limit", ["99999999999999999999", "0", "-5", "10001", "9" * 5000, "many"])
def test_a_limit_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str], store_url: str, command: str,
                                               limit: str) -> None:
    line = _refused(capsys, command, "--store", store_url, "--limit", limit)
    assert "--limit" in line and "from 1 to 10000" in line


@pytest.mark.parametrize("command", ["versions", "logs"])
def test_a_limit_in_range_is_taken(capsys: pytest.CaptureFixture[str], store_url: str, command: str) -> None:
    assert main([command, "--store", store_url, "--limit", "10000"]) == 0
    assert main([command, "--store", store_url, "--limit", "1"]) == 0


@pytest.mark.parametrize("asked", ["______", "%%%%%%", "a%%%%%", "ab3333\u00e9", "abc"])
def test_a_rollback_to_a_version_that_is_not_hex_digits_is_refused(
        capsys: pytest.CaptureFixture[str], store_url: str, tmp_path: Path, asked: str) -> None:
    path = tmp_path / "dragoman.yaml"
    path.write_text(ROUTES)
    line = _refused(capsys, "rollback", "--config", str(path), "--store", store_url, asked)
    assert line.startswith("error: version ") and "hex digits" in line
    assert path.read_text() == ROUTES


def test_a_rollback_to_an_ambiguous_prefix_names_the_versions_it_begins(
        capsys: pytest.CaptureFixture[str], store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "dragoman.yaml"
    path.write_text(ROUTES)
    line = _refused(capsys, "rollback", "--config", str(path), "--store", store_url, "abcdef")
    assert "ambiguous" in line and "abcdef111111, abcdef222222" in line
    assert path.read_text() == ROUTES
    assert main(["rollback", "--config", str(path), "--store", store_url, "AB3333"]) == 0  # one version: done
    assert path.read_text() == ROUTES.replace("one", "ab3333333333")
