"""Everything the server derives from one loaded Config, built once and swapped whole on a reload.

A request reads `gateway.runtime` once at its start and keeps that object: a reload never changes the
config under a request in flight, and nothing is recompiled per request."""

from __future__ import annotations

from dragoman.config.model import Config
from dragoman.key_table import KeyTable
from dragoman.proxy import Upstreams
from dragoman.request_guard import RequestGuard
from dragoman.routing.router import Router
from dragoman.upstreams.client import UpstreamClient


class Runtime:
    __slots__ = ("config", "router", "upstreams", "keys", "max_body", "guard")

    def __init__(self, config: Config, client: UpstreamClient, previous: Runtime | None = None) -> None:
        self.config = config
        self.router = Router(config)
        self.upstreams = Upstreams(config, client)
        self.keys = KeyTable(config.keys)  # looked up by digest: see key_table
        self.max_body = config.server.max_body_bytes
        self.guard = RequestGuard(config.server)
        if previous is not None:
            self._keep_breakers(previous)

    def _keep_breakers(self, previous: Runtime) -> None:
        # A reload must not forget that an unchanged upstream is failing.
        for name, route in self.upstreams.by_name.items():
            old = previous.upstreams.by_name.get(name)
            if old is not None and old.endpoint == route.endpoint and old.breaker == route.breaker:
                self.upstreams.breakers[name] = previous.upstreams.breakers[name]
