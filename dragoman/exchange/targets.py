"""Where a route's requests go, as the plain values the transport takes: URL, credential headers per provider,
timeouts, the secret to redact. Built once per route when a config is loaded."""

from __future__ import annotations

from dragoman.config.model import Route
from dragoman.upstreams.client import Target

ANTHROPIC_VERSION = "2023-06-01"


def target_for(route: Route) -> Target:
    """The transport's view of `route`."""
    t = route.timeouts
    return Target(route.name, route.endpoint, _headers(route), connect=t.connect, first_byte=t.first_byte,
                  idle=t.idle, secret=route.api_key, key_source=route.key_source)


def _headers(route: Route) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    key = route.api_key
    if route.provider == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if key:
            headers["x-api-key"] = key
    elif route.provider == "azure_openai":
        if key:
            headers["api-key"] = key
    elif key:
        headers["Authorization"] = f"Bearer {key}"
    return headers
