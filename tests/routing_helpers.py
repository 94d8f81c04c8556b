"""Helpers for the routing tests (fallback, breaker, passthrough, hot reload): multi-route configs, a config
rewrite only SIGHUP can see, SSE parsing and grammar checks, and `candidates.select` run in-process against
scripted upstreams with breakers on an injected clock."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import aiohttp
import anthropic
import msgspec
import yaml

from dragoman.config.load import parse_config
from dragoman.config.reload import file_stamp
from dragoman.protocols import anthropic as A
from dragoman.exchange.candidates import Upstreams, select
from dragoman.exchange.lifecycle import Exchange
from dragoman.routing.breaker import CircuitBreaker
from dragoman.upstreams.client import UpstreamClient
from tests.gateway import Gateway, RawResponse

USER_HI = [{"role": "user", "content": "hi"}]
KEYS_ENV = {"OPENAI_PROD": "sk-upstream-openai", "ANTHROPIC_PROD": "sk-ant-upstream-key"}
FAST_TIMEOUT = {"connect": 1, "first_byte": 1, "idle": 1}


def route(
    name: str,
    endpoint: str,
    *,
    provider: str = "openai",
    model: str = "gpt-5",
    api_key_ref: str | None = "openai_prod",
    fallbacks: list[str] | None = None,
    retry: dict[str, float] | None = None,
    breaker: dict[str, float] | None = None,
    timeout: dict[str, float] | None = None,
    translation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `routes:` entry."""
    upstream: dict[str, Any] = {"provider": provider, "model": model, "endpoint": endpoint,
                                "timeout": dict(timeout or FAST_TIMEOUT)}
    if api_key_ref is not None:
        upstream["api_key_ref"] = api_key_ref
    entry: dict[str, Any] = {"name": name, "upstream": upstream}
    if translation is not None:
        entry["translation"] = translation
    if fallbacks:
        entry["fallbacks"] = list(fallbacks)
    if retry is not None:
        entry["retry"] = dict(retry)
    if breaker is not None:
        entry["breaker"] = dict(breaker)
    return entry


def config_yaml(routes: list[dict[str, Any]], *, default_route: str | None = None, pad_to: int | None = None) -> str:
    """A whole config file; `pad_to` pads it with a trailing comment to exactly that many bytes."""
    config: dict[str, Any] = {}
    if default_route is not None:
        config["default_route"] = default_route
    config["routes"] = routes
    text = yaml.safe_dump(config, sort_keys=False)
    if pad_to is not None:
        pad = pad_to - len(text.encode()) - 3
        assert pad >= 0, f"config is {len(text)} bytes, more than pad_to={pad_to}"
        text += "#" + " " * pad + "\n\n"
        assert len(text.encode()) == pad_to
    return text


def write_keeping_stamp(path: Path, text: str) -> None:
    """Rewrite in place with the same size, inode and mtime: the file watch cannot see it, only SIGHUP can."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    stamp = file_stamp(str(path))
    with open(path, "r+", encoding="utf-8") as f:
        f.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert file_stamp(str(path)) == stamp, "the file watch compares this stamp: it must not change"


def sdk(gateway: Gateway, *, api_key: str = "sk-client-key", timeout: float = 15.0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=api_key, max_retries=0, timeout=timeout)


def stream_text(events: list[tuple[str | None, dict]]) -> str:
    return "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")


def post_messages(gateway: Gateway, body: dict, headers: dict[str, str] | None = None, timeout: float = 15.0):
    """Raw POST /v1/messages: (status, headers, body bytes)."""
    return gateway.request("POST", "/v1/messages", body,
                           {"x-api-key": "sk-client-key", "anthropic-version": "2023-06-01", **(headers or {})},
                           timeout=timeout)


def post_stream_then(gateway: Gateway, body: dict, after_first_event: Callable[[], None], timeout: float = 15.0):
    """POST a streamed request; once the client has its first event, call `after_first_event` (say, to let a
    held upstream go on), then read the rest: what the upstream sends next comes after the first byte, whatever
    the reads' timing. A RawResponse."""
    conn = gateway.connection(timeout)
    try:
        conn.request("POST", "/v1/messages", json.dumps(body),
                     {"x-api-key": "sk-client-key", "anthropic-version": "2023-06-01", "content-type": "application/json"})
        response = conn.getresponse()
        data = b""
        while response.status == 200 and b"\n\n" not in data:
            chunk = response.read1(65536)
            assert chunk, f"the stream ended before its first event: {data!r}"
            data += chunk
        after_first_event()
        data += response.read()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


from tests.waiting import wait_until  # noqa: E402 - one poll loop for the suite (tests/waiting.py)


class Clock:
    """Monotonic seconds that pass only when the test says so (for breakers' cooldowns)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Candidates:
    """`candidates.select` in-process over real sockets: the routes of `config_text`, a shared aiohttp session, and
    each route's breaker on `clock`. Use inside one event loop: `async with Candidates(...) as c: await c.ask()`."""

    def __init__(self, config_text: str, clock: Clock) -> None:
        self.config = parse_config(config_text, "test.yaml", KEYS_ENV)
        self.clock = clock
        self.upstreams: Upstreams | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Candidates":
        self._session = aiohttp.ClientSession()
        self.upstreams = Upstreams(self.config, UpstreamClient(self._session))
        for route_ in self.config.routes:
            self.upstreams.breakers[route_.name] = CircuitBreaker(route_.breaker.failures, route_.breaker.cooldown,
                                                                  self.clock)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._session is not None
        await self._session.close()

    def breaker(self, name: str) -> CircuitBreaker:
        assert self.upstreams is not None
        return self.upstreams.breakers[name]

    async def ask(self, model: str, **fields: Any) -> tuple[str, Exchange]:
        """One non-streamed request for route `model` (`fields` added to or replacing the body's): (the name of
        the route that answered, the exchange); the GatewayError select raised, if any, propagates."""
        assert self.upstreams is not None
        raw = json.dumps({"model": model, "max_tokens": 50, "messages": USER_HI, **fields}).encode()
        req = msgspec.json.decode(raw, type=A.MessagesRequest)
        exchange = Exchange("req_" + "0" * 24)
        candidates = self.upstreams.candidates(self.upstreams.by_name[model])
        await select(self.upstreams, candidates, req, raw, [], exchange)
        assert exchange.route is not None
        return exchange.route.name, exchange


# What the fallback and circuit-breaker tests' two upstreams answer (their fixtures are in conftest.py).

PRIMARY_TEXT = "answered by the primary"
BACKUP_TEXT = "answered by the backup"


def seed_config(mini_url: str, chat_url: str, anthropic_url: str, *, keep_applies_to: bool = True) -> str:
    """examples/seed.yaml as written, its three upstreams pointed at scripted ones (Responses, Chat, Anthropic).
    keep_applies_to=False drops the policy's applies_to: the policy then applies to every request."""
    seed = Path(__file__).resolve().parent.parent / "examples" / "seed.yaml"
    config = yaml.safe_load(seed.read_text())
    endpoints = {"gpt-5-mini-via-gateway": mini_url, "gpt-5-via-gateway": chat_url,
                 "claude-opus-fallback": anthropic_url}
    for entry in config["routes"]:
        entry["upstream"]["endpoint"] = endpoints[entry["name"]]
    if not keep_applies_to:
        del config["policies"][0]["applies_to"]
    return yaml.safe_dump(config, sort_keys=False)
