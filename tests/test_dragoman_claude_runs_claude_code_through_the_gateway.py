"""End to end with the real Claude Code CLI: `dragoman claude -p …` inside a git repository runs Claude Code
against the gateway (whatever ANTHROPIC_BASE_URL the shell has), asks for the model the config routes by
default, and the gateway's audit record names the repository, the developer and the config's `client.team`.

Needs the CLI installed by `bash tests/cli/install.sh`; `DRAGOMAN_CLAUDE_BIN` points at another executable.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.audit_helpers import all_records, wait_for
from tests.cli_scenario import CLI_TIMEOUT, claude_executable, cli_env, stream_events
from tests.gateway import UPSTREAM_ENV, Gateway, gateway_config, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream

pytestmark = pytest.mark.cli

ROOT = Path(__file__).resolve().parent.parent
ANSWER = "Hi from the scripted upstream."
MAIN_ROUTE, MAIN_MODEL = "team-main", "main-upstream-model"
SMALL_ROUTE, SMALL_MODEL = "team-small", "small-upstream-model"
TEAM = "platform-tools"
DEVELOPER = "dana"


def _config(endpoint: str) -> str:
    small = yaml.safe_load(gateway_config(endpoint, route_name=SMALL_ROUTE, model=SMALL_MODEL))["routes"]
    data = yaml.safe_load(gateway_config(endpoint, route_name=MAIN_ROUTE, default_route=MAIN_ROUTE, model=MAIN_MODEL,
                                         model_routes=[{"match": "*haiku*", "route": SMALL_ROUTE}],
                                         extra_routes=small))
    data["client"] = {"team": TEAM}
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream(ChatReply(text=ANSWER)) as up:
        yield up


@pytest.fixture(scope="module")
def config_text(upstream: ScriptedChatUpstream) -> str:
    return _config(upstream.chat_url)


@pytest.fixture(scope="module")
def gateway(config_text: str) -> Iterator[Gateway]:
    with run_gateway(config_text, env=UPSTREAM_ENV) as gw:
        yield gw


def test_dragoman_claude_runs_claude_code_through_the_gateway(
    gateway: Gateway, upstream: ScriptedChatUpstream, config_text: str, tmp_path: Path
) -> None:
    exe = claude_executable()
    repo, home = tmp_path / "shop-frontend", tmp_path / "home"
    (repo / "src").mkdir(parents=True)
    (home / "tmp").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=30)
    config_path = tmp_path / "dragoman.yaml"
    config_path.write_text(config_text)
    env = cli_env(home, "http://127.0.0.1:1")  # the shell's own base URL: `dragoman claude` must replace it
    env.update({
        "ANTHROPIC_API_KEY": "sk-ant-the-real-anthropic-key",  # never sent: the config has no inbound keys
        "DRAGOMAN_CLAUDE_BIN": str(exe), "DRAGOMAN_URL": gateway.base_url + "/v1",
        "DRAGOMAN_CONFIG": str(config_path), "PYTHONPATH": str(ROOT), "USER": DEVELOPER, "LOGNAME": DEVELOPER,
    })
    upstream.reset(ChatReply(text=ANSWER))
    proc = subprocess.run(
        [sys.executable, "-m", "dragoman", "claude", "-p", "say hi", "--output-format", "stream-json", "--verbose"],
        cwd=repo / "src", env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CLI_TIMEOUT,
        check=False)
    context = f"exit {proc.returncode}\nstderr:\n{proc.stderr[-2000:]}\ngateway:\n{gateway.stderr_text()[-2000:]}"
    assert proc.returncode == 0, context
    results = [e for e in stream_events(proc.stdout) if e.get("type") == "result"]
    assert len(results) == 1 and results[0].get("result") == ANSWER, context

    models = [body["model"] for body in upstream.bodies]
    assert MAIN_MODEL in models and set(models) <= {MAIN_MODEL, SMALL_MODEL}, (models, context)
    records = wait_for(lambda: [r for r in all_records(gateway.audit_store) if r["route"] == MAIN_ROUTE],
                       10, "the audit record of the main request")
    for record in records:
        assert (record["repo"], record["developer"], record["team"]) == ("shop-frontend", DEVELOPER, TEAM), record
        assert record["requested_model"] == MAIN_ROUTE, record
