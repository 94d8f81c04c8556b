"""Virtual keys end to end, over real sockets: two gateway processes share one PostgreSQL store and a scripted
upstream. A key made with `dragoman keys create` works at once on both and carries its identity into the audit;
`keys revoke` makes both refuse it (401) within their refresh; rotation keeps the old key through its grace;
an allow-list refuses other models with 403 before any upstream call (audited); the official `anthropic` SDK
works with a virtual key; roles on /api (viewer reads, admin manages keys, user nothing); and no key is ever in
clear in the store or the gateways' logs."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from tests.audit_helpers import all_records, wait_record
from tests.gateway import Gateway
from tests.observe_pg import cluster
from tests.upstreams import ScriptedChatUpstream
from tests.virtual_keys_helpers import (
    ADMIN_KEY,
    CREATED,
    ROUTES,
    answering,
    api,
    call,
    create,
    gateways,
    keys_cli,
    keys_cli_text,
    remember,
    wait_status,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def store() -> str:
    return cluster().new_database()


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream(answering()) as scripted:
        yield scripted


@pytest.fixture(scope="module")
def pair(upstream: ScriptedChatUpstream, store: str) -> Iterator[list[Gateway]]:
    with gateways(upstream, store, 2) as running:
        yield running


def test_a_cli_key_works_at_once_on_both_and_revoke_is_refused_on_both(pair: list[Gateway], store: str) -> None:
    made = create(store, "--developer", "ana", "--team", "platform", "--repo", "shop")
    key = made["key"]
    for gateway in pair:  # no waiting: a key unknown to the cache waits for one refresh of it
        answer = call(gateway, key)
        assert answer.status == 200, answer.text
        record = wait_record(store, answer.headers["request-id"])
        assert (record["key_id"], record["developer"], record["team"], record["repo"]) == \
            (made["id"], "ana", "platform", "shop")
    keys_cli(store, "revoke", made["id"])
    for gateway in pair:
        refused = wait_status(gateway, key, 401, f"the revoke to reach the gateway on port {gateway.port}")
        assert refused.json()["error"] == {"type": "authentication_error",
                                           "message": f"API key {made['prefix']}… was revoked"}
    assert call(pair[0], None).status == 401  # keys exist: a call without one is refused


def test_rotation_keeps_the_old_key_through_its_grace(pair: list[Gateway], store: str) -> None:
    first = create(store, "--developer", "bo")
    rotated = keys_cli(store, "rotate", first["id"], "--grace", "1h")
    CREATED.append(rotated["key"])
    for gateway in pair:
        assert call(gateway, first["key"]).status == 200
        assert call(gateway, rotated["key"]).status == 200
    again = keys_cli(store, "rotate", rotated["id"], "--grace", "0s")
    CREATED.append(again["key"])
    for gateway in pair:
        refused = wait_status(gateway, rotated["key"], 401, "the old key's grace to end")
        assert "rotated" in refused.json()["error"]["message"]
        assert call(gateway, again["key"]).status == 200
        assert call(gateway, first["key"]).status == 200  # its own grace (1h) is not over
    shown = keys_cli(store, "show", rotated["id"])[0]
    assert shown["rotated_to"] == again["id"] and shown["expires_at"] is not None


def test_an_allow_list_refuses_other_models_before_any_upstream_call(pair: list[Gateway], store: str,
                                                                    upstream: ScriptedChatUpstream) -> None:
    made = create(store, "--developer", "cy", "--models", "gpt-5*,claude-*")
    assert call(pair[0], made["key"], ROUTES[0]).status == 200
    before = len(upstream.requests)
    refused = call(pair[1], made["key"], ROUTES[1])
    assert refused.status == 403
    assert refused.json()["error"] == {
        "type": "permission_error", "message": "this API key may not use model 'o3-side'; it may use: gpt-5*, claude-*"}
    assert len(upstream.requests) == before
    record = wait_record(store, refused.headers["request-id"])
    assert (record["status"], record["error_type"], record["key_id"], record["developer"]) == \
        (403, "permission_error", made["id"], "cy")


def test_the_anthropic_sdk_works_with_a_virtual_key(pair: list[Gateway], store: str) -> None:
    made = create(store, "--developer", "dee")
    with anthropic.Anthropic(base_url=pair[1].base_url, api_key=made["key"], max_retries=0, timeout=20) as sdk:
        message = sdk.messages.create(model=ROUTES[0], max_tokens=32, messages=[{"role": "user", "content": "hi"}])
        assert message.content[0].text == "hello"
        with sdk.messages.stream(model=ROUTES[0], max_tokens=32,
                                 messages=[{"role": "user", "content": "hi"}]) as stream:
            assert stream.get_final_text() == "hello"
    keys_cli(store, "revoke", made["id"])
    wait_status(pair[1], made["key"], 401, "the revoke")
    with anthropic.Anthropic(base_url=pair[1].base_url, api_key=made["key"], max_retries=0, timeout=20) as sdk:
        with pytest.raises(anthropic.AuthenticationError, match="revoked"):
            sdk.messages.create(model=ROUTES[0], max_tokens=32, messages=[{"role": "user", "content": "hi"}])


def test_roles_on_the_admin_api(pair: list[Gateway], store: str) -> None:
    viewer = create(store, "--developer", "vi", "--role", "viewer")["key"]
    admin = create(store, "--developer", "ad", "--role", "admin")["key"]
    user = create(store, "--developer", "us")["key"]
    gateway, other = pair
    assert api(gateway, "GET", "/api/requests?limit=5", viewer).status == 200
    assert api(gateway, "GET", "/api/costs", viewer).status == 200
    for method, path in (("POST", "/api/keys"), ("GET", "/api/keys"), ("POST", "/api/keys/vk_x/revoke")):
        refused = api(gateway, method, path, viewer, {} if method == "POST" else None)
        assert refused.status == 403, (method, path, refused.text)
        assert refused.json()["error"]["message"] == f"this key's role is viewer: {method} {path} needs an admin key"
    refused = api(gateway, "GET", "/api/requests", user)
    assert refused.status == 403 and refused.json()["error"]["type"] == "permission_error"

    made = remember(api(gateway, "POST", "/api/keys", admin, {"developer": "eve", "budget": "20/day", "tpm": "400k",
                                                             "models": ["gpt-5*"], "expires": "30d"}))
    assert made.status == 200, made.text
    new = made.json()
    assert new["key"].startswith("dgk_") and new["budget"] == {"limit_usd": 20.0, "period": "day",
                                                               "soft_fraction": 0.8}
    assert new["limits"]["input_tpm"] == 400_000 and new["models"] == ["gpt-5*"]
    assert call(other, new["key"]).status == 200  # works at once on the other instance
    listed = api(gateway, "GET", "/api/keys", ADMIN_KEY).json()["data"]
    mine = [row for row in listed if row["id"] == new["id"]]
    assert len(mine) == 1 and set(mine[0]) == {"id", "prefix", "developer", "team", "repo", "role", "models",
                                               "budget", "limits", "created", "expires_at", "revoked_at",
                                               "rotated_to"}
    assert not any(key in repr(listed) for key in CREATED)

    rotated = remember(api(gateway, "POST", f"/api/keys/{new['id']}/rotate", admin, {"grace": "0s"}))
    assert rotated.status == 200 and rotated.json()["previous"]["rotated_to"] == rotated.json()["id"]
    assert call(other, rotated.json()["key"]).status == 200
    revoked = api(gateway, "POST", f"/api/keys/{rotated.json()['id']}/revoke", admin)
    assert revoked.status == 200 and revoked.json()["revoked_at"] is not None
    wait_status(other, rotated.json()["key"], 401, "the revoke through the admin API")


@pytest.mark.parametrize(("body", "status", "names"), [
    ({"developer": "x", "colour": "red"}, 400, "colour"),
    ({"budget": "5/year"}, 400, "50/month"),
    ({"rpm": -1}, 400, "rpm"),
    ({"role": "root"}, 400, "role"),
    ("{not json", 400, "JSON"),
    ({"developer": "x" * 70_000}, 413, "limit"),
])
def test_bad_key_requests_get_anthropic_shaped_errors(pair: list[Gateway], body: object, status: int,
                                                      names: str) -> None:
    answer = api(pair[0], "POST", "/api/keys", ADMIN_KEY, body)
    assert answer.status == status, answer.text
    error = answer.json()
    assert error["type"] == "error" and names in error["error"]["message"]
    assert api(pair[0], "POST", "/api/keys/vk_missing/revoke", ADMIN_KEY).status == 404
    assert api(pair[0], "DELETE", "/api/keys", ADMIN_KEY).status == 405


def test_no_key_in_clear_in_the_store_the_cli_listing_or_the_logs(pair: list[Gateway], store: str) -> None:
    assert len(CREATED) >= 8
    import psycopg

    with psycopg.connect(store) as conn:
        tables = [conn.execute(f"SELECT * FROM {name}").fetchall() for name in ("virtual_keys", "requests")]
    text = repr(tables) + keys_cli_text(store, "list") + repr(all_records(store))
    text += "".join(gateway.stderr_text() for gateway in pair)
    for key in CREATED:
        assert key not in text and key[12:] not in text, f"key {key[:12]}… found in clear"
