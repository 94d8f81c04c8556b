"""Upstream endpoint URLs: the providers' defaults, and the URL to POST to for a base URL and a wire protocol."""

from __future__ import annotations

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


def azure_url(endpoint: str, deployment: str, api_version: str, api: str) -> str:
    """Azure OpenAI's URL scheme: deployments in the path and an api-version query (Chat), or its v1 Responses."""
    parts = _http_url(endpoint)
    if "/openai/" in parts.path:
        return urlunsplit(parts)  # a full Azure URL, written out by hand
    base = parts.path.rstrip("/")
    if api == "responses":
        return urlunsplit(parts._replace(path=f"{base}/openai/v1/responses", query=""))
    path = f"{base}/openai/deployments/{deployment}/chat/completions"
    return urlunsplit(parts._replace(path=path, query=f"api-version={api_version}"))


def _http_url(url: str) -> SplitResult:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f'"{url}" is not an http(s) URL')
    return parts
