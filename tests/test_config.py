"""Config loading: the documented examples load as written, and every mistake is reported at its file and line."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from dragoman.config.endpoints import chat_completions_url
from dragoman.config.load import load_config, parse_config, zero_config
from dragoman.config.model import MAX_BODY_BYTES, Config, Timeouts
from dragoman.errors import ConfigError
from dragoman.translate.options import TranslationOptions

CONTRACT = Path(__file__).resolve().parents[1] / "docs" / "CONTRACT.md"

ISSUE_EXAMPLE = """\
routes:
  - name: gpt-5-via-gateway
    inbound_protocol: anthropic
    upstream:
      provider: openai
      model: gpt-5
      endpoint: https://api.openai.com/v1/chat/completions
      api_key_ref: openai_prod
    translation:
      system_placement: first_message
      tool_use: openai_tool_calls
      streaming: anthropic_events
      drop_headers: [cache_control]
"""

# A minimal valid route, for tests that vary one thing around it.
ROUTE = """\
routes:
  - name: local
    upstream:
      provider: openai_compatible
      model: qwen3
      endpoint: http://127.0.0.1:8000/v1
"""


def _parse(text: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(textwrap.dedent(text), "config.yaml", env or {})


def _error(text: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """The line number and message of the ConfigError that text raises."""
    with pytest.raises(ConfigError) as info:
        _parse(text, env)
    found = re.match(r"^config\.yaml:(\d+): (.*)$", str(info.value), re.DOTALL)
    assert found, f"error not located: {info.value}"
    return int(found[1]), found[2]


def _contract_yaml() -> str:
    found = re.search(r"```yaml\n(.*?)```", CONTRACT.read_text(), re.DOTALL)
    assert found
    return found[1]


# CONTRACT.md's example routes claude-*haiku* to gpt-5-mini-via-gateway but defines no such route; this route
# completes it. Until the doc adds it, the example as written must fail at that reference, not silently load.
MINI_ROUTE = """\
  - name: gpt-5-mini-via-gateway
    upstream: {provider: openai, model: gpt-5-mini, api_key_ref: openai_prod}
"""


def test_contract_example_reports_its_undefined_route() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_contract_yaml(), "config.yaml", {"MY_OPENAI_KEY": "sk-contract"})
    assert str(info.value) == (
        'config.yaml:3: model_routes[0].route: no route named "gpt-5-mini-via-gateway"; routes: gpt-5-via-gateway'
    )


def test_contract_example_loads_with_its_missing_route(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(_contract_yaml() + MINI_ROUTE)
    config = load_config(str(path), {"MY_OPENAI_KEY": "sk-contract", "DRAGOMAN_API_KEYS": "sk-env"})
    route, mini = config.routes
    assert route.name == "gpt-5-via-gateway"
    assert route.provider == "openai"
    assert route.model == "gpt-5"
    assert route.endpoint == "https://api.openai.com/v1/chat/completions"
    assert route.api_key == mini.api_key == "sk-contract"
    assert route.timeouts == Timeouts(connect=10, first_byte=300, idle=300)
    assert route.translation == TranslationOptions(
        system_placement="first_message", drop_headers=("cache_control",), max_output_tokens=128000
    )
    assert config.default_route == "gpt-5-via-gateway"
    assert [(r.match, r.route) for r in config.model_routes] == [
        ("claude-*haiku*", "gpt-5-mini-via-gateway"),
        ("claude-*", "gpt-5-via-gateway"),
    ]
    assert config.auth_keys == frozenset({"sk-team-1", "sk-env"})
    assert config.server.max_body_bytes == 33554432


def test_issue_example_loads_as_written() -> None:
    config = parse_config(ISSUE_EXAMPLE, "config.yaml", {"OPENAI_PROD": "sk-prod"})
    (route,) = config.routes
    assert (route.name, route.provider, route.model) == ("gpt-5-via-gateway", "openai", "gpt-5")
    assert route.api_key == "sk-prod"
    assert route.endpoint == "https://api.openai.com/v1/chat/completions"
    assert route.translation == TranslationOptions(system_placement="first_message", drop_headers=("cache_control",))
    assert route.timeouts == Timeouts()
    assert config.server.max_body_bytes == MAX_BODY_BYTES == 32 * 1024 * 1024
    assert config.auth_keys == frozenset()


def _upstream(line: str) -> str:
    return ROUTE + f"      {line}\n"


def _translation(line: str) -> str:
    return ROUTE + f"    translation:\n      {line}\n"


# id -> (config text, line of the error, part of its message)
ERRORS: dict[str, tuple[str, int, str]] = {
    "wrong-type": (ROUTE.replace("qwen3", "7"), 5, "routes[0].upstream.model: Expected str, got int"),
    "unknown-field": (
        ROUTE.replace("model:", "modle:"), 5, 'unknown field "modle" in routes[0].upstream (did you mean "model"?)'
    ),
    "unknown-top-level-key": (ROUTE + "rutes: []\n", 7, 'unknown field "rutes" at the top level'),
    "missing-field": (
        ROUTE.replace("      model: qwen3\n", ""), 4, 'routes[0].upstream: missing required field "model"'
    ),
    "bad-provider": (
        ROUTE.replace("openai_compatible", "azure"), 4,
        'routes[0].upstream.provider: "azure" is not one of: openai, openai_compatible',
    ),
    "bad-inbound-protocol": (
        ROUTE + "    inbound_protocol: openai\n", 7, 'routes[0].inbound_protocol: "openai" is not one of: anthropic'
    ),
    "bad-system-role": (_translation("system_role: user"), 8, 'routes[0].translation.system_role: "user" is not one'),
    "bad-reasoning-effort": (_translation("reasoning_effort: max"), 8, 'effort: "max" is not one of: auto, off'),
    "bad-server-tools": (_translation("server_tools: keep"), 8, 'server_tools: "keep" is not one of: reject, drop'),
    "bad-tool-use": (_translation("tool_use: xml"), 8, 'tool_use: "xml" is not one of: openai_tool_calls'),
    "bad-streaming": (_translation("streaming: sse"), 8, 'streaming: "sse" is not one of: anthropic_events'),
    "bad-system-placement": (_translation("system_placement: top"), 8, '"top" is not one of: first_message'),
    "unknown-translation-field": (_translation("sytem_role: developer"), 8, 'unknown field "sytem_role" in routes[0].'),
    "endpoint-not-http": (
        ROUTE.replace("http://127.0.0.1:8000/v1", "ftp://example.com"), 6,
        'routes[0].upstream.endpoint: "ftp://example.com" is not an http(s) URL',
    ),
    "compatible-needs-endpoint": (
        ROUTE.replace("      endpoint: http://127.0.0.1:8000/v1\n", ""), 4,
        "routes[0].upstream: endpoint is required for provider openai_compatible",
    ),
    "duplicate-route-name": (
        ROUTE + ROUTE.replace("routes:\n", ""), 7,
        'routes[1].name: duplicate route name "local" (first defined on line 2)',
    ),
    "route-name-longer-than-a-request-may-name": (
        ROUTE.replace("name: local", "name: " + "r" * 257), 2,
        "routes[0].name: route name is 257 characters; a request may name at most 256",
    ),
    "bad-default-route": (ROUTE + "default_route: gpt\n", 7, 'default_route: no route named "gpt"; routes: local'),
    "bad-model-route": (
        ROUTE + "model_routes:\n  - {match: 'claude-*', route: gpt}\n", 8,
        'model_routes[0].route: no route named "gpt"; routes: local',
    ),
    "timeout-zero": (_upstream("timeout: {connect: 0}"), 7, "upstream.timeout.connect: Expected float > 0.0"),
    "timeout-str": (_upstream("timeout: {idle: fast}"), 7, "routes[0].upstream.timeout.idle: Expected float, got str"),
    "max-output-zero": (_upstream("max_output_tokens: 0"), 7, "upstream.max_output_tokens: Expected int >= 1"),
    "body-negative": (ROUTE + "server:\n  max_body_bytes: -1\n", 8, "server.max_body_bytes: Expected int >= 1"),
    "empty-auth-key": (ROUTE + "auth:\n  keys: ['']\n", 8, "auth.keys[0]: an inbound key must not be empty"),
    "no-routes": ("routes: []\n", 1, "routes: at least one route is required"),
    "routes-missing": ("default_route: x\n", 1, 'missing required field "routes"'),
    "empty-file": ("", 1, "the config is empty"),
    "not-a-mapping": ("- a\n- b\n", 1, "the config must be a mapping"),
    "yaml-syntax": (ROUTE + "  - name: [unclosed\n", 8, "invalid YAML: while parsing a flow sequence"),
    "yaml-duplicate-key": (
        ROUTE + "default_route: local\ndefault_route: local\n", 8, 'duplicate key "default_route" (first on line 7)'
    ),
    "secret-env-and-file": (ROUTE + "secrets:\n  k: {env: A, file: /b}\n", 8, "secrets.k: give exactly one of"),
    "secret-unknown-source": (ROUTE + "secrets:\n  k: {vault: x}\n", 8, 'unknown field "vault" in secrets.k'),
}


@pytest.mark.parametrize(("text", "line", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_errors_name_file_line_and_problem(text: str, line: int, message: str) -> None:
    got_line, got_message = _error(text)
    assert message in got_message
    assert got_line == line, got_message


def test_seed_policy_loads_and_compiles() -> None:
    text = (
        "routes:\n"
        + "".join(
            f"  - name: {name}\n    upstream: {{provider: openai_compatible, model: m, endpoint: http://127.0.0.1:9/v1}}\n"
            for name in ("gpt-5-mini-via-gateway", "gpt-5-via-gateway", "claude-opus-fallback")
        )
        + "policies:\n"
        "  - name: cost_aware_routing\n"
        "    rule: |\n"
        "      if input_tokens < 8000 and tool_call_count <= 2:\n"
        "        route gpt-5-mini-via-gateway\n"
        "      elif input_tokens < 60000:\n"
        "        route gpt-5-via-gateway\n"
        "      else:\n"
        "        route claude-opus-fallback\n"
    )
    config = parse_config(text, "config.yaml", {})
    assert [p.policy.name for p in config.policies] == ["cost_aware_routing"]
    assert config.policies[0].policy.routes() == ("gpt-5-mini-via-gateway", "gpt-5-via-gateway", "claude-opus-fallback")


def test_policy_error_names_the_file_line() -> None:
    line, message = _error(ROUTE + "policies:\n  - name: p\n    rule: |\n      if input_tokens < :\n        route r\n")
    assert line == 10
    assert "policy p, rule line 1" in message


def test_yaml_11_booleans_stay_strings() -> None:
    # `off` is a YAML 1.1 boolean; the reasoning_effort value "off" must survive as text.
    config = _parse(ROUTE + "    translation:\n      reasoning_effort: off\n      think_tags: true\n")
    assert config.routes[0].translation.reasoning_effort == "off"
    assert config.routes[0].translation.think_tags is True


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://host:8000/v1", "http://host:8000/v1/chat/completions"),
        ("http://host:8000/v1/", "http://host:8000/v1/chat/completions"),
        ("https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1/chat/completions"),
        ("http://host", "http://host/chat/completions"),
        ("https://h/openai/v1?api-version=1", "https://h/openai/v1/chat/completions?api-version=1"),
    ],
)
def test_endpoint_base_urls_get_chat_completions_appended(endpoint: str, url: str) -> None:
    assert chat_completions_url(endpoint) == url
    assert _parse(ROUTE.replace("http://127.0.0.1:8000/v1", endpoint)).routes[0].endpoint == url


def test_openai_provider_defaults_to_openai_endpoint() -> None:
    config = _parse("routes:\n  - name: a\n    upstream: {provider: openai, model: gpt-5}\n")
    assert config.routes[0].endpoint == "https://api.openai.com/v1/chat/completions"


def test_upstream_max_output_tokens_lands_in_translation_options() -> None:
    config = _parse(ROUTE + "      max_output_tokens: 4096\n    translation: {system_role: developer}\n")
    assert config.routes[0].translation == TranslationOptions(system_role="developer", max_output_tokens=4096)


def test_max_output_tokens_in_both_places_must_agree() -> None:
    line, message = _error(ROUTE + "      max_output_tokens: 4096\n    translation: {max_output_tokens: 8}\n")
    assert line == 8
    assert "conflicts with upstream.max_output_tokens" in message


def test_no_api_key_ref_means_no_key() -> None:
    assert _parse(ROUTE).routes[0].api_key is None


def test_api_key_ref_reads_upper_cased_env_var() -> None:
    assert _parse(ROUTE + "      api_key_ref: local_key\n", {"LOCAL_KEY": " sk-1\n"}).routes[0].api_key == "sk-1"


def test_secret_mapped_to_env_var() -> None:
    text = ROUTE + "      api_key_ref: k\nsecrets:\n  k: {env: SOME_VAR}\n"
    assert _parse(text, {"SOME_VAR": "sk-2", "K": "not-this"}).routes[0].api_key == "sk-2"


def test_secret_mapped_to_file_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "key.txt").write_text("sk-file\n")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(ROUTE + "      api_key_ref: k\nsecrets:\n  k: {file: key.txt}\n")
    assert load_config(str(config_path), {}).routes[0].api_key == "sk-file"


def test_missing_env_secret_names_the_variable_not_a_value() -> None:
    line, message = _error(ROUTE + "      api_key_ref: openai_prod\n", {"OTHER": "sk-secret-value"})
    assert line == 7
    assert "env var OPENAI_PROD is not set" in message
    assert "sk-secret" not in message


def test_missing_mapped_env_secret_names_the_mapped_variable() -> None:
    text = ROUTE + "      api_key_ref: openai_prod\nsecrets:\n  openai_prod: {env: MY_KEY}\n"
    line, message = _error(text, {"OPENAI_PROD": "sk-secret-value"})
    assert line == 7
    assert "env var MY_KEY is not set or empty (secrets.openai_prod)" in message
    assert "sk-secret" not in message


def test_unreadable_secret_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    line, message = _error(ROUTE + f"      api_key_ref: k\nsecrets:\n  k: {{file: {missing}}}\n")
    assert line == 7
    assert f"cannot read secret file {missing}" in message


def test_secrets_stay_out_of_reprs() -> None:
    config = _parse(ROUTE + "      api_key_ref: k\nauth: {keys: [sk-inbound]}\n", {"K": "sk-upstream"})
    assert "sk-upstream" not in repr(config.routes[0]) + str(config.routes[0])
    assert "sk-inbound" not in repr(config) + str(config)


def test_auth_keys_merge_file_and_env() -> None:
    config = _parse(ROUTE + "auth: {keys: [sk-a]}\n", {"DRAGOMAN_API_KEYS": "sk-b, sk-c,,"})
    assert config.auth_keys == frozenset({"sk-a", "sk-b", "sk-c"})


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(str(tmp_path / "absent.yaml"), {})


def test_zero_config_routes_are_openai_chat_with_the_key() -> None:
    config = zero_config({"OPENAI_API_KEY": "sk-z"})
    assert [(r.name, r.provider, r.model) for r in config.routes] == [
        ("gpt-5-via-gateway", "openai", "gpt-5"), ("gpt-5-mini-via-gateway", "openai", "gpt-5-mini"),
        ("openai", "openai", None),
    ]
    for route in config.routes:
        assert route.api_key == "sk-z"
        assert route.endpoint == "https://api.openai.com/v1/chat/completions"
        assert route.timeouts == Timeouts(connect=10, first_byte=600, idle=600)
    assert config.default_route == "openai"
    assert config.auth_keys == frozenset()
    assert config.server.max_body_bytes == MAX_BODY_BYTES


def test_zero_config_reads_base_url_and_inbound_keys() -> None:
    config = zero_config({"OPENAI_BASE_URL": "http://127.0.0.1:9999/v1/", "DRAGOMAN_API_KEYS": "k1,k2"})
    assert {route.endpoint for route in config.routes} == {"http://127.0.0.1:9999/v1/chat/completions"}
    assert {route.api_key for route in config.routes} == {None}
    assert config.auth_keys == frozenset({"k1", "k2"})


def test_zero_config_rejects_bad_base_url() -> None:
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        zero_config({"OPENAI_BASE_URL": "localhost:8000"})
