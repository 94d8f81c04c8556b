"""Provider URLs and credential headers, unit level: a config route → the URL the gateway POSTs to and the
headers it sends (dragoman.config.load.parse_config → dragoman.exchange.targets.target_for)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from dragoman.config.load import parse_config
from dragoman.config.model import Route
from dragoman.errors import ConfigError
from dragoman.exchange.targets import target_for
from dragoman.upstreams.client import Target

ENV = {"UPSTREAM_KEY": "sk-upstream-123"}


def target(**upstream: Any) -> tuple[Route, Target]:
    translation = upstream.pop("translation", None)
    upstream.setdefault("model", "gpt-5")
    entry: dict[str, Any] = {"name": "r", "upstream": upstream}
    if translation is not None:
        entry["translation"] = translation
    config = parse_config(yaml.safe_dump({"routes": [entry]}, sort_keys=False), "/etc/dragoman/test.yaml", ENV)
    (route,) = config.routes
    return route, target_for(route)


def config_error(**upstream: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        target(**upstream)
    message = str(caught.value)
    assert message.startswith("/etc/dragoman/test.yaml:"), message
    return message


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


# ---- openai ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "url"), [
    (None, "https://api.openai.com/v1/chat/completions"),
    ("https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions"),
    ("https://api.openai.com/v1/", "https://api.openai.com/v1/chat/completions"),
    ("https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1/chat/completions"),
    ("https://gw.example.com/openai/v1/chat/completions/", "https://gw.example.com/openai/v1/chat/completions"),
    ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1/chat/completions"),
])
def test_openai_base_url_or_full_endpoint(endpoint, url):
    upstream: dict[str, Any] = {"provider": "openai", "api_key_ref": "upstream_key"}
    if endpoint is not None:
        upstream["endpoint"] = endpoint
    route, t = target(**upstream)
    assert (route.api, t.url) == ("chat", url)
    headers = lower(t.headers)
    assert headers["authorization"] == "Bearer sk-upstream-123"
    assert headers["content-type"] == "application/json"
    assert "api-key" not in headers and "x-api-key" not in headers


def test_openai_without_a_key_sends_no_authorization():
    _, t = target(provider="openai", endpoint="https://api.openai.com/v1")
    assert "authorization" not in lower(t.headers)


@pytest.mark.parametrize(("upstream", "url"), [
    ({"api": "responses"}, "https://api.openai.com/v1/responses"),
    ({"api": "responses", "endpoint": "https://api.openai.com/v1"}, "https://api.openai.com/v1/responses"),
    ({"endpoint": "https://api.openai.com/v1/responses"}, "https://api.openai.com/v1/responses"),
    ({"endpoint": "https://api.openai.com/v1/responses/"}, "https://api.openai.com/v1/responses"),
    ({"endpoint": "http://127.0.0.1:9000/v1/responses?tenant=a"}, "http://127.0.0.1:9000/v1/responses?tenant=a"),
])
def test_openai_responses_api(upstream, url):
    route, t = target(provider="openai", api_key_ref="upstream_key", **upstream)
    assert (route.api, t.url) == ("responses", url)
    assert lower(t.headers)["authorization"] == "Bearer sk-upstream-123"


def test_api_chat_written_out_keeps_chat_even_on_a_base_url():
    route, t = target(provider="openai", api="chat", endpoint="https://api.openai.com/v1")
    assert (route.api, t.url) == ("chat", "https://api.openai.com/v1/chat/completions")


def test_unknown_api_is_a_located_config_error():
    assert "chat, responses, messages" in config_error(provider="openai", api="completions")


def test_api_messages_needs_provider_anthropic():
    assert "provider anthropic" in config_error(provider="openai", api="messages")


def test_passthrough_needs_provider_anthropic():
    assert "passthrough" in config_error(provider="openai", translation={"passthrough": True})


def test_endpoint_must_be_http():
    assert "http(s)" in config_error(provider="openai", endpoint="ftp://example.com/v1")


# ---- openai_compatible ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "url"), [
    ("http://localhost:8000/v1", "http://localhost:8000/v1/chat/completions"),
    ("http://localhost:11434/v1/", "http://localhost:11434/v1/chat/completions"),
    ("http://10.0.0.5:8080/v1/chat/completions", "http://10.0.0.5:8080/v1/chat/completions"),
    ("https://api.groq.com/openai/v1", "https://api.groq.com/openai/v1/chat/completions"),
])
def test_openai_compatible_without_a_key_sends_no_authorization(endpoint, url):
    route, t = target(provider="openai_compatible", model="smollm2", endpoint=endpoint)
    assert route.api_key is None
    assert t.url == url
    assert lower(t.headers) == {"content-type": "application/json"}


def test_openai_compatible_with_a_key_is_a_bearer_token():
    _, t = target(provider="openai_compatible", endpoint="https://api.deepseek.com/v1", api_key_ref="upstream_key")
    assert lower(t.headers)["authorization"] == "Bearer sk-upstream-123"


def test_openai_compatible_needs_an_endpoint():
    assert "endpoint is required" in config_error(provider="openai_compatible")


# ---- azure_openai -----------------------------------------------------------------------------------------


def test_azure_deployment_url_with_api_version_and_api_key_header():
    route, t = target(provider="azure_openai", model="gpt-5", endpoint="https://myres.openai.azure.com",
                      deployment="gpt5-prod", api_version="2025-04-01-preview", api_key_ref="upstream_key")
    assert route.api == "chat"
    assert t.url == ("https://myres.openai.azure.com/openai/deployments/gpt5-prod/chat/completions"
                     "?api-version=2025-04-01-preview")
    headers = lower(t.headers)
    assert headers["api-key"] == "sk-upstream-123"
    assert "authorization" not in headers and "x-api-key" not in headers


def test_azure_deployment_defaults_to_the_model_and_a_default_api_version():
    _, t = target(provider="azure_openai", model="gpt-4o", endpoint="https://myres.openai.azure.com/",
                  api_key_ref="upstream_key")
    assert t.url.startswith("https://myres.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=")
    assert t.url.split("api-version=", 1)[1]


def test_azure_full_url_written_by_hand_is_kept():
    url = "https://myres.openai.azure.com/openai/deployments/x/chat/completions?api-version=2024-10-21"
    _, t = target(provider="azure_openai", endpoint=url, api_key_ref="upstream_key")
    assert t.url == url


def test_azure_responses_api():
    route, t = target(provider="azure_openai", endpoint="https://myres.openai.azure.com", api="responses",
                      api_key_ref="upstream_key")
    assert route.api == "responses"
    assert t.url.startswith("https://myres.openai.azure.com/openai/") and "/responses" in t.url
    assert lower(t.headers)["api-key"] == "sk-upstream-123"


@pytest.mark.parametrize(("upstream", "url", "body_model"), [
    # Azure's v1 API: no deployment segment in the URL, no api-version; the deployment is the body's model
    ({"deployment": "my-gpt5-prod"}, "https://myres.openai.azure.com/openai/v1/responses", "my-gpt5-prod"),
    ({}, "https://myres.openai.azure.com/openai/v1/responses", None),  # the model is the deployment's name
    # a dated api-version: Azure's dated Responses surface, the deployment still in the body
    ({"api_version": "2025-04-01-preview", "deployment": "d"},
     "https://myres.openai.azure.com/openai/responses?api-version=2025-04-01-preview", "d"),
    # the v1 base URL as Azure and the OpenAI SDK document it: the api's path appended
    ({"endpoint": "https://myres.openai.azure.com/openai/v1/", "deployment": "d"},
     "https://myres.openai.azure.com/openai/v1/responses", "d"),
    ({"endpoint": "https://myres.openai.azure.com/openai/v1"}, "https://myres.openai.azure.com/openai/v1/responses",
     None),
])
def test_azure_responses_urls_and_the_deployment_in_the_body(upstream, url, body_model):
    upstream = {"provider": "azure_openai", "endpoint": "https://myres.openai.azure.com", "api": "responses",
                "api_key_ref": "upstream_key", **upstream}
    route, t = target(**upstream)
    assert (t.url, route.body_model) == (url, body_model)


def test_azure_v1_base_url_serves_chat_with_the_deployment_in_the_body():
    route, t = target(provider="azure_openai", endpoint="https://myres.openai.azure.com/openai/v1/", api="chat",
                      deployment="d", api_key_ref="upstream_key")
    assert (t.url, route.body_model) == ("https://myres.openai.azure.com/openai/v1/chat/completions", "d")


def test_azure_chat_keeps_the_deployment_in_the_url_and_the_model_in_the_body():
    route, t = target(provider="azure_openai", endpoint="https://myres.openai.azure.com", deployment="d")
    assert "/openai/deployments/d/chat/completions?" in t.url and route.body_model is None


@pytest.mark.parametrize(("upstream", "key", "said"), [
    ({"provider": "openai", "deployment": "x"}, "deployment", "azure_openai setting"),
    ({"provider": "openai", "api_version": "2024-10-21"}, "api_version", "azure_openai setting"),
    ({"provider": "openai_compatible", "endpoint": "http://localhost:8000/v1", "deployment": "x"}, "deployment",
     "azure_openai setting"),
    ({"provider": "azure_openai", "endpoint": "https://myres.openai.azure.com/openai/v1", "api": "responses",
      "api_version": "2025-04-01-preview"}, "api_version", "not used with this endpoint"),
    ({"provider": "azure_openai", "endpoint": "https://myres.openai.azure.com", "api_version": "preview"},
     "api_version", "not a dated Azure api-version"),
    ({"provider": "azure_openai", "deployment": "y",
      "endpoint": "https://myres.openai.azure.com/openai/deployments/x/chat/completions?api-version=2024-10-21"},
     "deployment", "names its own deployment"),
    ({"provider": "azure_openai", "api_version": "2024-10-21",
      "endpoint": "https://myres.openai.azure.com/openai/deployments/x/chat/completions?api-version=2024-10-21"},
     "api_version", "not used with this endpoint"),
])
def test_azure_settings_that_would_be_ignored_are_refused_at_their_line(upstream, key, said):
    message = config_error(**upstream)
    assert f"upstream.{key}:" in message and said in message


def test_azure_without_a_key_sends_no_credential():
    _, t = target(provider="azure_openai", endpoint="https://myres.openai.azure.com")
    assert lower(t.headers) == {"content-type": "application/json"}


def test_azure_needs_an_endpoint():
    assert "endpoint is required" in config_error(provider="azure_openai")


# ---- anthropic --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "url"), [
    (None, "https://api.anthropic.com/v1/messages"),
    ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
    ("https://api.anthropic.com/", "https://api.anthropic.com/v1/messages"),
    ("https://api.anthropic.com/v1", "https://api.anthropic.com/v1/messages"),
    ("https://api.anthropic.com/v1/messages", "https://api.anthropic.com/v1/messages"),
    ("https://llm-proxy.example.com/anthropic", "https://llm-proxy.example.com/anthropic/v1/messages"),
])
def test_anthropic_url_and_headers(endpoint, url):
    upstream: dict[str, Any] = {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_key_ref": "upstream_key",
                                "translation": {"passthrough": True}}
    if endpoint is not None:
        upstream["endpoint"] = endpoint
    route, t = target(**upstream)
    assert (route.api, t.url) == ("messages", url)
    headers = lower(t.headers)
    assert headers["x-api-key"] == "sk-upstream-123"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers and "api-key" not in headers


def test_anthropic_route_repr_keeps_the_key_out():
    route, _ = target(provider="anthropic", model="claude-x", api_key_ref="upstream_key")
    assert "sk-upstream-123" not in repr(route)
