"""On the embedded SQLite store: a gateway with no inbound key is open until the first virtual key is made; from
then on (revoked or not) every call needs a key. Virtual keys work beside the config file's `auth.keys`, each
caller with its own identity in the audit. Without `admin.keys`, the first viewer or admin key opens the admin
API at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audit_helpers import ENV, config, route, wait_record
from tests.gateway import run_gateway
from tests.upstreams import ScriptedChatUpstream
from tests.virtual_keys_helpers import (
    CONFIG_KEY,
    ROUTES,
    answering,
    api,
    call,
    create,
    gateways,
    keys_cli,
    wait_status,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream(answering()) as scripted:
        yield scripted


def test_the_first_virtual_key_turns_auth_on_for_good(upstream: ScriptedChatUpstream, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'gateway.db'}"
    with gateways(upstream, store, 1) as (gateway,):
        assert call(gateway, None).status == 200  # no key configured, none made: open
        made = create(store, "--developer", "ana")
        answer = call(gateway, made["key"])  # at once, and as itself
        assert answer.status == 200
        assert wait_record(store, answer.headers["request-id"])["key_id"] == made["id"]
        refused = call(gateway, None)
        assert refused.status == 401 and refused.json()["error"]["message"].startswith("missing API key")
        assert call(gateway, "sk-made-up").status == 401
        keys_cli(store, "revoke", made["id"])
        wait_status(gateway, made["key"], 401, "the revoke")
        assert call(gateway, None).status == 401  # every key revoked: still closed


def test_virtual_keys_work_beside_config_keys(upstream: ScriptedChatUpstream, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'gateway.db'}"
    config_key = {"id": "ci-bot", "key": CONFIG_KEY, "developer": "ci", "team": "infra"}
    with gateways(upstream, store, 1, auth=[config_key]) as (gateway,):
        made = create(store, "--developer", "ana", "--team", "platform")
        by_config, by_virtual = call(gateway, CONFIG_KEY), call(gateway, made["key"])
        assert by_config.status == by_virtual.status == 200
        config_record = wait_record(store, by_config.headers["request-id"])
        virtual_record = wait_record(store, by_virtual.headers["request-id"])
        assert (config_record["key_id"], config_record["developer"], config_record["team"]) == ("ci-bot", "ci", "infra")
        assert (virtual_record["key_id"], virtual_record["developer"]) == (made["id"], "ana")
        assert call(gateway, None).status == 401


def test_the_first_admin_key_opens_the_admin_api_at_once(upstream: ScriptedChatUpstream, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'gateway.db'}"
    routes = [route(name, upstream.chat_url, model=name) for name in ROUTES]
    with run_gateway(config(routes, store=store), env=ENV) as gateway:  # no admin.keys
        off = api(gateway, "GET", "/api/requests", "dgk_" + "x" * 43)
        assert off.status == 403 and "the admin API is off" in off.json()["error"]["message"]
        viewer = create(store, "--developer", "lead", "--role", "viewer")
        assert api(gateway, "GET", "/api/requests", viewer["key"]).status == 200  # no waiting
        assert api(gateway, "GET", "/api/keys", viewer["key"]).status == 403
