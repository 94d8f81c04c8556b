"""Everything the server derives from one loaded Config, built once and swapped whole on a reload.

A request reads `gateway.runtime` once at its start and keeps that object: a reload never changes the
config under a request in flight, and nothing is recompiled per request. It is the server's (the face builds
and swaps it; keys and the body limit are HTTP concerns): the exchange is handed the parts it runs on, the
router and the candidates' state (exchange.candidates.Upstreams, which keeps its own breakers over a reload)."""

from __future__ import annotations

from dragoman.config.model import Config
from dragoman.exchange.candidates import Upstreams
from dragoman.govern.authenticate import config_grants, scrape_grants
from dragoman.loop.shift import Shift
from dragoman.loop.versions import config_version
from dragoman.request_guard import RequestGuard
from dragoman.routing.router import Router
from dragoman.upstreams.client import UpstreamClient


class Runtime:
    __slots__ = ("config", "router", "upstreams", "keys", "max_body", "guard", "loop_on", "version",
                 "metrics_keys")

    def __init__(self, config: Config, client: UpstreamClient, previous: Runtime | None = None,
                 shift: Shift | None = None) -> None:
        self.config = config
        self.router = Router(config)
        self.upstreams = Upstreams(config, client, previous.upstreams if previous is not None else None, shift)
        self.keys = config_grants(config.keys)  # inbound key → user Grant, looked up by digest: see key_table
        # metrics.auth: None leaves /metrics open; else the scrape key (admin and viewer keys open it too)
        self.metrics_keys = scrape_grants(config.observe.metrics.auth, config.metrics_key)
        self.max_body = config.server.max_body_bytes
        self.loop_on = config.loop.enabled  # the correctness loop keeps each call's evidence (loop/evidence.py)
        self.guard = RequestGuard(config.server)
        self.version = config_version(config)  # every audit record names the version its request started under
