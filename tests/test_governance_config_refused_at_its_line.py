"""The governance: block acts as written or is refused at its line: scopes, periods, limits, the backend; and the
README's governance examples load as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dragoman.config.load import parse_config
from dragoman.errors import ConfigError

ROUTES = "routes:\n  - name: r\n    upstream: {provider: openai, model: gpt-5, api_key_ref: k}\n"
ENV = {"K": "sk-up"}


def _load(governance: str):
    return parse_config(governance + ROUTES, "team.yaml", ENV)


def test_the_readme_governance_examples_load():
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL) if b.startswith("governance:")]
    blocks = [b for b in blocks if "budgets:" in b or "limits:" in b]  # "Keys and roles" has its own test
    assert len(blocks) == 2
    budgets, shared = (_load(block).governance for block in blocks)
    assert [b.scope for b in budgets.budgets] == ["team:platform", "developer:*", "global"]
    assert budgets.limits.rules[0].concurrent_streams == 4
    assert (shared.limits.backend, shared.limits.on_unreachable, shared.limits.timeout) == ("redis", "open", 0.05)


@pytest.mark.parametrize(("governance", "where", "problem"), [
    ("governance:\n  budgets:\n    - {scope: platform, limit: 5}\n", "team.yaml:3: governance.budgets[0].scope",
     '"platform" is not a scope'),
    ("governance:\n  budgets:\n    - {scope: team:a, limit: 5, period: year}\n",
     "team.yaml:3: governance.budgets[0].period", '"year" is not one of: day, week, month'),
    ("governance:\n  budgets:\n    - {scope: team:a, limit: 0}\n", "team.yaml:3", "limit"),
    ("governance:\n  limits:\n    rules:\n      - {scope: global, rpm: 5}\n",
     "team.yaml:4: governance.limits.rules[0].scope", '"global" is not a scope'),
    ("governance:\n  limits:\n    rules:\n      - {scope: team:a, rpm: 0}\n", "team.yaml:4", "rpm"),
    ("governance:\n  limits:\n    rules:\n      - {scope: team:a, rpm: 5}\n      - {scope: team:a, rpm: 6}\n",
     "team.yaml:5: governance.limits.rules[1].scope", "scope team:a already has rules"),
    ("governance:\n  budgets:\n    - {scope: global, limit: 100}\n    - {scope: global, limit: 50, period: month}\n",
     "team.yaml:4: governance.budgets[1].scope",
     "scope global already has a month budget (entry 0, line 3); write one cap per scope and period"),
    ("governance:\n  budgets:\n    - {scope: 'key:*', limit: 5, period: day}\n"
     "    - {scope: 'key:*', limit: 9, period: day}\n",
     "team.yaml:4: governance.budgets[1].scope", "scope key:* already has a day budget (entry 0, line 3)"),
    ("governance:\n  limits:\n    backend: memcached\n", "team.yaml:3: governance.limits.backend",
     '"memcached" is not one of: memory, redis'),
    ("governance:\n  limits:\n    backend: redis\n", "team.yaml:", "backend redis needs redis_url"),
    ("governance:\n  limits:\n    on_unreachable: maybe\n", "team.yaml:3: governance.limits.on_unreachable",
     '"maybe" is not one of: open, closed'),
    ("governance:\n  limits:\n    window: 0\n", "team.yaml:3", "window"),
    ("governance:\n  limits:\n    backend: redis\n    redis_url: redis://127.0.0.1:6379/0\n    timeout: 30\n",
     "team.yaml:5: governance.limits.timeout", "30 s per Redis round trip: at most 10"),
    ("governance:\n  limits:\n    rpm: 5\n", "team.yaml:3", "rpm"),
])
def test_a_governance_mistake_is_refused_at_its_line(governance, where, problem):
    with pytest.raises(ConfigError) as refused:
        _load(governance)
    message = str(refused.value)
    assert message.startswith(where) and problem in message, message


def test_budgets_on_one_scope_over_different_periods_load():
    governance = _load("governance:\n  budgets:\n    - {scope: team:a, limit: 5, period: day}\n"
                       "    - {scope: team:a, limit: 50, period: month}\n"
                       "    - {scope: 'team:*', limit: 5, period: day}\n"
                       "    - {scope: 'key:k1', limit: 1, period: day}\n").governance
    assert [(b.scope, b.period) for b in governance.budgets] == [
        ("team:a", "day"), ("team:a", "month"), ("team:*", "day"), ("key:k1", "day")]
