"""`admin.keys` follow a hot reload like the rest of the config (README, "Hot reload": only the audit, metrics,
tracing and the server's connection limits wait for a restart). After SIGHUP a key taken out of `admin.keys` is
refused at once and every dashboard session it opened ends, an open live feed included; a key put in works at
once; keys kept, and DRAGOMAN_ADMIN_KEYS', keep working. The admin API used to read `admin.keys` once at start,
so a leaked key removed from the file kept working and its sessions stayed alive, though the log said "config
reloaded"."""

from __future__ import annotations

import http.client
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.dashboard_gateway import ADMIN_KEY, DashboardEnv, run_dashboard_gateway
from tests.routing_helpers import write_keeping_stamp
from tests.waiting import wait_for

LEAKED = "adm-leaked-3b6f0e51cc"
ADDED = "adm-placed-90e4d7b2f3"  # as long as LEAKED: the rewrite keeps the file's size, so only SIGHUP sees it
FROM_ENV = "adm-from-env-5c2a8d1e47"
RELOADED = "config reloaded from"


@dataclass
class Reloaded:
    env: DashboardEnv
    leaked_session: str  # opened with LEAKED before the reload
    kept_session: str  # opened with ADMIN_KEY, which the reload keeps
    feed: http.client.HTTPResponse  # a live feed LEAKED's session opened before the reload


def _api(env: DashboardEnv, key: str | None = None, cookie: str | None = None) -> int:
    headers = {} if key is None else {"x-api-key": key}
    return env.get("/api/requests?limit=1", cookie, **headers).status


def _open_feed(env: DashboardEnv, cookie: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", env.gateway.port, timeout=10)
    conn.request("GET", "/api/feed", headers={"cookie": f"dragoman_session={cookie}"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.readline() == b"retry: 2000\n"
    return conn, response


def _reload_by_sighup(env: DashboardEnv, old: str, new: str) -> None:
    """Swap key `old` for `new` in the config file and send SIGHUP; return once the gateway logged the reload."""
    path = env.gateway.stderr_path.parent / "dragoman.yaml"
    text = path.read_text()
    assert text.count(old) == 1 and len(old) == len(new)
    write_keeping_stamp(path, text.replace(old, new))
    before = env.gateway.stderr_text().count(RELOADED)
    os.kill(env.gateway.proc.pid, signal.SIGHUP)
    wait_for(lambda: env.gateway.stderr_text().count(RELOADED) > before, 20, "the reload's log line",
             alive=env.gateway.proc, log=env.gateway.stderr_text)


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reloaded]:
    with run_dashboard_gateway(tmp_path_factory.mktemp("dash"), admin_keys=(ADMIN_KEY, LEAKED),
                               extra_env={"DRAGOMAN_ADMIN_KEYS": FROM_ENV}) as env:
        leaked_session, kept_session = env.login(LEAKED), env.login(ADMIN_KEY)
        assert leaked_session and kept_session
        assert (_api(env, LEAKED), _api(env, ADDED)) == (200, 401), "before the reload"
        conn, feed = _open_feed(env, leaked_session)
        try:
            _reload_by_sighup(env, LEAKED, ADDED)
            yield Reloaded(env, leaked_session, kept_session, feed)
        finally:
            conn.close()


def test_a_key_removed_from_admin_keys_is_refused_after_a_reload(reloaded: Reloaded) -> None:
    assert _api(reloaded.env, LEAKED) == 401
    assert reloaded.env.login(LEAKED) is None


def test_the_sessions_of_a_removed_key_end_with_the_reload(reloaded: Reloaded) -> None:
    env, cookie = reloaded.env, reloaded.leaked_session
    assert _api(env, cookie=cookie) == 401
    assert env.get("/ui/session", cookie).status == 401
    page = env.get("/ui/", cookie)
    assert page.status == 303 and page.headers["location"] == "/ui/login"


def test_a_live_feed_the_removed_key_opened_ends(reloaded: Reloaded) -> None:
    while reloaded.feed.readline():  # the feed closes; a feed left open ends the read by the 10 s timeout
        pass


def test_a_key_added_to_admin_keys_works_after_a_reload(reloaded: Reloaded) -> None:
    env = reloaded.env
    assert _api(env, ADDED) == 200
    session = env.login(ADDED)
    assert session is not None and _api(env, cookie=session) == 200


def test_keys_kept_and_keys_from_the_environment_keep_working(reloaded: Reloaded) -> None:
    env = reloaded.env
    assert _api(env, ADMIN_KEY) == 200 and _api(env, FROM_ENV) == 200
    assert _api(env, cookie=reloaded.kept_session) == 200


def test_the_reload_logs_no_traceback(reloaded: Reloaded) -> None:
    log = reloaded.env.gateway.stderr_text()
    assert RELOADED in log and "Traceback" not in log, log[-3000:]
