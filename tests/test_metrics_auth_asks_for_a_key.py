"""`metrics.auth: key` puts GET /metrics behind a key: an admin or viewer key, or the scrape key that
`metrics.scrape_key_ref` names (a secret reference, like api_key_ref), sent as x-api-key or `Authorization:
Bearer` (Prometheus' `authorization` / `bearer_token_file`). A scrape without a key, or with an unknown one, is
401; a user key is 403. The default, `auth: none`, leaves /metrics open, as Prometheus scrapers expect. A reload
applies it at once (as `admin.keys`): a gateway reloaded from open to `auth: key` refuses the next keyless scrape.
Every mistake in these keys is refused at load with file and line. Before, /metrics had no way to ask for a key
(review 6, finding 5) and `metrics.auth` was an unknown field."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from dragoman.config.load import parse_config
from dragoman.config.model import Config
from dragoman.config.restart import needing_restart
from dragoman.errors import ConfigError
from dragoman.startup_report import startup_lines
from tests.audit_helpers import ADMIN_KEY, ALICE, ALICE_KEY, ENV, route
from tests.gateway import Gateway, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.virtual_keys_helpers import create
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

SCRAPE_KEY = "prom-scrape-secret-2c9e71"
RELOADED = "config reloaded from"
REFUSED = "config reload failed"
ROUTES = 'routes:\n  - {name: a, upstream: {provider: openai_compatible, model: m, endpoint: "http://127.0.0.1:1/v1"}}\n'


# ---- over real sockets ---------------------------------------------------------------------------------------


@dataclass
class Guarded:
    gateway: Gateway
    open_status: int  # a keyless scrape before the reload (auth: none)
    reload_log: str  # what the gateway logged about the reload
    viewer_key: str

    def scrape(self, **headers: str) -> int:
        return self.gateway.request("GET", "/metrics", headers=headers).status


def _config(upstream: ScriptedChatUpstream, store: str, metrics: dict | None = None) -> str:
    """No `metrics` block: the defaults (open)."""
    return yaml.safe_dump({
        "default_route": "r", "auth": {"keys": [ALICE]}, "admin": {"keys": [ADMIN_KEY]},
        "audit": {"flush_interval": 0.05, "store": store}, **({"metrics": metrics} if metrics else {}),
        "secrets": {"prometheus": {"file": "scrape.key"}}, "routes": [route("r", upstream.chat_url)],
    }, sort_keys=False)


def _reloads(log: str) -> int:
    """Reloads the gateway logged, applied or refused (a refused one keeps the old config serving)."""
    return log.count(RELOADED) + log.count(REFUSED)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    store = f"sqlite:///{tmp_path_factory.mktemp('metrics-auth')}/audit.db"
    with ScriptedChatUpstream(lambda _: ChatReply(text="ok", usage=(10, 5, 0))) as upstream:
        with run_gateway(_config(upstream, store), env={**ENV, "DRAGOMAN_AUDIT_STORE": ""}) as gw:
            open_status = gw.request("GET", "/metrics").status
            viewer = create(store, "--developer", "lead", "--role", "viewer")["key"]
            path = gw.stderr_path.parent / "dragoman.yaml"
            (path.parent / "scrape.key").write_text(SCRAPE_KEY + "\n")
            path.write_text(_config(upstream, store, {"auth": "key", "scrape_key_ref": "prometheus"}))
            before = _reloads(gw.stderr_text())
            os.kill(gw.proc.pid, signal.SIGHUP)
            wait_for(lambda: _reloads(gw.stderr_text()) > before, 20, "the reload's log line",
                     alive=gw.proc, log=gw.stderr_text)
            yield Guarded(gw, open_status, gw.stderr_text(), viewer)


def test_metrics_are_open_by_default(guarded: Guarded) -> None:
    assert guarded.open_status == 200


def test_with_auth_key_a_scrape_without_a_key_is_401(guarded: Guarded) -> None:
    assert guarded.scrape() == 401
    assert guarded.scrape(**{"x-api-key": "prom-scrape-secret-wrong0"}) == 401
    assert guarded.scrape(authorization="Bearer prom-scrape-secret-wrong0") == 401


def test_with_auth_key_the_scrape_key_an_admin_or_a_viewer_key_is_200(guarded: Guarded) -> None:
    assert guarded.scrape() == 401  # auth is on: what follows opens it, not an open /metrics
    assert guarded.scrape(authorization=f"Bearer {SCRAPE_KEY}") == 200
    assert guarded.scrape(**{"x-api-key": SCRAPE_KEY}) == 200
    assert guarded.scrape(**{"x-api-key": ADMIN_KEY}) == 200
    assert guarded.scrape(**{"x-api-key": guarded.viewer_key}) == 200


def test_with_auth_key_a_user_key_is_403(guarded: Guarded) -> None:
    assert guarded.scrape(**{"x-api-key": ALICE_KEY}) == 403


def test_the_reload_applied_auth_at_once_and_says_no_restart_is_needed(guarded: Guarded) -> None:
    assert RELOADED in guarded.reload_log and REFUSED not in guarded.reload_log
    assert "next restart" not in guarded.reload_log
    assert SCRAPE_KEY not in guarded.reload_log


def test_the_scrape_key_opens_nothing_but_metrics(guarded: Guarded) -> None:
    assert guarded.gateway.request("GET", "/api/budgets", headers={"x-api-key": SCRAPE_KEY}).status == 401
    answer = guarded.gateway.request("POST", "/v1/messages", {"model": "r", "max_tokens": 8, "messages": []},
                                     headers={"x-api-key": SCRAPE_KEY, "anthropic-version": "2023-06-01"})
    assert answer.status == 401


# ---- at load -------------------------------------------------------------------------------------------------


def _load(metrics: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(ROUTES + "metrics:\n" + metrics, "gw.yaml", env or {})


def test_the_scrape_key_is_read_from_its_secret_reference() -> None:
    assert _load("  auth: key\n  scrape_key_ref: prom\n", {"PROM": SCRAPE_KEY}).metrics_key == SCRAPE_KEY
    assert _load("  auth: key\n").metrics_key is None  # admin and viewer keys only
    assert _load("  enabled: true\n").observe.metrics.auth == "none"


def test_the_startup_report_says_whether_metrics_ask_for_a_key() -> None:
    for block, said in (("  auth: none\n", "metrics: on at /metrics;"),
                        ("  auth: key\n", "metrics: on at /metrics (admin, viewer or scrape key);")):
        config = _load(block)
        assert said in "\n".join(startup_lines(config, config.observe))


MISTAKES = {
    "unknown-value": ("  auth: admin\n", 4, 'metrics.auth: "admin" is not one of: none, key'),
    "not-text": ("  auth: true\n", 4, "metrics.auth: Expected str, got bool"),
    "null": ("  auth:\n", 4, "metrics.auth: Expected str, got null"),
    "auth-on-metrics-off": ("  enabled: false\n  auth: key\n", 5, "metrics.auth: metrics are off"),
    "scrape-key-without-auth": ("  scrape_key_ref: prom\n", 4, "metrics.scrape_key_ref: a scrape key is only "
                                "asked for with auth: key"),
    "scrape-key-empty": ("  auth: key\n  scrape_key_ref: ' '\n", 5, "metrics.scrape_key_ref: scrape_key_ref must "
                         "name a secret"),
    "scrape-key-unset": ("  auth: key\n  scrape_key_ref: prom\n", 5, "metrics.scrape_key_ref: env var PROM is not "
                         "set or empty"),
    "unknown-field": ("  auth: key\n  scrape_key: x\n", 5, 'unknown field "scrape_key"'),
}


@pytest.mark.parametrize(("block", "line", "message"), MISTAKES.values(), ids=MISTAKES.keys())
def test_mistakes_in_metrics_auth_are_refused_with_file_and_line(block: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(block)
    found = re.match(r"^gw\.yaml:(\d+): (.*)$", str(info.value), re.DOTALL)
    assert found, f"error not located: {info.value}"
    assert message in found[2]
    assert int(found[1]) == line, found[2]


def test_a_reload_changing_who_may_scrape_needs_no_restart_but_turning_metrics_off_does() -> None:
    open_, guarded = _load("  auth: none\n"), _load("  auth: key\n  scrape_key_ref: prom\n", {"PROM": SCRAPE_KEY})
    assert needing_restart(open_, guarded) == []
    assert needing_restart(open_, _load("  enabled: false\n")) == ["metrics.enabled"]
