"""End to end with the real Claude Code CLI: `dragoman claude` reaches the gateway with only the gateway key even
when the user's Claude Code setup says otherwise (an apiKeyHelper with their Anthropic key, a settings file's
ANTHROPIC_BASE_URL, Bedrock or Vertex switched on in the shell), and its requests take the policy README's config
writes for Claude Code's own names (`applies_to: ["claude-*"]`).

Needs the CLI installed by `bash tests/cli/install.sh`; `DRAGOMAN_CLAUDE_BIN` points at another executable.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.audit_helpers import all_records, wait_for
from tests.cli_scenario import CLI_TIMEOUT, claude_executable, cli_env, stream_events
from tests.gateway import UPSTREAM_ENV, Gateway, gateway_config, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream

pytestmark = pytest.mark.cli

ROOT = Path(__file__).resolve().parent.parent
ANSWER = "Hi from the scripted upstream."
GATEWAY_KEY = "sk-team-1"
NOWHERE = "http://127.0.0.1:1"  # where the user's setup would send Claude Code: nothing listens there
# README's configuration reference, its routing part: the policy applies to Claude Code's own names only.
README_POLICY = {
    "name": "cost_aware_routing",
    "applies_to": ["claude-*"],
    "rule": ("if input_tokens < 8000 and tool_call_count <= 2:\n  route gpt-5-mini-via-gateway\n"
             "elif input_tokens < 60000:\n  route gpt-5-via-gateway\nelse:\n  route claude-opus-fallback\n"),
}
ROUTES = {"gpt-5-via-gateway": "gpt-5", "gpt-5-mini-via-gateway": "gpt-5-mini", "claude-opus-fallback": "opus-stand-in"}


def _config(endpoint: str) -> str:
    extra = [yaml.safe_load(gateway_config(endpoint, route_name=name, model=model))["routes"][0]
             for name, model in list(ROUTES.items())[1:]]
    data = yaml.safe_load(gateway_config(endpoint, model_routes=[{"match": "claude-*haiku*",
                                                                    "route": "gpt-5-mini-via-gateway"}],
                                         auth_keys=[GATEWAY_KEY], extra_routes=extra))
    data["policies"] = [README_POLICY]
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream(ChatReply(text=ANSWER)) as up:
        yield up


@pytest.fixture(scope="module")
def config_path(upstream: ScriptedChatUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "dragoman.yaml"
    path.write_text(_config(upstream.chat_url))
    return path


@pytest.fixture(scope="module")
def gateway(config_path: Path) -> Iterator[Gateway]:
    with run_gateway(config_path.read_text(), env=UPSTREAM_ENV) as gw:
        yield gw


def _launch(gateway: Gateway, config_path: Path, tmp_path: Path, *, settings: dict[str, Any] | None = None,
            shell: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    (home / "tmp").mkdir(parents=True)
    if settings is not None:
        (home / ".claude").mkdir()
        (home / ".claude" / "settings.json").write_text(json.dumps(settings))
    env = cli_env(home, NOWHERE)
    env.update({"DRAGOMAN_CLAUDE_BIN": str(claude_executable()), "DRAGOMAN_URL": gateway.base_url,
                "DRAGOMAN_CONFIG": str(config_path), "DRAGOMAN_GATEWAY_KEY": GATEWAY_KEY, "PYTHONPATH": str(ROOT),
                **(shell or {})})
    return subprocess.run(
        [sys.executable, "-m", "dragoman", "claude", "-p", "say hi", "--output-format", "stream-json", "--verbose"],
        cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CLI_TIMEOUT,
        check=False)


def _answered(proc: subprocess.CompletedProcess[str], gateway: Gateway) -> None:
    context = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-1500:]}\nstderr:\n{proc.stderr[-1500:]}\n" \
              f"gateway:\n{gateway.stderr_text()[-1500:]}"
    assert proc.returncode == 0, context
    results = [e for e in stream_events(proc.stdout) if e.get("type") == "result"]
    assert len(results) == 1 and results[0].get("result") == ANSWER, context


BEDROCK = {"CLAUDE_CODE_USE_BEDROCK": "1", "CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1", "ANTHROPIC_BEDROCK_BASE_URL": NOWHERE,
           "AWS_REGION": "us-east-1"}
VERTEX = {"CLAUDE_CODE_USE_VERTEX": "1", "CLAUDE_CODE_SKIP_VERTEX_AUTH": "1", "ANTHROPIC_VERTEX_BASE_URL": NOWHERE,
          "CLOUD_ML_REGION": "us-east5", "ANTHROPIC_VERTEX_PROJECT_ID": "p"}


@pytest.mark.parametrize(("settings", "shell"), [
    pytest.param({"apiKeyHelper": "echo sk-ant-api03-the-users-anthropic-key"}, None, id="apiKeyHelper"),
    pytest.param({"env": {"ANTHROPIC_BASE_URL": NOWHERE, "ANTHROPIC_AUTH_TOKEN": "sk-ant-oauth"}}, None,
                 id="settings-env-elsewhere"),
    pytest.param({"env": BEDROCK}, None, id="settings-env-bedrock"),
    pytest.param(None, BEDROCK, id="shell-bedrock"),
    pytest.param(None, VERTEX, id="shell-vertex"),
])
def test_the_gateway_gets_the_call_with_only_the_gateway_key(
    gateway: Gateway, config_path: Path, upstream: ScriptedChatUpstream, tmp_path: Path,
    settings: dict[str, Any] | None, shell: dict[str, str] | None,
) -> None:
    upstream.reset(ChatReply(text=ANSWER))
    _answered(_launch(gateway, config_path, tmp_path, settings=settings, shell=shell), gateway)


def test_claude_codes_requests_take_the_policy_readme_writes_for_its_names(
    gateway: Gateway, config_path: Path, upstream: ScriptedChatUpstream, tmp_path: Path,
) -> None:
    upstream.reset(ChatReply(text=ANSWER))
    before = len(all_records(gateway.audit_store))
    _answered(_launch(gateway, config_path, tmp_path), gateway)
    # Answered calls only: a refused call of an earlier test (no model read) may be written after `before`.
    records = wait_for(lambda: [r for r in all_records(gateway.audit_store)[before:] if r["requested_model"]] or None,
                       10, "the session's audit records")
    for record in records:
        assert record["requested_model"].startswith("claude-"), record
        assert record["policy"] == "cost_aware_routing", record
