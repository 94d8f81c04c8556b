"""Every number in the config is finite: YAML's .inf, .nan and overflowing literals are refused at their line,
whichever setting they are written for (an infinite window or price made every governed request a 500, or a
budget that is never reached). The float settings are found from the config's schema, so a new one is covered."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from msgspec import inspect as mi

from dragoman.config.load import parse_config
from dragoman.config.model import ConfigFile
from dragoman.config.yaml_source import format_path
from dragoman.errors import ConfigError

ROUTE = {"name": "r", "upstream": {"provider": "openai", "model": "gpt-5", "api_key_ref": "k"}}
ENV = {"K": "sk-up"}


def _float_paths(info: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """The path of every float setting under `info` (a list's settings at its first item)."""
    if isinstance(info, mi.Metadata):
        return _float_paths(info.type, path)
    if isinstance(info, mi.FloatType):
        return [path]
    if isinstance(info, mi.UnionType):
        return [p for t in info.types for p in _float_paths(t, path)]
    if isinstance(info, (mi.VarTupleType, mi.ListType, mi.SetType, mi.FrozenSetType)):
        return _float_paths(info.item_type, path + (0,))
    if isinstance(info, mi.StructType):
        return [p for f in info.fields for p in _float_paths(f.type, path + (f.encode_name,))]
    return []


FLOAT_PATHS = sorted(set(_float_paths(mi.type_info(ConfigFile))), key=format_path)


def _with(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A config with one route, and `value` written at `path` (the route's settings go into that route)."""
    data: dict[str, Any] = {"routes": [copy.deepcopy(ROUTE)]}
    node: Any = data
    for part, nxt in zip(path, path[1:]):
        if isinstance(part, int):
            while len(node) <= part:
                node.append({})
            node = node[part]
        else:
            node = node.setdefault(part, [] if isinstance(nxt, int) else {})
    node[path[-1]] = value
    return data


def _refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as refused:
        parse_config(yaml.safe_dump(data, sort_keys=False), "team.yaml", ENV)
    return str(refused.value)


def test_the_schema_walk_finds_the_float_settings():
    found = {format_path(p) for p in FLOAT_PATHS}
    assert {"governance.limits.window", "governance.limits.timeout", "governance.budgets[0].limit",
            "routes[0].pricing.input", "routes[0].breaker.cooldown", "routes[0].upstream.timeout.idle",
            "server.shutdown_timeout", "loop.judge.max_usd_per_day"} <= found


@pytest.mark.parametrize("path", FLOAT_PATHS, ids=format_path)
def test_an_infinite_float_setting_is_refused_at_its_line(path):
    message = _refusal(_with(path, float("inf")))
    assert message.startswith("team.yaml:") and f": {format_path(path)}: .inf is not a finite number" in message, message


@pytest.mark.parametrize(("written", "shown"), [(".nan", ".nan"), ("-.inf", "-.inf"), ("1.0e+400", "1.0e+400"),
                                                (".Inf", ".Inf")])
def test_nan_negative_infinity_and_overflow_are_refused_as_written(written, shown):
    text = f"governance:\n  limits:\n    window: {written}\nroutes:\n  - {ROUTE}\n".replace("'", "")
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "team.yaml", ENV)
    assert str(refused.value) == (f"team.yaml:3: governance.limits.window: {shown} is not a finite number: "
                                  "write a finite value (no .inf or .nan)")


def test_a_route_price_of_inf_is_refused_rather_than_pricing_as_nan():
    text = ("routes:\n  - name: r\n    upstream: {provider: openai, model: gpt-5, api_key_ref: k}\n"
            "    pricing: {input: .inf, cached_input: 0, output: 1}\n")
    with pytest.raises(ConfigError, match=r"^team\.yaml:4: routes\[0\]\.pricing\.input: \.inf is not a finite"):
        parse_config(text, "team.yaml", ENV)


def test_an_absurd_finite_route_price_is_refused_at_its_line():
    """1.0e+308 is finite, yet a record's cost at that price is infinite: every sum and budget it reaches too."""
    text = ("routes:\n  - name: r\n    upstream: {provider: openai, model: gpt-5, api_key_ref: k}\n"
            "    pricing: {input: 1, cached_input: 0, output: 1.0e+308}\n")
    with pytest.raises(ConfigError, match=r"^team\.yaml:4: routes\[0\]\.pricing\.output: Expected float <= 1000000"):
        parse_config(text, "team.yaml", ENV)


def test_finite_floats_and_recursive_anchors_load_as_before():
    config = parse_config(yaml.safe_dump(_with(("governance", "limits", "window"), 0.5)), "team.yaml", ENV)
    assert config.governance.limits.window == 0.5
    with pytest.raises(ConfigError, match="Expected object, got array"):  # no endless walk through the alias
        parse_config("routes: &a [*a]\n", "team.yaml", ENV)
