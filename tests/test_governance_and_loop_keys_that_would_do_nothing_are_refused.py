"""A config key either acts or is refused at its line: a limit rule that sets no limit, a redis_url or a Redis
timeout the memory backend never reads, key-cache settings with virtual keys off, and judge settings with no judge
route would all be accepted and do nothing."""

from __future__ import annotations

import pytest

from dragoman.config.load import parse_config
from dragoman.errors import ConfigError

ROUTES = "routes:\n  - name: r\n    upstream: {provider: openai, model: gpt-5, api_key_ref: k}\n"


@pytest.mark.parametrize(("block", "where", "problem"), [
    ("governance:\n  limits:\n    rules:\n      - {scope: developer:ana}\n",
     "team.yaml:4: governance.limits.rules[0]", "sets no limit"),
    ("governance:\n  limits:\n    redis_url: redis://127.0.0.1:6379/0\n",
     "team.yaml:3: governance.limits.redis_url", "backend: redis"),
    ("governance:\n  limits:\n    backend: memory\n    timeout: 30\n",
     "team.yaml:4: governance.limits.timeout", "backend: redis"),
    ("governance:\n  keys:\n    enabled: false\n    refresh_interval: 0.2\n",
     "team.yaml:4: governance.keys.refresh_interval", "enabled: true"),
    ("governance:\n  keys:\n    enabled: false\n    unknown_cache_size: 10\n",
     "team.yaml:4: governance.keys.unknown_cache_size", "enabled: true"),
    ("loop:\n  judge:\n    sample: 0.5\n", "team.yaml:3: loop.judge", "judge route"),
])
def test_a_key_that_would_do_nothing_is_refused_at_its_line(block: str, where: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(block + ROUTES, "team.yaml", {"K": "sk-up"})
    assert where in str(err.value) and problem in str(err.value)


def test_the_same_keys_load_where_they_act() -> None:
    config = parse_config("governance:\n  keys: {refresh_interval: 0.2, unknown_cache_size: 10}\n"
                          "  limits:\n    backend: redis\n    redis_url: redis://127.0.0.1:6379/0\n    timeout: 0.2\n"
                          "    rules:\n      - {scope: developer:ana, rpm: 5}\n"
                          "loop:\n  judge: {route: r, sample: 0.5}\n" + ROUTES, "team.yaml", {"K": "sk-up"})
    assert config.governance.limits.rules[0].rpm == 5 and config.loop.judge.sample == 0.5
    assert config.governance.limits.timeout == 0.2 and config.governance.keys.unknown_cache_size == 10
