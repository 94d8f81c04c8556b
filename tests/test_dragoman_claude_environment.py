"""`dragoman claude`: the environment Claude Code is started with (gateway URL, key, the models the config routes,
identity headers, the user's own headers kept), the `client: {team: …}` config block, and how the command line
is split between the gateway's options and Claude Code's arguments."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dragoman.claude_launch import (
    NO_AUTH_KEY,
    LaunchError,
    claude_env,
    gateway_url,
    inbound_auth,
    repo_name,
    split_args,
)
from dragoman.config.load import parse_config, zero_config
from dragoman.config.model import Config
from dragoman.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """\
default_route: main-route
model_routes:
  - {match: "claude-opus-*", route: main-route}
  - {match: "*haiku*", route: small-route}
client:
  team: platform
routes:
  - name: main-route
    upstream: {provider: openai_compatible, model: qwen3, endpoint: "http://127.0.0.1:8000/v1"}
  - name: small-route
    upstream: {provider: openai_compatible, model: qwen3-small, endpoint: "http://127.0.0.1:8000/v1"}
"""


def _parse(text: str) -> Config:
    return parse_config(textwrap.dedent(text), "config.yaml", {})


def _env(config: Config, env: dict[str, str] | None = None, key: str | None = None) -> dict[str, str]:
    return claude_env(config, env or {}, url="http://gw:9000", key=key, repo="shop", user="alice")


def _headers(env: dict[str, str]) -> list[str]:
    return env["ANTHROPIC_CUSTOM_HEADERS"].split("\n")


def test_config_models_identity_and_team() -> None:
    env = _env(_parse(CONFIG), key="sk-team-1")
    assert env["ANTHROPIC_BASE_URL"] == "http://gw:9000"
    assert env["ANTHROPIC_API_KEY"] == "sk-team-1"
    assert env["ANTHROPIC_MODEL"] == "main-route"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == env["ANTHROPIC_SMALL_FAST_MODEL"] == "small-route"
    assert _headers(env) == ["x-dragoman-repo: shop", "x-dragoman-developer: alice", "x-dragoman-team: platform"]


def test_zero_config_models_and_placeholder_key() -> None:
    env = _env(zero_config({}))
    assert env["ANTHROPIC_MODEL"] == "gpt-5-via-gateway"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == env["ANTHROPIC_SMALL_FAST_MODEL"] == "gpt-5-mini-via-gateway"
    assert env["ANTHROPIC_API_KEY"] == NO_AUTH_KEY
    assert _headers(env) == ["x-dragoman-repo: shop", "x-dragoman-developer: alice"]  # no team without a config


def test_small_model_is_the_main_one_when_nothing_maps_haiku() -> None:
    config = _parse(CONFIG.replace('  - {match: "*haiku*", route: small-route}\n', ""))
    assert _env(config)["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "main-route"


def test_the_callers_environment_is_kept_but_its_anthropic_credentials_replaced() -> None:
    caller = {"PATH": "/bin", "ANTHROPIC_API_KEY": "sk-ant-real", "ANTHROPIC_AUTH_TOKEN": "sk-ant-oauth",
              "ANTHROPIC_MODEL": "claude-opus-4-1", "ANTHROPIC_BASE_URL": "https://api.anthropic.com"}
    env = _env(_parse(CONFIG), caller)
    assert env["PATH"] == "/bin"
    assert env["ANTHROPIC_API_KEY"] == NO_AUTH_KEY  # the real key never reaches the gateway
    assert "ANTHROPIC_AUTH_TOKEN" not in env  # it would be sent as Authorization: Bearer
    assert env["ANTHROPIC_MODEL"] == "main-route"
    assert env["ANTHROPIC_BASE_URL"] == "http://gw:9000"


def test_users_own_headers_kept_after_ours_which_win_on_a_name() -> None:
    caller = {"ANTHROPIC_CUSTOM_HEADERS": "X-Dragoman-Team: web\nx-trace: 1\n\nx-dragoman-repo: other"}
    assert _headers(_env(_parse(CONFIG), caller)) == [
        "x-dragoman-repo: shop", "x-dragoman-developer: alice", "x-dragoman-team: platform", "x-trace: 1"]


def test_users_team_header_kept_when_the_config_names_no_team() -> None:
    caller = {"ANTHROPIC_CUSTOM_HEADERS": "x-dragoman-team: web"}
    assert _headers(_env(zero_config({}), caller))[-1] == "x-dragoman-team: web"


def test_a_header_value_stays_on_one_line() -> None:
    env = claude_env(zero_config({}), {}, url="http://gw", key=None, repo="odd\nx-dragoman-team: forged", user="a")
    assert _headers(env) == ["x-dragoman-repo: odd x-dragoman-team: forged", "x-dragoman-developer: a"]


def test_a_config_with_inbound_keys_needs_the_gateway_key() -> None:
    config = _parse(CONFIG + "auth:\n  keys: [sk-alice]\n")
    with pytest.raises(LaunchError, match="DRAGOMAN_GATEWAY_KEY"):
        _env(config)
    assert _env(config, key="sk-alice")["ANTHROPIC_API_KEY"] == "sk-alice"


def test_inbound_keys_count_even_when_their_secrets_are_not_on_this_machine() -> None:
    text = CONFIG + "auth:\n  keys:\n    - {id: alice, key_ref: alice}\nsecrets:\n  alice: {env: ALICE}\n"
    missing: list[str] = []
    config = parse_config(text, "config.yaml", {}, missing_secrets=missing)
    assert not config.keys and inbound_auth(config, missing)
    assert not inbound_auth(_parse(CONFIG), [])


@pytest.mark.parametrize(("option", "env", "url"), [
    (None, {}, "http://127.0.0.1:8080"),
    (None, {"DRAGOMAN_PORT": "9090"}, "http://127.0.0.1:9090"),
    (None, {"DRAGOMAN_URL": "https://gw.example.com/v1/"}, "https://gw.example.com"),  # Claude Code adds /v1
    ("http://other:1/v1", {"DRAGOMAN_URL": "https://gw.example.com"}, "http://other:1"),
])
def test_gateway_url(option: str | None, env: dict[str, str], url: str) -> None:
    assert gateway_url(option, env) == url


def test_gateway_url_needs_a_scheme() -> None:
    with pytest.raises(LaunchError, match="http://"):
        gateway_url("gw.example.com:8080", {})


def test_repo_is_the_git_top_level_else_the_directory(tmp_path: Path) -> None:
    (tmp_path / "shop" / ".git").mkdir(parents=True)
    (tmp_path / "shop" / "src" / "deep").mkdir(parents=True)
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / ".git").write_text("gitdir: /elsewhere\n")  # a linked worktree's .git is a file
    assert repo_name(tmp_path / "shop" / "src" / "deep") == "shop"
    assert repo_name(tmp_path / "linked") == "linked"
    plain = tmp_path / "plain"
    plain.mkdir()
    if not any((p / ".git").exists() for p in tmp_path.parents):
        assert repo_name(plain) == "plain"


@pytest.mark.parametrize(("argv", "own", "passed"), [
    (["-p", "say hi", "--model", "x"], [], ["-p", "say hi", "--model", "x"]),
    (["--config", "c.yaml", "--", "-p", "--", "x"], ["--config", "c.yaml"], ["-p", "--", "x"]),
    (["--gateway=http://g", "--"], ["--gateway=http://g"], []),
    (["--", "--config", "theirs"], [], ["--config", "theirs"]),
    (["-p", "--config"], [], ["-p", "--config"]),  # not a prefix: Claude Code's own
    ([], [], []),
])
def test_arguments_pass_through_untouched_after_the_gateway_prefix(argv: list[str], own: list[str],
                                                                     passed: list[str]) -> None:
    assert split_args(argv) == (own, passed)


def test_a_gateway_prefix_must_end_with_a_double_dash() -> None:
    with pytest.raises(LaunchError, match="--"):
        split_args(["--config", "c.yaml", "-p", "hi"])


@pytest.mark.parametrize(("block", "message"), [
    ("client:\n  tema: x\n", 'unknown field "tema" in client'),
    ("client:\n  team: ''\n", "client.team: team must be a non-empty name"),
    ('client:\n  team: "a\\nb"\n', "client.team: team must be a non-empty name"),
    ("client:\n  team: [a]\n", "client.team"),
])
def test_client_block_refused_at_its_line(block: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _parse(CONFIG.replace("client:\n  team: platform\n", "") + block)
    found = re.match(r"^config\.yaml:(\d+): (.*)$", str(info.value), re.DOTALL)
    assert found and int(found[1]) in (11, 12), info.value
    assert message in found[2], found[2]


def test_claude_not_found_is_a_clear_error(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "DRAGOMAN_URL": "http://127.0.0.1:1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "dragoman", "claude", "-p", "hi"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "not on PATH" in result.stderr and "npm install -g @anthropic-ai/claude-code" in result.stderr
    assert "DRAGOMAN_CLAUDE_BIN" in result.stderr
