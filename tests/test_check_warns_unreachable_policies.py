"""`dragoman check` warns (never errors) about policies that can never fire, branches that never run, and routes
that a request naming them never reaches because a policy always sends it elsewhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dragoman.config.load import load_config, parse_config
from dragoman.routing.reachability import config_warnings
from tests.test_readme_config import ENV, ROOT, _yaml_blocks

ROUTES = """\
routes:
  - {name: small, upstream: {provider: openai_compatible, model: s, endpoint: "http://127.0.0.1:9/v1"}}
  - {name: medium, upstream: {provider: openai_compatible, model: m, endpoint: "http://127.0.0.1:9/v1"}}
  - {name: large, upstream: {provider: openai_compatible, model: l, endpoint: "http://127.0.0.1:9/v1"}}
policies:
"""
BY_SIZE = "      if input_tokens < 8000:\n        route small\n      else:\n        route medium\n"
MAYBE = "      if input_tokens < 8000:\n        route small\n"


def _policy(name: str, rule: str, applies_to: str | None = None) -> str:
    line = f"    applies_to: {applies_to}\n" if applies_to is not None else ""
    return f"  - name: {name}\n{line}    rule: |\n{rule}"


def _warnings(*policies: str) -> list[str]:
    return config_warnings(parse_config(ROUTES + "".join(policies), "config.yaml", {}))


def test_policy_after_a_catch_all_never_fires() -> None:
    warnings = _warnings(_policy("all", BY_SIZE), _policy("later", MAYBE, "['claude-*']"))
    assert "config.yaml:12: policy later can never fire: policy all (line 6) comes first, applies to every " \
           "request and always routes" in warnings


@pytest.mark.parametrize(("first", "second"), [
    ("['claude-*']", "['claude-*haiku*']"),
    ("['claude-*', 'gpt-*']", "[gpt-5, claude-opus-4]"),
    ("['*']", None),
])
def test_policy_covered_by_an_earlier_one_that_always_routes_never_fires(first: str, second: str | None) -> None:
    warnings = _warnings(_policy("first", BY_SIZE, first), _policy("second", MAYBE, second))
    assert any("policy second can never fire: policy first" in w for w in warnings), warnings


@pytest.mark.parametrize(("first", "rule", "second"), [
    ("['claude-*haiku*']", BY_SIZE, "['claude-*']"),  # the later policy sees more names
    ("['claude-*']", MAYBE, "['claude-*']"),  # the earlier one can fall through
    ("['claude-*']", BY_SIZE, None),  # every request vs claude-* only
    ("['claude?x']", BY_SIZE, "['claude-*']"),
])
def test_policy_that_can_still_fire_is_not_flagged(first: str, rule: str, second: str | None) -> None:
    warnings = _warnings(_policy("first", rule, first), _policy("second", MAYBE, second))
    assert not [w for w in warnings if "second can never fire" in w], warnings


@pytest.mark.parametrize("rule", [
    "      pass\n",
    "      if false:\n        route small\n",
    "      if 1 > 2 and input_tokens < 5:\n        route small\n",
])
def test_policy_without_a_reachable_route_never_fires(rule: str) -> None:
    warnings = _warnings(_policy("dead", rule, "['claude-*']"))
    assert "config.yaml:6: policy dead can never fire: no `route` in it is reachable" in warnings


def test_branches_that_never_run_are_named_by_rule_line() -> None:
    rule = "      if not false:\n        route small\n      elif input_tokens < 5:\n        route large\n"
    warnings = _warnings(_policy("p", rule, "['claude-*']"))
    assert "config.yaml:6: policy p: rule line 3: `elif input_tokens < 5` never runs: an earlier condition is " \
           "always true" in warnings


def test_route_a_policy_always_sends_elsewhere_is_shadowed() -> None:
    warnings = _warnings(_policy("by_size", BY_SIZE))
    shadowed = sorted(w for w in warnings if "is shadowed" in w)
    assert len(shadowed) == 1
    assert shadowed[0].startswith("config.yaml:6: route large is shadowed: a request naming it never reaches it, "
                                  "policy by_size always routes it to small, medium")


def test_shadowed_route_warning_credits_each_policy_only_with_its_own_routes() -> None:
    # MAYBE may pick small; the catch-all after it always picks medium: large is shadowed, but by medium alone.
    warnings = _warnings(_policy("maybe", MAYBE), _policy("to_medium", "      route medium\n"))
    shadowed = [w for w in warnings if "route large is shadowed" in w]
    assert shadowed == ["config.yaml:10: route large is shadowed: a request naming it never reaches it, policy "
                        "to_medium always routes it to medium (before it, policy maybe may route it to small); "
                        "leave the name out of the policy's applies_to, or route to it from the policy"]


def test_route_a_policy_can_pick_or_that_it_may_pass_is_not_shadowed() -> None:
    assert not _warnings(_policy("maybe", MAYBE))  # small: picked; medium, large: fall through to their names
    assert not _warnings(_policy("by_size", BY_SIZE, "[small, medium, 'claude-*']"))  # large not covered


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_have_nothing_to_warn_about(path: Path) -> None:
    assert config_warnings(load_config(str(path), ENV)) == []


def test_readme_reference_has_nothing_to_warn_about() -> None:
    for block in [b for b in _yaml_blocks((ROOT / "README.md").read_text()) if "routes:" in b]:
        assert config_warnings(parse_config(block, "README.md", ENV)) == []


def test_check_prints_the_warnings_and_exits_0_unless_strict(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(ROUTES + _policy("by_size", BY_SIZE) + _policy("later", MAYBE, "['claude-*']"))
    command = [sys.executable, "-m", "dragoman", "check", str(config)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "policy by_size for every request" in out.stdout
    assert f"warning: {config}:12: policy later can never fire" in out.stderr
    assert f"warning: {config}:6: route large is shadowed" in out.stderr
    strict = subprocess.run(command + ["--strict"], capture_output=True, text=True, timeout=30)
    assert strict.returncode == 1
    assert "error: 2 warning(s)" in strict.stderr


GOVERNED = "routes:\n  - {name: r, upstream: {provider: openai_compatible, model: m, endpoint: \"http://127.0.0.1:9/v1\"}}\n"


def _governance_warnings(governance: str, env: dict[str, str], auth: str = "") -> list[str]:
    text = GOVERNED + auth + "governance:\n" + governance
    return [w for w in config_warnings(parse_config(text, "team.yaml", env)) if "governance" in w]


def test_budgets_and_limits_no_configured_key_reaches_are_a_warning() -> None:
    governance = ("  limits:\n    rules:\n      - {scope: 'developer:*', rpm: 120}\n"
                  "  budgets:\n    - {scope: 'team:*', limit: 500}\n")
    warnings = _governance_warnings(governance, {"DRAGOMAN_API_KEYS": "sk-a,sk-b"})
    assert len(warnings) == 1
    assert warnings[0].startswith("team.yaml:3: governance: no budget or limit applies to the 2 configured key(s)")
    assert "developer:*, team:* match none of them" in warnings[0]
    assert "only virtual keys made with --developer or --team are governed" in warnings[0]
    off = _governance_warnings(governance + "  keys: {enabled: false}\n", {"DRAGOMAN_API_KEYS": "sk-a"})
    assert "virtual keys are off, so nothing is governed" in off[0]


@pytest.mark.parametrize(("governance", "env", "auth"), [
    ("  limits:\n    rules:\n      - {scope: 'key:*', rpm: 120}\n", {"DRAGOMAN_API_KEYS": "sk-a"}, ""),
    ("  budgets:\n    - {scope: global, limit: 500}\n", {"DRAGOMAN_API_KEYS": "sk-a"}, ""),
    ("  budgets:\n    - {scope: 'developer:*', limit: 50}\n", {},
     "auth:\n  keys:\n    - {id: ana, key: sk-ana, developer: ana}\n"),
    ("  limits:\n    rules:\n      - {scope: 'key:ci', rpm: 5}\n", {}, "auth:\n  keys:\n    - {id: ci, key: sk-ci}\n"),
    ("  budgets:\n    - {scope: 'developer:*', limit: 50}\n", {}, ""),  # virtual keys only: nothing to compare
])
def test_budgets_and_limits_that_reach_a_configured_key_or_with_no_keys_are_not_flagged(
    governance: str, env: dict[str, str], auth: str
) -> None:
    assert _governance_warnings(governance, env, auth) == []


def test_the_deploy_config_governs_its_dragoman_api_keys_without_a_warning() -> None:
    from tests.deploy_files import team_config

    assert config_warnings(team_config()) == []
