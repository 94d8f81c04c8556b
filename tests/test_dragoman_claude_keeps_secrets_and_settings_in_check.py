"""`dragoman claude`: what it keeps from Claude Code (the gateway's secrets, other providers' switches), the
`--settings` override it starts Claude Code with, the settings files it refuses, the model names it leaves to
Claude Code when a policy is written for those, and the check that a gateway answers (and takes the key) before
Claude Code starts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from dragoman.claude_launch import (
    NO_AUTH_KEY,
    LaunchError,
    claude_env,
    flag_settings,
    model_names,
    settings_conflicts,
    settings_files,
)
from dragoman.config.load import parse_config, zero_config
from dragoman.config.model import Config
from tests.gateway import Gateway, run_gateway

ROOT = Path(__file__).resolve().parent.parent
GATEWAY_KEY = "sk-team-ana-secret"

POLICY_CONFIG = """\
default_route: gpt-5-via-gateway
model_routes:
  - {match: "claude-*haiku*", route: gpt-5-mini-via-gateway}
policies:
  - name: cost_aware_routing
    applies_to: APPLIES
    rule: |
      if input_tokens < 8000:
        route gpt-5-mini-via-gateway
      else:
        route gpt-5-via-gateway
routes:
  - name: gpt-5-via-gateway
    upstream: {provider: openai_compatible, model: qwen3, endpoint: "http://127.0.0.1:8000/v1"}
  - name: gpt-5-mini-via-gateway
    upstream: {provider: openai_compatible, model: qwen3-small, endpoint: "http://127.0.0.1:8000/v1"}
"""


def _policy_config(applies_to: str) -> Config:
    return parse_config(textwrap.dedent(POLICY_CONFIG.replace("APPLIES", applies_to)), "config.yaml", {})


def _env(config: Config, caller: dict[str, str], **kwargs: object) -> dict[str, str]:
    return claude_env(config, caller, url="http://gw:9000", key=GATEWAY_KEY, repo="shop", user="ana",
                      **kwargs)  # type: ignore[arg-type]


# --- the child's environment ------------------------------------------------------------------------------------

def test_gateway_and_upstream_secrets_never_reach_claude_code() -> None:
    caller = {"PATH": "/bin", "HOME": "/home/ana", "DRAGOMAN_GATEWAY_KEY": GATEWAY_KEY,
              "DRAGOMAN_API_KEYS": "k1,k2", "DRAGOMAN_ADMIN_KEYS": "sk-admin", "DRAGOMAN_SIGNING_KEY": "s" * 64,
              "DRAGOMAN_AUDIT_STORE": "postgresql://u:pw@db/x", "OPENAI_API_KEY": "sk-openai",
              "AZURE_OPENAI_API_KEY": "az", "OPENAI_PROD": "sk-prod", "DRAGOMAN_URL": "http://gw:9000"}
    env = _env(zero_config({}), caller, secret_vars=["OPENAI_PROD", "PATH"])
    for name in ("DRAGOMAN_GATEWAY_KEY", "DRAGOMAN_API_KEYS", "DRAGOMAN_ADMIN_KEYS", "DRAGOMAN_SIGNING_KEY",
                 "DRAGOMAN_AUDIT_STORE", "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "OPENAI_PROD"):
        assert name not in env, name
    assert env["PATH"] == "/bin" and env["HOME"] == "/home/ana"  # needed, even when a config reads PATH
    assert env["DRAGOMAN_URL"] == "http://gw:9000"  # not a secret
    assert env["ANTHROPIC_API_KEY"] == GATEWAY_KEY  # the one credential Claude Code gets


def test_other_providers_and_anthropic_logins_are_turned_off() -> None:
    caller = {"CLAUDE_CODE_USE_BEDROCK": "1", "ANTHROPIC_BEDROCK_BASE_URL": "http://b", "CLAUDE_CODE_USE_VERTEX": "1",
              "ANTHROPIC_VERTEX_BASE_URL": "http://v", "CLAUDE_CODE_USE_FOUNDRY": "1",
              "ANTHROPIC_FOUNDRY_BASE_URL": "http://f", "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat",
              "ANTHROPIC_AUTH_TOKEN": "sk-ant-oauth"}
    assert not set(caller) & set(_env(zero_config({}), caller))


def test_the_flag_settings_outrank_the_users_files_without_the_key() -> None:
    env = _env(zero_config({}), {})
    settings = flag_settings(env)
    assert settings["apiKeyHelper"] == ""  # `null` makes the pinned CLI ignore the whole flag
    flag_env = settings["env"]
    assert flag_env["ANTHROPIC_BASE_URL"] == "http://gw:9000"
    assert flag_env["ANTHROPIC_MODEL"] == "gpt-5-via-gateway"
    assert flag_env["ANTHROPIC_CUSTOM_HEADERS"] == env["ANTHROPIC_CUSTOM_HEADERS"]
    for name in ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY",
                 "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        assert flag_env[name] == "", name
    assert GATEWAY_KEY not in json.dumps(settings)  # the command line is visible to every user


def test_the_users_own_header_lines_stay_off_the_command_line() -> None:
    env = _env(zero_config({}), {"ANTHROPIC_CUSTOM_HEADERS": "x-proxy-auth: secret"})
    assert "ANTHROPIC_CUSTOM_HEADERS" not in flag_settings(env, own_headers=True)["env"]


# --- settings files ----------------------------------------------------------------------------------------------

def test_a_settings_file_setting_the_api_key_is_refused_by_name(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "work"
    (home / ".claude").mkdir(parents=True)
    (cwd / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text('{"apiKeyHelper": "echo x", "env": {"DISABLE_TELEMETRY": "1"}}')
    (cwd / ".claude" / "settings.json").write_text("not json")  # Claude Code reports that itself
    files = list(settings_files({"HOME": str(home)}, cwd))
    settings_conflicts(files)  # an apiKeyHelper is overridden by the flag, not refused
    local = cwd / ".claude" / "settings.local.json"
    local.write_text('{"env": {"ANTHROPIC_API_KEY": "sk-ant-real"}}')
    with pytest.raises(LaunchError, match=f"{local} sets env.ANTHROPIC_API_KEY"):
        settings_conflicts(files)


def test_claude_config_dir_moves_the_user_settings(tmp_path: Path) -> None:
    files = list(settings_files({"HOME": "/home/ana", "CLAUDE_CONFIG_DIR": str(tmp_path)}, Path("/w")))
    assert files[0] == tmp_path / "settings.json"


# --- model names and policies ---------------------------------------------------------------------------------

def test_a_policy_for_claude_names_leaves_claude_codes_own_names() -> None:
    assert model_names(_policy_config('["claude-*"]')) == (None, None)
    env = _env(_policy_config('["claude-*"]'), {})
    assert not {"ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL"} & set(env)


@pytest.mark.parametrize(("applies_to", "names"), [
    ('["claude-*", "gpt-5*"]', ("gpt-5-via-gateway", "gpt-5-mini-via-gateway")),  # applies to both: rename
    ('["*haiku*"]', ("gpt-5-via-gateway", None)),  # only the small model's requests keep their name
    ('["some-other-model"]', ("gpt-5-via-gateway", "gpt-5-mini-via-gateway")),
])
def test_route_names_are_set_only_where_no_policy_would_be_skipped(applies_to: str,
                                                                    names: tuple[str | None, str | None]) -> None:
    assert model_names(_policy_config(applies_to)) == names


def test_a_policy_for_every_request_keeps_the_route_names() -> None:
    text = textwrap.dedent(POLICY_CONFIG).replace("    applies_to: APPLIES\n", "")
    config = parse_config(text, "config.yaml", {})
    assert model_names(config) == ("gpt-5-via-gateway", "gpt-5-mini-via-gateway")


# --- the launch, against a gateway or none --------------------------------------------------------------------

@pytest.fixture(scope="module")
def keyed_gateway() -> Iterator[Gateway]:
    with run_gateway(None, env={"DRAGOMAN_API_KEYS": GATEWAY_KEY}) as gw:
        yield gw


def _launch(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "claude"  # prints the arguments, then the environment, Claude Code would get
    fake.write_text('#!/bin/sh\nprintf "arg:%s\\n" "$@"\nexec env\n')
    fake.chmod(0o755)
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1",
            "DRAGOMAN_CLAUDE_BIN": str(fake)}
    return subprocess.run([sys.executable, "-m", "dragoman", "claude", *args], env={**base, **env}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_gateway_running_is_a_clear_error_not_minutes_of_retries(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    result = _launch(tmp_path, {"DRAGOMAN_URL": url}, "-p", "hi")
    assert result.returncode == 2, result
    assert f"no gateway answers at {url}" in result.stderr and "dragoman serve" in result.stderr
    assert "--gateway / DRAGOMAN_URL" in result.stderr


def test_a_keyed_gateway_without_a_gateway_key_is_a_clear_error(tmp_path: Path, keyed_gateway: Gateway) -> None:
    deploy = str(ROOT / "deploy" / "dragoman.yaml")  # its keys are the gateway's DRAGOMAN_API_KEYS, unseen here
    result = _launch(tmp_path, {}, "--config", deploy, "--gateway", keyed_gateway.base_url, "--", "-p", "hi")
    assert result.returncode == 2, result
    assert "wants a key: set DRAGOMAN_GATEWAY_KEY" in result.stderr
    wrong = _launch(tmp_path, {"DRAGOMAN_GATEWAY_KEY": "sk-wrong", "DRAGOMAN_URL": keyed_gateway.base_url}, "-p")
    assert wrong.returncode == 2 and "refused your key (401)" in wrong.stderr, wrong


def test_the_started_process_gets_the_flag_and_no_gateway_secret(tmp_path: Path, keyed_gateway: Gateway) -> None:
    secrets = {"DRAGOMAN_GATEWAY_KEY": GATEWAY_KEY, "DRAGOMAN_ADMIN_KEYS": "sk-admin-secret",
               "DRAGOMAN_SIGNING_KEY": "x" * 64, "OPENAI_API_KEY": "sk-openai-secret"}
    result = _launch(tmp_path, {**secrets, "DRAGOMAN_URL": keyed_gateway.base_url})
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    args = [line[len("arg:"):] for line in lines if line.startswith("arg:")]
    assert args[0] == "--settings" and json.loads(args[1])["apiKeyHelper"] == ""
    child = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("arg:"))
    assert child["ANTHROPIC_API_KEY"] == GATEWAY_KEY
    for name in secrets:
        assert name not in child, name
    assert "sk-admin-secret" not in result.stdout and "sk-openai-secret" not in result.stdout


def test_a_settings_flag_of_the_users_is_refused(tmp_path: Path) -> None:
    result = _launch(tmp_path, {}, "--settings", "{}", "-p", "hi")
    assert result.returncode == 2 and "--settings of its own" in result.stderr, result

