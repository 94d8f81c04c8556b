"""`dragoman logs` / `dragoman costs --config FILE` read the file as the gateway does, through the config loader:
a key the gateway would refuse is refused here too, at its file and line, instead of the report silently reading
another store; and the gateway's secrets need not be set where the report runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from dragoman import reports

ROUTE = "routes:\n  - {name: gpt5, upstream: {provider: openai, model: gpt-5, api_key_ref: openai_prod}}\n"


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    reports.add_commands(parser.add_subparsers(dest="command"))
    return reports.run(parser.parse_args(argv))


def test_a_misspelt_audit_key_is_refused_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DRAGOMAN_AUDIT_STORE", raising=False)
    config = tmp_path / "gateway.yaml"
    config.write_text(f"audit:\n  stroe: sqlite:///{tmp_path}/audit.db\n{ROUTE}")
    assert _run(["costs", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert f"{config}:2" in error and "stroe" in error, error


def test_the_store_is_found_without_the_gateways_secrets(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("audit:\n  store: postgresql://audit@db/dragoman\n"
                      "auth:\n  keys:\n    - {id: alice, key_ref: alice_key}\n" + ROUTE)
    url, source = reports.store_source(None, str(config), {})  # no OPENAI_PROD, no ALICE_KEY
    assert (url, source) == ("postgresql://audit@db/dragoman", f"audit.store in {config}")
