"""deploy/dragoman.yaml, the team config of the compose and Kubernetes setups, is one `dragoman check --strict`
accepts once its secrets are in the environment (placeholders here), with inbound auth on; and `dragoman serve`
with no --config serves the file $DRAGOMAN_CONFIG names (how the image takes a mounted config)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from tests.deploy_files import ROOT, TEAM_CONFIG, TEAM_ENV
from tests.gateway import run_gateway

SCRUBBED = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}


def _check(path: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dragoman", "check", "--strict", path], capture_output=True,
                          text=True, timeout=30, cwd=ROOT, env={**SCRUBBED, **env})


def test_team_config_passes_strict_check_with_its_secrets_set() -> None:
    out = _check(str(TEAM_CONFIG), TEAM_ENV)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert "inbound auth: on, 2 key(s)" in out.stdout  # DRAGOMAN_API_KEYS from the secrets


def test_team_config_names_the_secrets_it_needs_when_they_are_missing() -> None:
    out = _check(str(TEAM_CONFIG), {})
    assert out.returncode == 1
    assert "env var OPENAI_PROD is not set" in out.stderr


def test_serve_without_config_flag_serves_the_file_dragoman_config_names(tmp_path) -> None:
    # The example's counters live on a host named redis; here they stay in memory (loopback only in tests).
    text = TEAM_CONFIG.read_text()
    config = tmp_path / "dragoman.yaml"
    memory = text.replace("    backend: redis\n", "    backend: memory\n")
    config.write_text(memory.replace("    redis_url: redis://redis:6379/0\n", ""))  # only read with backend redis
    with run_gateway(None, env={"DRAGOMAN_CONFIG": str(config), **TEAM_ENV,
                                "DRAGOMAN_AUDIT_STORE": f"sqlite:///{tmp_path}/audit.db"}) as gw:
        request = urllib.request.Request(f"http://127.0.0.1:{gw.port}/v1/models",
                                         headers={"x-api-key": "team-key-1"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            models = json.load(answer)
    assert [m["id"] for m in models["data"]] == ["gpt-5-via-gateway", "gpt-5-mini-via-gateway"]
