"""The gateway the dashboard tests share: audit records seeded through the store API before it starts (so every
page has data), an admin key, a gateway key, and a scripted upstream for requests made during a test."""

from __future__ import annotations

import contextlib
import http.client
import re
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dragoman.observe.record import AuditRecord, Candidate
from dragoman.observe.stores import open_store
from tests.audit_helpers import ENV, config, route
from tests.gateway import Gateway, RawResponse, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream

ADMIN_KEY = "adm-dash-secret-4b1e7a90"
USER_KEY = "sk-gw-dash-secret-77c2d1"
SIGNING_SECRET = "dashboard-test-signing-secret-32chars"  # DRAGOMAN_SIGNING_KEY: tests forge expired sessions with it
ROUTE = "main"
DEVELOPERS = ("ana", "bo", "cy")
REPOS = ("shop", "infra")


def seed_records(now: float) -> list[AuditRecord]:
    """Thirty records over the last 20 hours: three developers, two repos, two routes, some errors and verdicts."""
    records = []
    for i in range(30):
        failed = i % 7 == 3
        records.append(AuditRecord(
            time=now - 72_000 + i * 2400, request_id=f"req_seed{i:04d}", key_id="team-key", developer=DEVELOPERS[i % 3],
            team="web" if i % 3 else "platform", repo=REPOS[i % 2], requested_model="claude-sonnet-4-5",
            policy="size_policy" if i % 2 else None, branch="if input_tokens < 8000" if i % 2 else None,
            route=ROUTE if i % 4 else "backup", upstream_model="gpt-5", provider="openai",
            status=502 if failed else 200, error_type="api_error" if failed else None, stream=bool(i % 2),
            latency_total_ms=900.0 + i, ttfb_ms=300.0, upstream_ms=899.0, overhead_ms=0.2 + (i % 5) * 0.1,
            input_tokens=1000 + i * 10, output_tokens=200 + i, cost_usd=None if failed else round(0.001 * (i + 1), 6),
            candidates=[Candidate(route=ROUTE, upstream="127.0.0.1", model="gpt-5", outcome="error" if failed else "ok",
                                  status=502 if failed else 200, latency_ms=899.0)],
            notes=["cache_control dropped"] if i % 5 == 0 else [], tool_calls=i % 3,
            verdict=None if failed else ("fail" if i % 6 == 0 else "pass"),
            verdict_kinds=["unknown_tool"] if i % 6 == 0 and not failed else [],
            verdict_detail="tool 'Edti' is not in the request's tools" if i % 6 == 0 and not failed else None,
            shape="tool_use", config_version="v1"))
    return records


@dataclass
class DashboardEnv:
    gateway: Gateway
    store: str
    upstream: ScriptedChatUpstream
    seeded: list[AuditRecord]

    def login(self, key: str = ADMIN_KEY) -> str | None:
        """POST the sign-in form; the session cookie's value, or None when refused."""
        response = self.gateway.request("POST", "/ui/login", urllib.parse.urlencode({"key": key}),
                                        {"content-type": "application/x-www-form-urlencoded"})
        assert response.status == 303, response.text
        return session_cookie(response)

    def get(self, path: str, cookie: str | None = None, **headers: str) -> RawResponse:
        if cookie is not None:
            headers["cookie"] = f"dragoman_session={cookie}"
        return self.gateway.request("GET", path, None, headers)


def session_cookie(response: RawResponse) -> str | None:
    match = re.match(r"dragoman_session=([^;]*)", response.headers.get("set-cookie", ""))
    return match.group(1) if match and match.group(1) else None


@contextlib.contextmanager
def run_dashboard_gateway(data_dir: Path, store: str | None = None, extra_yaml: str = "",
                          admin_keys: Sequence[str] = (ADMIN_KEY,),
                          extra_env: Mapping[str, str] | None = None) -> Iterator[DashboardEnv]:
    """The gateway on `store` (default: SQLite under `data_dir`), seeded before it starts; `extra_yaml` is
    appended to its config (top-level blocks), `admin_keys` are its `admin.keys`, `extra_env` joins its
    environment."""
    store = store or f"sqlite:///{data_dir}/audit.db"
    seeded = seed_records(time.time())
    seed = open_store(store)
    try:
        seed.write(seeded)
    finally:
        seed.close()
    reply = ChatReply(text="Hello from upstream", usage=(1200, 300, 200), model="gpt-5-2025-08-07")
    with ScriptedChatUpstream(lambda body: reply) as upstream:
        routes = [route(ROUTE, upstream.base_url, pricing={"input": 2.0, "cached_input": 0.5, "output": 8.0}),
                  route("backup", upstream.base_url, model="gpt-5-mini")]
        text = config(routes, store=store, admin=list(admin_keys), default_route=ROUTE,
                      keys=[{"id": "dash-user", "key": USER_KEY, "developer": "dee", "repo": "live"}]) + extra_yaml
        env = {**ENV, "DRAGOMAN_AUDIT_STORE": "", "DRAGOMAN_SIGNING_KEY": SIGNING_SECRET, **(extra_env or {})}
        with run_gateway(text, env=env) as gateway:
            yield DashboardEnv(gateway, store, upstream, seeded)


def raw_http(gateway: Gateway, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> RawResponse:
    """An exchange with exactly these headers (Gateway.request always adds a JSON content-type)."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def forged_session(key_id: str, role: str, seconds: float, now: float | None = None) -> str:
    """A session token signed as the test gateway signs them (DRAGOMAN_SIGNING_KEY), issued at `now`."""
    from dragoman.signing_key import signing_key
    from dragoman.ui.session import SessionSigner

    key = signing_key({"DRAGOMAN_SIGNING_KEY": SIGNING_SECRET})
    signer = SessionSigner(key, (lambda: now) if now is not None else time.time)
    return signer.issue(key_id, role, seconds)[0]


def csrf_for(token: str) -> str:
    from dragoman.signing_key import signing_key
    from dragoman.ui.session import SessionSigner

    return SessionSigner(signing_key({"DRAGOMAN_SIGNING_KEY": SIGNING_SECRET})).csrf(token)
