"""`governance: keys:` settings: each one acts (the cache is built with it; `enabled: false` opens no key store and
refuses virtual keys like any unknown key) or is refused at load with the file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dragoman.config.governance import KeySettings
from dragoman.config.load import parse_config
from dragoman.errors import ConfigError
from dragoman.govern.key_cache import open_key_cache
from tests.upstreams import ScriptedChatUpstream
from tests.virtual_keys_helpers import ADMIN_KEY, CONFIG_KEY, answering, api, call, create, gateway_config
from tests.gateway import run_gateway
from tests.audit_helpers import ENV

ROUTES = "routes:\n  - {name: gpt5, upstream: {provider: openai, model: gpt-5, api_key_ref: openai}}\n"


@pytest.mark.parametrize(("block", "line", "names"), [
    ("governance:\n  keys:\n    refresh_interval: 5\n", 3, "refresh_interval"),
    ("governance:\n  keys:\n    refresh_interval: 0\n", 3, "refresh_interval"),
    ("governance:\n  keys:\n    unknown_cache_size: -1\n", 3, "unknown_cache_size"),
    ("governance:\n  keys:\n    enabled: maybe\n", 3, "enabled"),
    ("governance:\n  keys:\n    refresh: 1\n", 3, "refresh"),
])
def test_bad_key_settings_are_refused_at_their_line(block: str, line: int, names: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(block + ROUTES, "gateway.yaml", {"OPENAI": "sk-x"})
    assert f"gateway.yaml:{line}:" in str(refused.value) and names in str(refused.value)


def test_the_readme_keys_block_loads_as_written() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL) if "governance:\n  keys:" in b]
    assert len(blocks) == 1, "README.md lost its governance.keys example"
    settings = parse_config(blocks[0] + ROUTES, "README.md", {"OPENAI": "sk-x"}).governance.keys
    assert settings == KeySettings()  # the example shows the defaults


def test_the_settings_reach_the_cache(tmp_path: Path) -> None:
    config = parse_config("governance:\n  keys:\n    refresh_interval: 0.2\n    unknown_cache_size: 7\n" + ROUTES,
                          "gateway.yaml", {"OPENAI": "sk-x"})
    cache = open_key_cache(config.governance.keys, None, str(tmp_path / "k.db"))
    assert cache is not None and cache.refresh_interval == 0.2 and cache._unknown_size == 7
    assert open_key_cache(KeySettings(enabled=False), None, str(tmp_path / "k.db")) is None


def test_keys_off_refuses_virtual_keys(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'gateway.db'}"
    made = create(store, "--developer", "ana")
    with ScriptedChatUpstream(answering()) as upstream:
        text = gateway_config(upstream, store, auth=[CONFIG_KEY]) + "governance:\n  keys:\n    enabled: false\n"
        with run_gateway(text, env=ENV) as gateway:
            assert call(gateway, CONFIG_KEY).status == 200
            refused = call(gateway, made["key"])
            assert refused.status == 401 and refused.json()["error"]["message"] == "invalid API key"
            off = api(gateway, "GET", "/api/keys", ADMIN_KEY)
            assert off.status == 404 and "virtual keys are off" in off.json()["error"]["message"]

