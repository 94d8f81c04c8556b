"""Weighted candidates, prompt-prefix variants and `loop: shift:` in the config: a weighted route is usable
wherever a route name is (default_route, model_routes, policies) but not as a fallback or a candidate; every
mistake is refused at its file and line."""

from __future__ import annotations

import textwrap

import pytest

from dragoman.config.load import parse_config
from dragoman.config.model import CandidateEntry, Config, WeightedRoute
from dragoman.errors import ConfigError
from dragoman.routing.router import Router

ROUTES = """\
routes:
  - name: a
    upstream: {provider: openai_compatible, model: ma, endpoint: "http://127.0.0.1:1/v1"}
    fallbacks: [b]
  - name: b
    upstream: {provider: openai_compatible, model: mb, endpoint: "http://127.0.0.1:2/v1"}
    prompt_prefixes:
      - {name: plain}
      - {name: cc-aware, text: "You are running inside Claude Code."}
  - name: claude
    upstream: {provider: anthropic, model: claude-sonnet-4-5}
"""
WEIGHTED = """\
  - name: w
    candidates:
      - {route: a, weight: 80}
      - {route: b, weight: 20}
"""


def load(text: str) -> Config:
    return parse_config(textwrap.dedent(text), "config.yaml", {})


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load(text)
    return str(err.value)


def test_a_weighted_route_is_named_like_any_route() -> None:
    config = load(ROUTES + WEIGHTED + "default_route: w\nmodel_routes:\n  - {match: 'claude-*', route: w}\n"
                  "policies:\n  - name: p\n    applies_to: [big]\n    rule: |\n      route w\n")
    assert config.weighted == (WeightedRoute(name="w", candidates=(CandidateEntry("a", 80), CandidateEntry("b", 20))),)
    assert [r.name for r in config.routes] == ["a", "b", "claude"]
    router = Router(config)
    assert router.resolve("claude-opus") is config.weighted[0]
    assert router.resolve("anything") is config.weighted[0]
    assert router.decide("big", lambda: None).route is config.weighted[0]  # type: ignore[arg-type,return-value]


def test_prompt_prefixes_are_kept_on_the_route() -> None:
    b = load(ROUTES).routes[1]
    assert [(v.name, v.text) for v in b.prompt_prefixes] == [("plain", ""), ("cc-aware", "You are running inside Claude Code.")]


@pytest.mark.parametrize("candidates, line, problem", [
    ("[{route: nope, weight: 1}, {route: a, weight: 1}]", 13, 'no route named "nope"'),
    ("[{route: a, weight: 0}, {route: b, weight: 1}]", 13, "> 0"),
    ("[{route: a, weight: -5}, {route: b, weight: 1}]", 13, "> 0"),
    ("[{route: a, weight: 1.0e+308}, {route: b, weight: 1.0e+308}]", 13, "<= 1000000"),  # the sum would be inf
    ("[{route: a, weight: 1}, {route: b, weight: 1000001}]", 13, "<= 1000000"),
    ("[{route: a, weight: 1}]", 13, "at least two candidates"),
    ("[{route: a, weight: 1}, {route: a, weight: 1}]", 13, "listed twice"),
    ("[{route: w, weight: 1}, {route: a, weight: 1}]", 13, "weighted routes do not nest"),
])
def test_bad_candidates_are_refused_at_their_line(candidates: str, line: int, problem: str) -> None:
    message = refused(ROUTES + f"  - name: w\n    candidates: {candidates}\n")
    assert message.startswith(f"config.yaml:{line}:") and problem in message, message


def test_nested_weighted_routes_are_refused() -> None:
    text = ROUTES + WEIGHTED + "  - name: v\n    candidates:\n      - {route: w, weight: 1}\n      - {route: a, weight: 1}\n"
    message = refused(text)
    assert message.startswith("config.yaml:18:") and "do not nest" in message


def test_a_fallback_to_a_weighted_route_is_refused() -> None:
    text = ROUTES.replace("fallbacks: [b]", "fallbacks: [w]") + WEIGHTED
    message = refused(text)
    assert message.startswith("config.yaml:4:") and "a fallback must be a route with an upstream" in message


@pytest.mark.parametrize("extra, problem", [
    ("    upstream: {provider: openai, model: x}\n", "either upstream: or candidates:"),
    ("    fallbacks: [a]\n", "fallbacks: belongs to the candidates' own routes"),
    ("    prompt_prefixes: [{name: x}]\n", "prompt_prefixes: belongs to the candidates' own routes"),
])
def test_upstream_settings_on_a_weighted_route_are_refused(extra: str, problem: str) -> None:
    assert problem in refused(ROUTES + WEIGHTED + extra)


def test_a_route_with_neither_upstream_nor_candidates_is_refused() -> None:
    message = refused("routes:\n  - name: x\n")
    assert message.startswith("config.yaml:2:") and "needs an upstream" in message


@pytest.mark.parametrize("prefixes, problem", [
    ("[{name: x}, {name: x}]", 'duplicate variant name "x"'),
    ("[{name: ''}]", "1 to 64 printable"),
])
def test_bad_variants_are_refused(prefixes: str, problem: str) -> None:
    assert problem in refused(ROUTES.replace("fallbacks: [b]", f"prompt_prefixes: {prefixes}"))


def test_prompt_prefixes_on_a_passthrough_route_are_refused() -> None:
    text = ROUTES + "    prompt_prefixes: [{name: x, text: hi}]\n"
    message = refused(text)
    assert message.startswith("config.yaml:12:") and "messages route passes" in message


@pytest.mark.parametrize("shift, line, problem", [
    ("{demote_below: 0.9, restore_above: 0.8}", 11, "restore_above (0.8) must be above demote_below (0.9)"),
    ("{window: 10, min_calls: 20}", 11, "min_calls (20) cannot exceed window (10)"),
    ("{window: 10, min_calls: 5, variant_min_calls: 20}", 11, "variant_min_calls (20) cannot exceed window (10)"),
    ("{probe_share: 0.9}", 11, "<= 0.5"),
    ("{window: 1}", 11, ">= 2"),
    ("{nonsense: 1}", 11, "nonsense"),
])
def test_bad_shift_settings_are_refused(shift: str, line: int, problem: str) -> None:
    message = refused(ROUTES.replace("  - name: claude\n    upstream: {provider: anthropic, model: claude-sonnet-4-5}\n", "")
                      + f"loop:\n  shift: {shift}\n")
    assert message.startswith(f"config.yaml:{line}:") and problem in message, message


@pytest.mark.parametrize("key, value, problem", [
    ("restore_above", "1.0", "restore_above must be below 1"),  # a probe score is never above 1: never restored
    ("demote_below", "0", "demote_below must be above 0"),  # a score is never below 0: never demoted
    ("probe_share", "0", "probe_share must be above 0"),  # no probes: a demotion would be for good
])
def test_shift_thresholds_a_score_could_never_cross_are_refused_at_their_line(key: str, value: str,
                                                                              problem: str) -> None:
    text = ROUTES + f"loop:\n  shift:\n    window: 10\n    min_calls: 5\n    {key}: {value}\n"
    message = refused(text)
    assert message.startswith("config.yaml:16:") and problem in message, message


def test_no_probes_are_accepted_when_shifting_is_off() -> None:
    assert load(ROUTES + "loop:\n  shift: {enabled: false, probe_share: 0}\n").loop.shift.probe_share == 0


def test_defaults_a_smaller_window_cannot_hold_follow_it() -> None:
    shift = load(ROUTES + "loop:\n  shift: {window: 10}\n").loop.shift
    assert (shift.min_calls, shift.variant_min_calls) == (10, 10)


def test_shift_defaults_are_conservative() -> None:
    s = load(ROUTES).loop.shift
    assert (s.enabled, s.window, s.min_calls, s.demote_below, s.restore_above, s.probe_share) == (
        True, 100, 20, 0.6, 0.85, 0.05)


def test_the_readme_examples_load() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## The correctness loop"):readme.index("## How a request is translated")]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)  # the section has other loop: blocks too
    weighted, variants = [b for b in blocks if b.startswith("  - ")]
    loop = next(b for b in blocks if b.startswith("loop:\n  shift:"))
    config = parse_config("routes:\n" + weighted + variants.replace("gpt-5-main", "gpt-5-alt") + loop,
                          "README.md", {"OPENAI_PROD": "sk-x"})
    assert [w.name for w in config.weighted] == ["gpt-5-via-gateway"]
    assert [v.name for v in config.routes[-1].prompt_prefixes] == ["plain", "cc-aware"]
    assert config.loop.shift.window == 100
