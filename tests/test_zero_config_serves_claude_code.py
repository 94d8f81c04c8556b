"""`OPENAI_API_KEY=… dragoman serve` with no --config serves Claude Code as README says: the README's aliases and
Claude Code's own claude-* names reach OpenAI as real OpenAI models, and an OpenAI model name goes verbatim."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from dragoman.config.load import zero_config
from dragoman.routing.router import Router
from tests.gateway import Gateway, run_gateway
from tests.shared_fixtures import CLAUDE_CODE_FIXTURES
from tests.upstreams import ChatReply, ScriptedChatUpstream

OPENAI_KEY = "sk-zero-config-test"
# Claude Code's first request, as the 2.1.328 CLI sent it: only its model name changes below.
FIRST_TURN = json.loads((CLAUDE_CODE_FIXTURES / "claude_code_2.1.328_first_turn.json").read_text())
MAPPED = [
    ("gpt-5-via-gateway", "gpt-5"),
    ("gpt-5-mini-via-gateway", "gpt-5-mini"),
    ("claude-haiku-4-5-20251001", "gpt-5-mini"),  # Claude Code's small, fast model: titles, background work
    ("claude-3-5-haiku-20241022", "gpt-5-mini"),
    ("claude-sonnet-4-5-20250929", "gpt-5"),
    ("claude-opus-4-8", "gpt-5"),
    ("claude-opus-5-5", "gpt-5"),
    ("gpt-4.1", "gpt-4.1"),  # a user naming an OpenAI model gets it
    ("o3", "o3"),
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream(ChatReply(text="ok")) as up:
        yield up


def _zero_config_gateway(upstream: ScriptedChatUpstream, **env: str) -> Any:
    return run_gateway(None, env={"OPENAI_BASE_URL": upstream.base_url, "OPENAI_API_KEY": OPENAI_KEY,
                                  "DRAGOMAN_DEFAULT_MODEL": "", "DRAGOMAN_SMALL_MODEL": "", **env})


@pytest.fixture(scope="module")
def gateway(upstream: ScriptedChatUpstream) -> Iterator[Gateway]:
    with _zero_config_gateway(upstream) as gw:
        yield gw


def _upstream_model(gateway: Gateway, upstream: ScriptedChatUpstream, requested: str) -> str:
    upstream.reset(ChatReply(text="ok"))
    response = gateway.request("POST", "/v1/messages", {**FIRST_TURN, "model": requested, "stream": False},
                               headers={"anthropic-version": "2023-06-01"})
    assert response.status == 200, response.text
    assert response.json()["model"] == requested  # the client sees the name it asked for
    (request,) = upstream.requests
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    return request.body["model"]


@pytest.mark.parametrize(("requested", "sent"), MAPPED)
def test_zero_config_maps_claude_code_names_and_passes_openai_names(
    gateway: Gateway, upstream: ScriptedChatUpstream, requested: str, sent: str
) -> None:
    assert _upstream_model(gateway, upstream, requested) == sent


def test_default_and_small_models_come_from_the_environment(upstream: ScriptedChatUpstream) -> None:
    with _zero_config_gateway(upstream, DRAGOMAN_DEFAULT_MODEL="gpt-4.1", DRAGOMAN_SMALL_MODEL="gpt-4.1-nano") as gw:
        assert _upstream_model(gw, upstream, "claude-sonnet-4-5-20250929") == "gpt-4.1"
        assert _upstream_model(gw, upstream, "gpt-5-via-gateway") == "gpt-4.1"
        assert _upstream_model(gw, upstream, "claude-haiku-4-5-20251001") == "gpt-4.1-nano"
        assert _upstream_model(gw, upstream, "o3") == "o3"


def test_zero_config_lists_its_aliases_as_models(gateway: Gateway) -> None:
    response = gateway.request("GET", "/v1/models")
    assert response.status == 200
    ids = [model["id"] for model in response.json()["data"]]
    assert {"gpt-5-via-gateway", "gpt-5-mini-via-gateway"} <= set(ids)


def test_blank_model_overrides_keep_the_defaults() -> None:
    router = Router(zero_config({"DRAGOMAN_DEFAULT_MODEL": " ", "DRAGOMAN_SMALL_MODEL": ""}))
    assert router.resolve("claude-sonnet-4-5").upstream_model("claude-sonnet-4-5") == "gpt-5"
    assert router.resolve("claude-haiku-4-5").upstream_model("claude-haiku-4-5") == "gpt-5-mini"
