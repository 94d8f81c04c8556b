"""Signing in to the dashboard over plain HTTP: a form post of an admin key opens a signed session cookie; no page
and no admin API endpoint answers without a valid session or key; forged, expired and orphaned sessions are
refused; the key never travels in a URL or comes back in any answer."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from dragoman.ui.auth import admin_key_id
from tests.dashboard_gateway import (
    ADMIN_KEY, SIGNING_SECRET, USER_KEY, DashboardEnv, forged_session, raw_http, run_dashboard_gateway, session_cookie,
)

PAGES = ("/ui", "/ui/", "/ui/session", "/ui/static/app.js", "/ui/static/pages/costs.js",
         "/ui/static/vendor/uPlot.esm.js", "/ui/nothing-here")
API = ("/api/requests", "/api/costs", "/api/stats", "/api/routes", "/api/feed", "/api/costs.csv",
       "/api/keys", "/api/versions", "/api/no-such-endpoint")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardEnv]:
    with run_dashboard_gateway(tmp_path_factory.mktemp("dash")) as running:
        yield running


def test_signing_in_with_an_admin_key_sets_a_strict_session_cookie(env: DashboardEnv) -> None:
    response = raw_http(env.gateway, "POST", "/ui/login", urllib.parse.urlencode({"key": ADMIN_KEY}).encode(),
                        {"content-type": "application/x-www-form-urlencoded"})
    assert response.status == 303 and response.headers["location"] == "/ui/"
    cookie = response.headers["set-cookie"]
    attributes = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes and "Path=/" in attributes
    assert "Secure" not in attributes  # plain HTTP: a Secure cookie would never come back
    assert any(a.startswith("Max-Age=") and int(a[8:]) > 0 for a in attributes)
    token = session_cookie(response)
    assert token and ADMIN_KEY not in token
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert claims["key_id"] == admin_key_id(ADMIN_KEY) and claims["role"] == "admin"
    assert env.get("/ui/", token).status == 200


def test_a_json_sign_in_works_like_the_form(env: DashboardEnv) -> None:
    response = env.gateway.request("POST", "/ui/login", {"key": ADMIN_KEY})
    assert response.status == 303 and session_cookie(response)


@pytest.mark.parametrize("key", ["", "wrong-key", USER_KEY, ADMIN_KEY + "x"])
def test_a_key_that_is_not_an_admin_key_opens_no_session(env: DashboardEnv, key: str) -> None:
    response = raw_http(env.gateway, "POST", "/ui/login", urllib.parse.urlencode({"key": key}).encode(),
                        {"content-type": "application/x-www-form-urlencoded"})
    assert response.status == 303 and response.headers["location"] == "/ui/login?failed=1"
    assert "set-cookie" not in response.headers


def test_a_key_in_the_url_signs_nobody_in(env: DashboardEnv) -> None:
    response = env.get("/ui/login?key=" + ADMIN_KEY)
    assert response.status == 200 and "set-cookie" not in response.headers
    assert env.get("/ui/?key=" + ADMIN_KEY).status == 303


@pytest.mark.parametrize("path", PAGES)
def test_no_page_answers_without_a_session(env: DashboardEnv, path: str) -> None:
    response = env.get(path)
    if path in ("/ui", "/ui/"):
        assert response.status == 303 and response.headers["location"] == "/ui/login"
    else:
        assert response.status == 401, (path, response.status)
    assert response.body in (b"",) or b"authentication_error" in response.body


@pytest.mark.parametrize("path", API)
def test_no_api_endpoint_answers_without_a_session_or_key(env: DashboardEnv, path: str) -> None:
    response = env.get(path)
    assert response.status == 401 and response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("path", ["/api/requests", "/api/costs", "/api/stats", "/api/routes"])
def test_the_api_accepts_a_session_cookie_or_the_admin_key(env: DashboardEnv, path: str) -> None:
    token = env.login()
    assert env.get(path, token).status == 200
    assert env.get(path, **{"x-api-key": ADMIN_KEY}).status == 200
    assert env.get(path, **{"x-api-key": USER_KEY}).status == 403  # a developer's key: role user


def _refused_tokens() -> dict[str, str]:
    real_id = admin_key_id(ADMIN_KEY)
    now = time.time()
    valid = forged_session(real_id, "admin", 3600)
    payload, mac = valid.split(".")
    return {
        "expired": forged_session(real_id, "admin", 3600, now=now - 7200),
        "tampered": payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + mac,
        "signed with another key": _signed_elsewhere(real_id),
        "a key no longer configured": forged_session(admin_key_id("adm-removed-key"), "admin", 3600),
        "garbage": "not-a-token",
    }


def _signed_elsewhere(key_id: str) -> str:
    from dragoman.ui.session import SessionSigner

    return SessionSigner(b"another deployment's signing key").issue(key_id, "admin")[0]


@pytest.mark.parametrize("kind", ["expired", "tampered", "signed with another key", "a key no longer configured", "garbage"])
def test_a_bad_session_is_refused_everywhere(env: DashboardEnv, kind: str) -> None:
    token = _refused_tokens()[kind]
    assert env.get("/ui/", token).status == 303
    assert env.get("/ui/session", token).status == 401
    assert env.get("/api/costs", token).status == 401


def test_a_forged_session_for_the_live_key_is_accepted_only_because_it_is_signed(env: DashboardEnv) -> None:
    """The counterpart of the refusals above: the same token shape, signed with this deployment's key, works."""
    token = forged_session(admin_key_id(ADMIN_KEY), "admin", 3600)
    assert env.get("/api/costs", token).status == 200


def test_signing_out_clears_the_cookie(env: DashboardEnv) -> None:
    from tests.dashboard_gateway import csrf_for

    token = env.login()
    refused = raw_http(env.gateway, "POST", "/ui/logout", b"{}",
                       {"content-type": "application/json", "cookie": f"dragoman_session={token}"})
    assert refused.status == 403  # no CSRF token: a cross-site page cannot sign anyone out either
    response = raw_http(env.gateway, "POST", "/ui/logout", b"{}", {
        "content-type": "application/json", "cookie": f"dragoman_session={token}", "x-csrf-token": csrf_for(token)})
    assert response.status == 303 and response.headers["location"] == "/ui/login"
    assert response.headers["set-cookie"].startswith("dragoman_session=;") and "Max-Age=0" in response.headers["set-cookie"]


def test_a_sign_in_from_another_site_is_refused(env: DashboardEnv) -> None:
    response = raw_http(env.gateway, "POST", "/ui/login", urllib.parse.urlencode({"key": ADMIN_KEY}).encode(), {
        "content-type": "application/x-www-form-urlencoded", "origin": "http://evil.example"})
    assert response.status == 403 and "set-cookie" not in response.headers


def test_the_dashboard_own_origin_passes_the_request_guard(env: DashboardEnv) -> None:
    host = f"127.0.0.1:{env.gateway.port}"
    response = raw_http(env.gateway, "POST", "/ui/login", urllib.parse.urlencode({"key": ADMIN_KEY}).encode(), {
        "content-type": "application/x-www-form-urlencoded", "origin": f"http://{host}", "host": host})
    assert response.status == 303 and session_cookie(response)
    assert "access-control-allow-origin" not in response.headers
    # The exemption is for the dashboard's paths only: the Messages API still refuses a page's request.
    refused = env.gateway.request("POST", "/v1/messages", {}, {"origin": f"http://{host}", "host": host})
    assert refused.status == 403


def test_no_secret_in_any_page_or_session_answer(env: DashboardEnv) -> None:
    token = env.login()
    bodies = [env.get(path, token).body for path in ("/ui/", "/ui/login", "/ui/session")]
    bodies += [env.get("/ui/static/" + name, token).body for name in _static_files()]
    for body in bodies:
        for secret in (ADMIN_KEY, USER_KEY, SIGNING_SECRET, "sk-upstream"):
            assert secret.encode() not in body


def _static_files() -> list[str]:
    root = Path(__file__).resolve().parent.parent / "dragoman" / "ui" / "static"
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
