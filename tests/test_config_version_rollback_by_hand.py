"""Rolling back by hand, over real sockets: `dragoman rollback --config FILE` (default: the version before the live
one) writes it back to the file and the running gateway reloads it; `POST /api/rollback` with an admin key rolls to
a named version; both are recorded in the store with who did it, `dragoman versions` lists them with the live
marker; a rollback that cannot be done, or a caller without an admin key, gets a clear error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dragoman.loop.versions import content_version
from tests.gateway import UPSTREAM_ENV, run_gateway
from tests.routing_helpers import wait_until
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.versions_helpers import ADMIN_KEY, OFFERED_TOOL, admin, cli, config, config_path, replace_atomically, \
    versions_json

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream() as scripted:
        scripted.reset(ChatReply(tool_calls=[("call_1", OFFERED_TOOL, "{}")]))
        yield scripted


def test_rollback_by_hand_with_the_cli_and_the_admin_api(upstream: ScriptedChatUpstream) -> None:
    one, two = config(upstream.chat_url), config(upstream.chat_url, note="version two")
    v1, v2 = content_version(one), content_version(two)
    with run_gateway(one, env=UPSTREAM_ENV) as gateway:
        path = config_path(gateway)
        replace_atomically(path, two)
        wait_until(lambda: admin(gateway, "GET", "/api/versions")["live"] == v2, 10, "version two live")

        done = cli(gateway, "rollback", "--config", str(path))
        assert done.returncode == 0, done.stderr
        assert path.read_text() == one and v1 in done.stdout
        wait_until(lambda: admin(gateway, "GET", "/api/versions")["live"] == v1, 10, "the gateway reloading it")
        newest = versions_json(gateway)["data"][0]
        assert (newest["version"], newest["applied_by"], newest["rolled_back_from"]) == (v1, "rollback:manual", v2)

        assert admin(gateway, "POST", "/api/rollback", {"version": v2[:8]}) == {"live": v2}
        assert path.read_text() == two
        listed = admin(gateway, "GET", "/api/versions")
        assert listed["live"] == v2 and listed["data"][0]["applied_by"].startswith("rollback:admin key_")
        assert [row["live"] for row in listed["data"]] == [True, False, False, False]

        table = cli(gateway, "versions", "--config", str(path))
        assert table.returncode == 0 and "rollback:manual" in table.stdout
        assert table.stdout.splitlines()[1].split()[:2] == ["*", v2]


def test_refused_rollbacks_say_why(upstream: ScriptedChatUpstream) -> None:
    with run_gateway(config(upstream.chat_url), env=UPSTREAM_ENV) as gateway:
        nothing_before = gateway.request("POST", "/api/rollback", {"version": None}, {"x-api-key": ADMIN_KEY})
        assert nothing_before.status == 409 and "no version before" in nothing_before.json()["error"]["message"]
        unknown = gateway.request("POST", "/api/rollback", {"version": "abcdef123456"}, {"x-api-key": ADMIN_KEY})
        assert unknown.status == 409 and "no config version" in unknown.json()["error"]["message"]
        assert gateway.request("POST", "/api/rollback", {"version": None}).status == 401
        assert gateway.request("POST", "/api/rollback", {"version": None}, {"x-api-key": "wrong"}).status == 401
        bad_body = gateway.request("POST", "/api/rollback", {"versio": 1}, {"x-api-key": ADMIN_KEY})
        assert bad_body.status == 400 and bad_body.json()["type"] == "error"
        assert gateway.request("GET", "/api/rollback", None, {"x-api-key": ADMIN_KEY}).status == 405
        missing = gateway.request("GET", "/api/versions/zzzzzz", None, {"x-api-key": ADMIN_KEY})
        assert missing.status == 404
        done = cli(gateway, "rollback", "--config", str(config_path(gateway)))
        assert done.returncode == 2 and "no version before" in done.stderr


def test_a_version_stored_with_a_secret_in_a_url_query_is_shown_masked(upstream: ScriptedChatUpstream) -> None:
    # A version an earlier gateway stored before it masked ?password=… in URLs: the API masks it as it reads it.
    from dragoman.loop.version_store import VersionEntry, record_applied
    from dragoman.observe.stores import open_store

    old = config(upstream.chat_url, note="stored by an earlier gateway") + (
        "x_old_store: postgresql://dragoman@db/audit?password=pg-query-secret\n")
    with run_gateway(config(upstream.chat_url), env=UPSTREAM_ENV) as gateway:
        store = open_store(gateway.audit_store)
        try:
            assert record_applied(store, VersionEntry(version="01d01d01d01d", time=1.0, applied_by="startup",
                                                      content=old))
        finally:
            store.close()
        shown = admin(gateway, "GET", "/api/versions/01d01d01d01d")["content"]
    assert "x_old_store: \"<masked key_" in shown and "pg-query-secret" not in shown


def test_a_rollback_to_a_version_that_is_not_hex_or_is_ambiguous_is_a_400(upstream: ScriptedChatUpstream) -> None:
    # LIKE wildcards once matched the newest version, an ambiguous prefix silently picked it, and a NUL would
    # reach PostgreSQL's driver: each is now the request's fault, refused before the store is asked.
    from dragoman.loop.version_store import VersionEntry, record_applied
    from dragoman.observe.stores import open_store

    with run_gateway(config(upstream.chat_url), env=UPSTREAM_ENV) as gateway:
        store = open_store(gateway.audit_store)
        try:
            for i, version in enumerate(["abcdef111111", "abcdef222222"]):
                assert record_applied(store, VersionEntry(version=version, time=1.0 + i, applied_by="startup",
                                                          content=config(upstream.chat_url, note=version)))
        finally:
            store.close()
        text = config_path(gateway).read_text()
        for asked in ("%%%%%%", "______", "a%%%%%", "abcdef\u0000", "abcdef\u00e9", "abc"):
            refused = gateway.request("POST", "/api/rollback", {"version": asked}, {"x-api-key": ADMIN_KEY})
            assert refused.status == 400, (asked, refused.text)
            body = refused.json()
            assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
            assert "hex digits" in body["error"]["message"]
        ambiguous = gateway.request("POST", "/api/rollback", {"version": "abcdef"}, {"x-api-key": ADMIN_KEY})
        assert ambiguous.status == 400 and "abcdef111111, abcdef222222" in ambiguous.json()["error"]["message"]
        shown = gateway.request("GET", "/api/versions/abcdef", None, {"x-api-key": ADMIN_KEY})
        assert shown.status == 400 and "ambiguous" in shown.json()["error"]["message"]
        assert gateway.request("GET", "/api/versions/%25%25%25%25%25%25", None, {"x-api-key": ADMIN_KEY}).status == 404
        assert config_path(gateway).read_text() == text  # nothing rolled back
        assert admin(gateway, "GET", "/api/versions/abcdef2")["version"] == "abcdef222222"
