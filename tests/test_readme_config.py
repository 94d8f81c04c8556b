"""The README's configuration reference and the example files load as written: documentation that cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dragoman.config.load import load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
ENV = {"MY_OPENAI_KEY": "sk-test-openai", "ANTHROPIC_PROD": "sk-ant-test", "ANA_KEY": "sk-ana", "OPENAI_PROD": "sk-x"}


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)


def test_readme_configuration_reference_loads() -> None:
    blocks = [b for b in _yaml_blocks((ROOT / "README.md").read_text()) if "routes:" in b]
    assert blocks, "README.md lost its configuration reference"
    for block in blocks:
        config = parse_config(block, "README.md", ENV)
        names = [route.name for route in config.routes]
        assert {"gpt-5-via-gateway", "gpt-5-mini-via-gateway", "claude-opus-fallback"} <= set(names)
        assert [p.policy.name for p in config.policies] == ["cost_aware_routing"]
        assert config.observe.admin.keys == ("sk-admin-1",)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_config_loads_as_written(path: Path) -> None:
    written = yaml.safe_load(path.read_text())
    config = load_config(str(path), ENV)
    assert config.default_route == written.get("default_route")
    assert [(r.match, r.route) for r in config.model_routes] == [
        (r["match"], r["route"]) for r in written.get("model_routes", [])]
    assert [p.policy.name for p in config.policies] == [p["name"] for p in written.get("policies", [])]
    assert [r.name for r in config.routes] == [r["name"] for r in written["routes"]]
    for route, entry in zip(config.routes, written["routes"]):
        upstream = entry["upstream"]
        assert (route.provider, route.model) == (upstream["provider"], upstream["model"]), route.name
        assert route.fallbacks == tuple(entry.get("fallbacks", ())), route.name
        if "endpoint" in upstream:  # a base URL gets its API path appended; a full URL stays as it is
            assert route.endpoint.startswith(upstream["endpoint"].rstrip("/")), (route.name, route.endpoint)
        ref = upstream.get("api_key_ref")
        assert route.api_key == (None if ref is None else ENV[ref.upper()]), route.name
        for option, value in entry.get("translation", {}).items():
            loaded = getattr(route.translation, option)
            assert loaded == (tuple(value) if isinstance(value, list) else value), (route.name, option)
