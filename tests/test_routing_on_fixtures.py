"""Routing decisions on what Claude Code really sends: the seed's cost-aware policy over the six captured bodies."""

from __future__ import annotations

import msgspec
import pytest

from dragoman.config.load import load_config
from dragoman.protocols.anthropic import MessagesRequest
from dragoman.policy.features import extract_features
from dragoman.routing.router import Router
from tests.shared_fixtures import CLAUDE_CODE_FIXTURES
from tests.test_readme_config import ROOT

ENV = {"OPENAI_PROD": "sk-test", "ANTHROPIC_PROD": "sk-ant-test"}

# Every captured body is 54-89 KB: ~11k-18k tokens with ~6 or no tool calls in the latest assistant turn, so
# the seed policy sends all of them to the strong model (none is small, none long-context).
EXPECTED = {
    "claude_code_2.1.197_first_turn.json": ("gpt-5-via-gateway", "elif input_tokens < 60000"),
    "claude_code_2.1.197_after_parallel_tools.json": ("gpt-5-via-gateway", "elif input_tokens < 60000"),
    "claude_code_2.1.328_first_turn.json": ("gpt-5-via-gateway", "elif input_tokens < 60000"),
    "claude_code_2.1.328_after_parallel_reads.json": ("gpt-5-via-gateway", "elif input_tokens < 60000"),
    "claude_code_2.1.328_after_parallel_tools.json": ("gpt-5-via-gateway", "elif input_tokens < 60000"),
    "claude_code_2.1.328_after_toolsearch.json": ("gpt-5-via-gateway", "elif input_tokens < 60000"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seed_policy_on_claude_code_fixture(name: str) -> None:
    router = Router(load_config(str(ROOT / "examples" / "seed.yaml"), ENV))
    raw = (CLAUDE_CODE_FIXTURES / name).read_bytes()
    req = msgspec.json.decode(raw, type=MessagesRequest)
    features = extract_features(req, len(raw), {})
    decision = router.decide(req.model, lambda: features)
    assert (decision.route.name, decision.branch) == EXPECTED[name]
    assert decision.policy == "cost_aware_routing"
    assert decision.route.fallbacks == ("claude-opus-fallback",)


def test_a_short_first_turn_goes_to_the_cheap_route() -> None:
    router = Router(load_config(str(ROOT / "examples" / "seed.yaml"), ENV))
    raw = (CLAUDE_CODE_FIXTURES / "claude_code_2.1.328_first_turn.json").read_bytes()
    body = msgspec.json.decode(raw)
    body["tools"], body["system"] = [], "You are Claude Code."
    body["messages"] = [{"role": "user", "content": "rename foo to bar in main.py"}]
    raw = msgspec.json.encode(body)
    req = msgspec.json.decode(raw, type=MessagesRequest)
    decision = router.decide(req.model, lambda: extract_features(req, len(raw), {}))
    assert decision.route.name == "gpt-5-mini-via-gateway"
    assert decision.branch == "if input_tokens < 8000 and tool_call_count <= 2"
