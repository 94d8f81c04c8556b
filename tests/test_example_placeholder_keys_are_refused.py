"""The deploy examples write every key as a placeholder (`replace-me-…` in deploy/.env.example, `REPLACE_ME_…` in
deploy/k8s/secret.example.yaml). Copied unedited, DRAGOMAN_API_KEYS and DRAGOMAN_ADMIN_KEYS would let anyone who
read the example call the gateway or its admin API: the config load refuses them, naming the variable, never the
value (the signing key's placeholder is refused by dragoman/signing_key.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dragoman.config.load import load_config, zero_config
from dragoman.errors import ConfigError
from tests.deploy_files import DEPLOY, TEAM_CONFIG, TEAM_ENV


def _example_values() -> dict[str, list[str]]:
    env = dict(re.findall(r"^(DRAGOMAN_(?:API|ADMIN)_KEYS)=(.+)$", (DEPLOY / ".env.example").read_text(), re.M))
    secret = yaml.safe_load((DEPLOY / "k8s" / "secret.example.yaml").read_text())["stringData"]
    return {var: [env[var], secret[var]] for var in ("DRAGOMAN_API_KEYS", "DRAGOMAN_ADMIN_KEYS")}


EXAMPLES = [(var, value) for var, values in _example_values().items() for value in values]


@pytest.mark.parametrize(("var", "value"), EXAMPLES)
def test_a_config_load_refuses_the_examples_placeholder_keys(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(str(TEAM_CONFIG), {**TEAM_ENV, var: value})
    assert var in str(refused.value) and value not in str(refused.value)
    with pytest.raises(ConfigError):
        zero_config({var: value})


def test_one_placeholder_among_real_keys_is_refused() -> None:
    with pytest.raises(ConfigError, match="DRAGOMAN_API_KEYS"):
        load_config(str(TEAM_CONFIG), {**TEAM_ENV, "DRAGOMAN_API_KEYS": "k-real-one,replace-me-team-key-2"})


def test_keys_of_ones_own_load() -> None:
    assert load_config(str(TEAM_CONFIG), TEAM_ENV).keys  # TEAM_ENV's keys are not placeholders


def test_serve_with_the_example_admin_key_exits_saying_which_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGOMAN_")}
    env.update({"XDG_DATA_HOME": str(tmp_path), "OPENAI_API_KEY": "sk-x", "DRAGOMAN_ADMIN_KEYS": "replace-me-admin-key"})
    done = subprocess.run([sys.executable, "-m", "dragoman", "serve", "--host", "127.0.0.1", "--port", "0"],
                          capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode != 0
    assert "DRAGOMAN_ADMIN_KEYS still holds a placeholder" in done.stderr
    assert "replace-me-admin-key" not in done.stderr
