"""deploy/compose.yaml runs what the issue asks: two gateway instances built from the Dockerfile, a load balancer
(nginx) routing to both with Server-Sent Events passed through unbuffered, PostgreSQL as the shared store, Redis
for the counters, a healthcheck on every service and start order on health; secrets only in an env file that git
ignores. The files are parsed (YAML; nginx.conf by NGINX's own parser) and their structure asserted."""

from __future__ import annotations

import re
import subprocess

import pytest

from dragoman.serving import HARD_STOP_MARGIN
from tests.deploy_files import (
    DEPLOY,
    ROOT,
    compose,
    directive_args,
    find_block,
    nginx_directives,
    seconds,
    team_config,
)


GATEWAYS = ("gateway-1", "gateway-2")


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return compose()["services"]


def _arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_two_gateways_from_the_dockerfile_with_the_team_config(services: dict[str, dict]) -> None:
    for name in GATEWAYS:
        gateway = services[name]
        assert (DEPLOY / gateway["build"]["context"] / gateway["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile"
        command = gateway["command"]
        assert command[0] == "serve" and _arg(command, "--host") == "0.0.0.0"
        config_in_container = _arg(command, "--config")
        mounts = [v.split(":") for v in gateway["volumes"]]
        assert [(DEPLOY / host).resolve() for host, target, *_ in mounts if target == config_in_container] == \
            [DEPLOY / "dragoman.yaml"]


def test_gateways_share_postgresql_and_wait_for_it_and_redis(services: dict[str, dict]) -> None:
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith(("redis:", "valkey/valkey:"))
    for name in GATEWAYS:
        store = services[name]["environment"]["DRAGOMAN_AUDIT_STORE"]
        assert store.startswith("postgresql://") and "@postgres:5432/" in store
        assert services[name]["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                                "redis": {"condition": "service_healthy"}}


def test_every_service_has_a_healthcheck(services: dict[str, dict]) -> None:
    assert set(services) == {*GATEWAYS, "lb", "postgres", "redis"}
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    for name in GATEWAYS:
        assert "/healthz" in " ".join(services[name]["healthcheck"]["test"])


def test_load_balancer_starts_once_both_gateways_are_healthy_and_routes_to_both(services: dict[str, dict]) -> None:
    lb = services["lb"]
    assert lb["image"].startswith("nginx:")
    assert lb["depends_on"] == {name: {"condition": "service_healthy"} for name in GATEWAYS}
    mounts = dict(v.split(":")[:2] for v in lb["volumes"])
    assert (DEPLOY / next(h for h, t in mounts.items() if t == "/etc/nginx/nginx.conf")).resolve() == DEPLOY / "nginx.conf"
    http = find_block(nginx_directives(), ("http",))
    upstream_name = directive_args(find_block(http, ("server",), ("location", "/")), "proxy_pass")[0][0]
    upstream = find_block(http, ("upstream", upstream_name.removeprefix("http://")))
    servers = {args[0] for args in directive_args(upstream, "server")}
    ports = {_arg(services[name]["command"], "--port") for name in GATEWAYS}
    assert servers == {f"{name}:{port}" for name in GATEWAYS for port in ports}


def test_nginx_passes_streams_through_unbuffered_and_outwaits_the_upstreams() -> None:
    location = find_block(nginx_directives(), ("http",), ("server",), ("location", "/"))
    settings = {d["directive"]: d["args"] for d in location}
    assert settings["proxy_buffering"] == ["off"]  # each SSE event goes out when the gateway writes it
    assert settings["proxy_request_buffering"] == ["off"]
    assert settings["proxy_http_version"] == ["1.1"] and settings["proxy_set_header"]  # keepalive upstream
    config = team_config()
    longest_wait = max(max(r.timeouts.first_byte, r.timeouts.idle) for r in config.routes)
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        assert seconds(settings[timeout][0]) > longest_wait, timeout  # the gateway ends a stalled call, not nginx
    body_limit = settings["client_max_body_size"][0]
    assert int(body_limit.removesuffix("m")) * 1024 * 1024 > config.server.max_body_bytes  # the gateway says 413
    assert "non_idempotent" not in settings["proxy_next_upstream"]  # a POST that reached a gateway is never re-sent


def test_stop_grace_period_covers_the_gateways_drain(services: dict[str, dict]) -> None:
    drain = team_config().server.shutdown_timeout
    for name in GATEWAYS:
        assert seconds(services[name]["stop_grace_period"]) >= drain + HARD_STOP_MARGIN


def test_secrets_come_from_an_ignored_env_file_with_a_committed_example(services: dict[str, dict]) -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    example = (DEPLOY / ".env.example").read_text()
    example_vars = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    assert set(re.findall(r"\$\{([A-Z_]+)", text)) <= example_vars  # every ${VAR} compose substitutes
    for name in ("OPENAI_PROD", "DRAGOMAN_API_KEYS", "DRAGOMAN_ADMIN_KEYS", "DRAGOMAN_SIGNING_KEY"):
        assert name in example_vars, name  # what the gateways need besides the store
    for name in GATEWAYS:
        assert services[name]["env_file"] == [".env"]
    ignored = subprocess.run(["git", "check-ignore", "-q", "deploy/.env"], cwd=ROOT)
    assert ignored.returncode == 0, "deploy/.env must be git-ignored"
    # No secret written into compose.yaml: secret-named variables and URL passwords are ${...} substitutions.
    substitution = r"\$\{[A-Z_]+(?::?[?-][^}]*)?\}"
    for name, service in services.items():
        for var, value in (service.get("environment") or {}).items():
            if re.search(r"(?i)password|key|token|secret", var):
                assert re.fullmatch(substitution, str(value)), f"{name}: {var}"
            userinfo = re.match(r"\w+://([^@/]*)@", str(value))
            if userinfo and ":" in userinfo[1]:
                assert re.fullmatch(substitution, userinfo[1].split(":", 1)[1]), f"{name}: {var}"
