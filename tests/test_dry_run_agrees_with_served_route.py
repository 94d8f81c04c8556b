"""`dragoman route FILE REQ.json` and `serve` agree: for the seed config (as written, and without the policy's
applies_to) and every captured Claude Code body, plus a short and a long variant, the route the dry run names
is the one whose scripted upstream the served gateway sent the request to."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, seed_config
from tests.shared_fixtures import CLAUDE_CODE_FIXTURES
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.upstreams.anthropic_messages import MessageReply, ScriptedAnthropicUpstream
from tests.upstreams.openai_responses import ResponsesReply, ScriptedResponsesUpstream

FIXTURES = sorted(CLAUDE_CODE_FIXTURES.glob("claude_code_*.json"))
FIRST_TURN = CLAUDE_CODE_FIXTURES / "claude_code_2.1.328_first_turn.json"
HEADERS = {"x-api-key": "sk-client", "anthropic-version": "2023-06-01",
           "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}
ROUTE_LINE = re.compile(r"^route: (\S+) ", re.MULTILINE)


def _variants(tmp: Path) -> list[Path]:
    """A short first turn (the cheap route) and one padded past 60k tokens (the long-context route)."""
    body = json.loads(FIRST_TURN.read_text())
    short = {**body, "tools": [], "system": "You are Claude Code.",
             "messages": [{"role": "user", "content": "rename foo to bar in main.py"}]}
    long = {**body, "messages": [{"role": "user", "content": "word " * 80_000}]}
    out = []
    for name, variant in (("short_turn.json", short), ("long_context.json", long)):
        path = tmp / name
        path.write_text(json.dumps(variant))
        out.append(path)
    return out


class Seed:
    def __init__(self, gateway: Gateway, config: Path, upstreams: dict[str, ScriptedChatUpstream]) -> None:
        self.gateway, self.config, self.upstreams = gateway, config, upstreams

    def served_route(self, body: bytes) -> str:
        for upstream in self.upstreams.values():
            upstream.requests.clear()
        response = self.gateway.request("POST", "/v1/messages?beta=true", body, HEADERS)
        assert response.status == 200, response.text
        got = [name for name, upstream in self.upstreams.items() if upstream.bodies]
        assert len(got) == 1, got
        return got[0]

    def dry_run_route(self, request: Path) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "dragoman", "route", str(self.config), str(request)],
            capture_output=True, text=True, timeout=30, env={**KEYS_ENV, "PATH": "/usr/bin:/bin"},
        )
        assert out.returncode == 0, out.stderr
        found = ROUTE_LINE.search(out.stdout)
        assert found, out.stdout
        return found[1]


@pytest.fixture(scope="module", params=[True, False], ids=["seed", "seed-without-applies_to"])
def seed(request, tmp_path_factory) -> Iterator[Seed]:  # noqa: ANN001 - fixtures
    with ScriptedResponsesUpstream(ResponsesReply(text="mini")) as mini, \
            ScriptedChatUpstream(ChatReply(text="gpt-5")) as chat, \
            ScriptedAnthropicUpstream(MessageReply(text="claude")) as claude:
        text = seed_config(mini.responses_url, chat.chat_url, claude.base_url, keep_applies_to=request.param)
        config = tmp_path_factory.mktemp("seed") / "seed.yaml"
        config.write_text(text)
        upstreams = {"gpt-5-mini-via-gateway": mini, "gpt-5-via-gateway": chat, "claude-opus-fallback": claude}
        with run_gateway(text, env=KEYS_ENV) as gateway:
            yield Seed(gateway, config, upstreams)


def test_fixtures_are_there() -> None:
    assert len(FIXTURES) >= 6, f"Claude Code fixtures missing under {CLAUDE_CODE_FIXTURES}"


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_dry_run_route_is_the_served_route(seed: Seed, fixture: Path) -> None:
    assert seed.dry_run_route(fixture) == seed.served_route(fixture.read_bytes())


def test_dry_run_agrees_on_short_and_long_turns(seed: Seed, tmp_path: Path) -> None:
    short, long = _variants(tmp_path)
    served = [seed.served_route(path.read_bytes()) for path in (short, long)]
    assert served == ["gpt-5-mini-via-gateway", "claude-opus-fallback"]  # the three routes all take part
    assert [seed.dry_run_route(path) for path in (short, long)] == served
