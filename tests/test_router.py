"""Routing: exact route name, then model_routes patterns in order, then default_route, else a not_found error."""

from __future__ import annotations

import pytest

from dragoman.config.load import parse_config, zero_config
from dragoman.config.model import Config
from dragoman.errors import NotFound
from dragoman.policy.features import RequestFeatures
from dragoman.routing.router import Router

CONFIG = """\
model_routes:
  - {match: "claude-*haiku*", route: mini}
  - {match: "claude-*sonnet*", route: big}
  - {match: "claude-*", route: local}
  - {match: "gpt-?", route: mini}
routes:
  - name: big
    upstream: {provider: openai, model: gpt-5}
  - name: mini
    upstream: {provider: openai, model: gpt-5-mini}
  - name: local
    upstream: {provider: openai_compatible, model: qwen3, endpoint: "http://127.0.0.1:8000/v1"}
"""


def _config(extra: str = "") -> Config:
    return parse_config(CONFIG + extra, "config.yaml", {})


@pytest.mark.parametrize(
    ("model", "route"),
    [
        pytest.param("big", "big", id="exact-name"),
        pytest.param("local", "local", id="exact-name-beats-patterns"),
        pytest.param("claude-sonnet-4-5-20250929", "big", id="date-suffixed-sonnet"),
        pytest.param("claude-3-7-sonnet-latest", "big", id="sonnet-mid-name"),
        pytest.param("claude-haiku-4-5-20251001", "mini", id="haiku"),
        pytest.param("claude-opus-4-1-20250805", "local", id="falls-to-later-pattern"),
        pytest.param("gpt-4", "mini", id="single-char-wildcard"),
        pytest.param("Claude-sonnet-4-5", None, id="patterns-are-case-sensitive"),
        pytest.param("gpt-4o", None, id="pattern-must-match-whole-name"),
    ],
)
def test_resolve_order(model: str, route: str | None) -> None:
    router = Router(_config())
    if route is None:
        with pytest.raises(NotFound):
            router.resolve(model)
    else:
        assert router.resolve(model).name == route


def test_first_matching_pattern_wins() -> None:
    # claude-3-5-haiku also matches claude-*; the earlier haiku rule decides.
    assert Router(_config()).resolve("claude-3-5-haiku-20241022").name == "mini"


def test_default_route_catches_the_rest() -> None:
    router = Router(_config("default_route: local\n"))
    assert router.resolve("llama-3").name == "local"
    assert router.resolve("claude-sonnet-4-5").name == "big"


def test_no_match_is_not_found_naming_the_routes() -> None:
    with pytest.raises(NotFound) as info:
        Router(_config()).resolve("mistral-large")
    assert info.value.message == 'model "mistral-large" matches no route; routes: big, mini, local'
    assert info.value.status == 404
    assert info.value.error_type == "not_found_error"


def test_resolutions_are_cached_and_bounded() -> None:
    router = Router(_config("default_route: big\n"), cache_size=3)
    first = router.resolve("claude-sonnet-4-5")
    assert router.resolve("claude-sonnet-4-5") is first
    for i in range(10):
        router.resolve(f"model-{i}")
    assert len(router._cache) <= 3
    assert router.resolve("claude-sonnet-4-5") is first


def test_names_longer_than_a_model_name_may_be_are_resolved_but_never_cached() -> None:
    # A client cycling megabyte-long names must not pin 1024 of them in either cache (review 9, finding 3).
    policy = "policies:\n  - name: tiering\n    rule: |\n      if input_tokens > 100k:\n        route big\n"
    router = Router(_config("default_route: local\n" + policy))
    longest = "m" * 256  # the longest model a request may name (protocols/anthropic.py MAX_MODEL_CHARS)
    for i in range(20):
        assert router.decide(f"{i}" + "m" * 100_000, RequestFeatures).route.name == "local"
        assert router.resolve(f"{i}" + "m" * 100_000).name == "local"
    assert router.decide(longest, RequestFeatures).route.name == "local"
    assert list(router._applicable) == [longest] and list(router._cache) == [longest]


def test_not_found_is_not_cached() -> None:
    router = Router(_config())
    for _ in range(2):
        with pytest.raises(NotFound):
            router.resolve("nothing")


def test_routes_lists_in_config_order() -> None:
    assert [route.name for route in Router(_config()).routes()] == ["big", "mini", "local"]


def test_zero_config_maps_claude_names_and_passes_others_verbatim() -> None:
    router = Router(zero_config({}))
    expected = {"claude-sonnet-4-5-20250929": "gpt-5", "claude-opus-4-8": "gpt-5", "gpt-5-via-gateway": "gpt-5",
                "claude-haiku-4-5-20251001": "gpt-5-mini", "gpt-5-mini-via-gateway": "gpt-5-mini",
                "gpt-5": "gpt-5", "gpt-4.1": "gpt-4.1", "anything": "anything"}
    for model, sent in expected.items():
        assert router.resolve(model).upstream_model(model) == sent, model


def test_route_model_replaces_the_requested_name() -> None:
    route = Router(_config()).resolve("claude-sonnet-4-5-20250929")
    assert route.upstream_model("claude-sonnet-4-5-20250929") == "gpt-5"
