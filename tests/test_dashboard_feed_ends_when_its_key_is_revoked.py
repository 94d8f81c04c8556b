"""A live feed lives only as long as the key that opened it holds its role (like every session, ui/auth.py):
revoking the key ends an open feed, opened by key header or by session, instead of streaming every later
request to someone who no longer may read them."""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Iterator

import pytest

from tests.dashboard_gateway import ADMIN_KEY, DashboardEnv, run_dashboard_gateway, session_cookie


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardEnv]:
    with run_dashboard_gateway(tmp_path_factory.mktemp("dash")) as running:
        yield running


def _viewer(env: DashboardEnv) -> dict:
    made = env.gateway.request("POST", "/api/keys", {"developer": "vee", "role": "viewer"}, {"x-api-key": ADMIN_KEY})
    assert made.status == 200, made.text
    return made.json()


def _open(env: DashboardEnv, headers: dict[str, str]) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", env.gateway.port, timeout=10)
    conn.request("GET", "/api/feed", headers=headers)
    response = conn.getresponse()
    assert response.status == 200
    assert response.readline() == b"retry: 2000\n"
    return conn, response


def _ends(response: http.client.HTTPResponse) -> bool:
    """Read until the feed closes (True); a timeout (the feed still open) raises."""
    while response.readline():
        pass
    return True


@pytest.mark.parametrize("by", ["key", "session"])
def test_an_open_feed_ends_when_its_key_is_revoked(env: DashboardEnv, by: str) -> None:
    viewer = _viewer(env)
    if by == "key":
        headers = {"x-api-key": viewer["key"]}
    else:
        signed = env.gateway.request("POST", "/ui/login", urllib.parse.urlencode({"key": viewer["key"]}),
                                     {"content-type": "application/x-www-form-urlencoded"})
        headers = {"cookie": f"dragoman_session={session_cookie(signed)}"}
    conn, response = _open(env, headers)
    try:
        revoked = env.gateway.request("POST", f"/api/keys/{viewer['id']}/revoke", {}, {"x-api-key": ADMIN_KEY})
        assert revoked.status == 200, revoked.text
        assert _ends(response)
    finally:
        conn.close()
