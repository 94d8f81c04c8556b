"""`dragoman check FILE` validates a file on a machine without its secrets: a secret that cannot be read is a
warning naming it (exit 0), an error only with --strict; a structural mistake stays an error (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dragoman.config.load import parse_config
from dragoman.errors import ConfigError
from tests.test_readme_config import ROOT

SCRUBBED = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}  # no OPENAI_*, ANTHROPIC_*, DRAGOMAN_* at all


def _check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dragoman", "check", *args], capture_output=True, text=True,
                          timeout=30, cwd=ROOT, env={**SCRUBBED, **(env or {})})


def _warnings(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in out.stderr.splitlines() if line.startswith("warning: ")]


@pytest.mark.parametrize(("example", "missing"), [
    ("seed.yaml", {"OPENAI_PROD": 2, "ANTHROPIC_PROD": 1}),
    ("gateway.yaml", {"OPENAI_PROD": 2}),
])
def test_example_checks_without_its_secrets(example: str, missing: dict[str, int]) -> None:
    out = _check(f"examples/{example}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"examples/{example}: ok, 3 route(s)")
    warnings = _warnings(out)
    assert len(warnings) == sum(missing.values()), out.stderr
    for var, count in missing.items():
        assert sum(f"env var {var} is not set or empty" in w for w in warnings) == count, out.stderr
    assert all(w.startswith(f"warning: examples/{example}:") for w in warnings)  # file:line of each api_key_ref
    assert "error" not in out.stderr


@pytest.mark.parametrize("example", ["seed.yaml", "gateway.yaml"])
def test_strict_makes_missing_secrets_errors(example: str) -> None:
    out = _check("--strict", f"examples/{example}")
    assert out.returncode == 1
    assert "--strict makes them errors" in out.stderr


def test_with_its_secrets_present_strict_passes() -> None:
    out = _check("--strict", "examples/seed.yaml", env={"OPENAI_PROD": "sk-o", "ANTHROPIC_PROD": "sk-a"})
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


def test_structural_error_is_still_an_error_without_secrets(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("routes:\n  - name: a\n    upstream: {provider: azure, model: m, api_key_ref: nope}\n")
    out = _check(str(config))
    assert out.returncode == 2
    assert f"error: {config}:3: routes[0].upstream.provider" in out.stderr


def test_missing_secret_files_and_inbound_key_refs_are_warnings(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "routes:\n"
        "  - name: a\n"
        "    upstream: {provider: openai, model: gpt-5, api_key_ref: k}\n"
        "secrets:\n"
        "  k: {file: absent.key}\n"
        "auth:\n"
        "  keys:\n"
        "    - sk-plain\n"
        "    - {id: ana, key_ref: ana_key}\n"
    )
    out = _check(str(config))
    assert out.returncode == 0, out.stderr
    warnings = _warnings(out)
    assert len(warnings) == 2, out.stderr
    assert f"{config}:3: routes[0].upstream.api_key_ref: cannot read secret file {tmp_path}/absent.key" in warnings[0]
    assert f"{config}:9: auth.keys[1].key_ref: env var ANA_KEY is not set" in warnings[1]
    assert "inbound auth: on, 1 key(s)" in out.stdout


def test_loading_for_serve_still_refuses_a_missing_secret() -> None:
    text = "routes:\n  - name: a\n    upstream: {provider: openai, model: gpt-5, api_key_ref: k}\n"
    with pytest.raises(ConfigError, match="env var K is not set"):
        parse_config(text, "config.yaml", {})
    noted: list[str] = []
    config = parse_config(text, "config.yaml", {}, missing_secrets=noted)
    assert config.routes[0].api_key is None
    assert noted == ['config.yaml:3: routes[0].upstream.api_key_ref: env var K is not set or empty (api_key_ref "k"; '
                     'map it under secrets: to read another source)']
