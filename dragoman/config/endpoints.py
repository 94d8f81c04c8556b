"""Upstream endpoint URLs: the providers' defaults, and the URL to POST to for a base URL and a wire protocol."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import SplitResult, urlsplit, urlunsplit

OPENAI_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_BASE_URL = "https://api.anthropic.com"

_API_PATHS = {"chat": "/chat/completions", "responses": "/responses", "messages": "/v1/messages"}


def api_url(url: str, api: str = "chat") -> str:
    """The URL to POST to for an endpoint or a base URL (`http://host:8000/v1`); ValueError if not http(s)."""
    parts = _http_url(url)
    path = parts.path.rstrip("/")
    suffix = _API_PATHS[api]
    if api == "messages":
        if not path.endswith("/messages"):
            path = path.removesuffix("/v1") + suffix
    elif not path.endswith(("/chat/completions", "/responses")):
        path += suffix
    return urlunsplit(parts._replace(path=path))


def chat_completions_url(url: str) -> str:
    """The Chat Completions URL for an endpoint or a base URL; ValueError if not http(s)."""
    return api_url(url, "chat")


AZURE_CHAT_API_VERSION = "2024-10-21"  # Azure's GA Chat api-version, when a Chat route names none


class AzureTarget(NamedTuple):
    """Where an azure_openai route's requests go, and which of its settings that URL uses."""

    url: str
    deployment: str | None  # where the deployment goes: "url", "body" (the body's `model`), None (the URL has one)
    uses_api_version: bool  # the URL carries the route's api_version (else setting one is refused)


def azure_target(endpoint: str, deployment: str, api_version: str | None, api: str) -> AzureTarget:
    """Azure OpenAI's URL schemes, by the endpoint's path (ValueError if not http(s)):

    - the resource (`https://RES.openai.azure.com`): Chat at `/openai/deployments/{deployment}/chat/completions
      ?api-version=` (the deployment in the URL); Responses at the v1 API's `/openai/v1/responses`, or, with an
      `api_version`, at the dated `/openai/responses?api-version=`;
    - the v1 API's base URL (`…/openai/v1`, as Azure's and the OpenAI SDK's docs write it): the api's path
      appended, and no api-version (v1 takes none);
    - any other `/openai/…` URL, written out by hand: as is.
    Wherever the URL has no deployment segment, Azure reads the deployment from the body's `model`."""
    parts = _http_url(endpoint)
    path = parts.path.rstrip("/")
    if path.endswith("/openai/v1"):
        return AzureTarget(urlunsplit(parts._replace(path=path + _API_PATHS[api])), "body", False)
    if "/openai/" in parts.path:
        return AzureTarget(urlunsplit(parts), None if "/deployments/" in parts.path else "body", False)
    if api == "responses":
        if api_version is None:
            return AzureTarget(urlunsplit(parts._replace(path=f"{path}/openai/v1/responses", query="")), "body", False)
        url = urlunsplit(parts._replace(path=f"{path}/openai/responses", query=f"api-version={api_version}"))
        return AzureTarget(url, "body", True)
    query = f"api-version={api_version or AZURE_CHAT_API_VERSION}"
    url = urlunsplit(parts._replace(path=f"{path}/openai/deployments/{deployment}/chat/completions", query=query))
    return AzureTarget(url, "url", True)


def _http_url(url: str) -> SplitResult:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f'"{url}" is not an http(s) URL')
    return parts
