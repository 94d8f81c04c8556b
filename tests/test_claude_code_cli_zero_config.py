"""End to end with the real Claude Code CLI: `dragoman serve` with no config serves `claude --model
gpt-5-via-gateway` (README's "Point Claude Code at it") and Claude Code's own names, as the models zero-config maps
them to. Also pins what README says of the `[1m]` suffix: the CLI strips it, so the gateway sees the plain alias.

Needs the CLI installed by `bash tests/cli/install.sh`; without it the test fails, never skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_scenario import claude_executable, make_project, run_cli, stream_events
from tests.gateway import Gateway, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream

ANSWER = "Hello from the gateway."


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream(ChatReply(text=ANSWER)) as up:
        yield up


@pytest.fixture(scope="module")
def gateway(upstream: ScriptedChatUpstream) -> Iterator[Gateway]:
    env = {"OPENAI_BASE_URL": upstream.base_url, "OPENAI_API_KEY": "sk-zero-config-cli",
           "DRAGOMAN_DEFAULT_MODEL": "", "DRAGOMAN_SMALL_MODEL": ""}
    with run_gateway(None, env=env) as gw:
        yield gw


@pytest.mark.parametrize(("model", "upstream_model"), [
    ("gpt-5-via-gateway", "gpt-5"),
    ("gpt-5-via-gateway[1m]", "gpt-5"),  # Claude Code assumes a 1M window and sends the name without the suffix
    ("haiku", "gpt-5-mini"),  # Claude Code resolves its alias to a claude-haiku-… name
    ("sonnet", "gpt-5"),
])
def test_claude_code_runs_on_zero_config(
    gateway: Gateway, upstream: ScriptedChatUpstream, tmp_path: Path, model: str, upstream_model: str
) -> None:
    upstream.reset(ChatReply(text=ANSWER))
    project, home = make_project(tmp_path)
    code, out, err, _ = run_cli(claude_executable(), project, home, gateway.base_url, "Say hello.", model=model)
    context = f"exit {code}\nstderr:\n{err[-2000:]}\ngateway:\n{gateway.stderr_text()[-2000:]}"
    assert code == 0, context
    results = [e for e in stream_events(out) if e.get("type") == "result"]
    assert len(results) == 1 and results[0].get("result") == ANSWER, context
    assert upstream.requests, context
    assert {r.body["model"] for r in upstream.requests} == {upstream_model}, context
