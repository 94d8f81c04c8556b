"""Shared by the virtual key end-to-end tests: gateways on one store with a scripted upstream, the `dragoman keys`
CLI, and calls with a key. Every key a test creates is remembered, so the last test can scan for it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tests.audit_helpers import ENV, cli, cli_json, config, headers, messages_body, route, wait_for
from tests.gateway import Gateway, RawResponse, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream

ADMIN_KEY = "adm-vk-secret-91c2d7e0"
CONFIG_KEY = "sk-gw-config-secret-4a7b21"
ROUTES = ("gpt-5-main", "o3-side")
CREATED: list[str] = []  # every virtual key made in this run


def gateway_config(upstream: ScriptedChatUpstream, store: str, *, auth: list | None = None) -> str:
    routes = [route(name, upstream.chat_url, model=name) for name in ROUTES]
    return config(routes, store=store, admin=[ADMIN_KEY], keys=auth)


@contextlib.contextmanager
def gateways(upstream: ScriptedChatUpstream, store: str, count: int, **kw: Any) -> Iterator[list[Gateway]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(run_gateway(gateway_config(upstream, store, **kw), env=ENV)) for _ in range(count)]


def answering() -> ChatReply:
    return ChatReply(text="hello", usage=(10, 5, 0))


def create(store: str, *args: str) -> dict:
    """`dragoman keys create … --format json`: the new key and its record."""
    made = cli_json("keys", "create", "--store", store, "--format", "json", *args)
    CREATED.append(made["key"])
    return made


def keys_cli(store: str, *args: str) -> Any:
    return cli_json("keys", *args, "--store", store, "--format", "json")


def keys_cli_text(store: str, *args: str) -> str:
    result = cli("keys", *args, "--store", store)
    assert result.returncode == 0, result.stderr
    return result.stdout


def call(gateway: Gateway, key: str | None, model: str = ROUTES[0], **extra: Any) -> RawResponse:
    return gateway.request("POST", "/v1/messages", messages_body(model, **extra), headers(key))


def api(gateway: Gateway, method: str, path: str, key: str, body: Any = None) -> RawResponse:
    return gateway.request(method, path, body, {"x-api-key": key})


def remember(answer: RawResponse) -> RawResponse:
    """An admin API answer that made a key: remember the key for the final scan."""
    if answer.status == 200 and "key" in answer.json():
        CREATED.append(answer.json()["key"])
    return answer


def wait_status(gateway: Gateway, key: str | None, status: int, what: str) -> RawResponse:
    """Call until the gateway answers `status` (bounded): a change made elsewhere reaches it by its refresh."""
    return wait_for(lambda: (r := call(gateway, key)).status == status and r, 10.0, what, step=0.05)
