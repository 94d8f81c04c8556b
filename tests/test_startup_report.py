"""`dragoman serve` says what it is doing, once, at start: each route's provider, model and host (never a key),
how model names map, where the audit store is (a PostgreSQL password never shown), whether inbound keys are
required and how many, and whether metrics and tracing are on. With --workers N it is said once, not per worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import yaml

from dragoman.config.load import parse_config, zero_config
from dragoman.config.observe import AuditSettings, ObserveSettings, TracingSettings
from dragoman.startup_report import startup_lines
from tests.waiting import wait_for
from tests.gateway import Gateway, run_gateway
from tests.upstreams import ScriptedChatUpstream

UPSTREAM_SECRET = "sk-upstream-never-printed-5a1c"
INBOUND_KEYS = ("sk-inbound-never-printed-1", "sk-inbound-never-printed-2")
PG_PASSWORD = "pg-password-never-printed"


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream() as up:
        yield up


def _config(upstream: ScriptedChatUpstream, store: Path) -> str:
    return yaml.safe_dump({
        "default_route": "big",
        "model_routes": [{"match": "claude-*haiku*", "route": "small"}],
        "auth": {"keys": list(INBOUND_KEYS)},
        "audit": {"store": f"sqlite:///{store}"},
        "routes": [
            {"name": "big", "upstream": {"provider": "openai", "model": "gpt-5", "endpoint": upstream.chat_url,
                                         "api_key_ref": "upstream_secret"}},
            {"name": "small", "upstream": {"provider": "openai_compatible", "model": "qwen3",
                                           "endpoint": "http://127.0.0.1:9/v1/responses"}},
        ],
    }, sort_keys=False)


def _block(gateway: Gateway) -> list[str]:
    """The startup block's lines in the gateway's stderr."""
    lines = gateway.stderr_text().splitlines()
    starts = [i for i, line in enumerate(lines) if " starting with " in line]  # whichever process logged it
    assert len(starts) == 1, gateway.stderr_text()
    assert " INFO dragoman: starting with " in lines[starts[0]]
    block = [lines[starts[0]].split(" INFO dragoman: ", 1)[1]]
    for line in lines[starts[0] + 1:]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    return block


def test_startup_block_names_routes_mapping_store_keys_and_telemetry(
    upstream: ScriptedChatUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "audit.db"
    with run_gateway(_config(upstream, store), env={"UPSTREAM_SECRET": UPSTREAM_SECRET}) as gateway:
        block = _block(gateway)
        text = gateway.stderr_text()
    assert block[0].startswith("starting with config ") and block[0].endswith("dragoman.yaml")
    assert block[1:] == [
        f"route big -> openai gpt-5 at 127.0.0.1:{upstream.port} (chat)",
        "route small -> openai_compatible qwen3 at 127.0.0.1:9 (responses, no key)",
        "a route's own name -> that route",
        "model claude-*haiku* -> small",
        "any other model -> big",
        f"audit: SQLite {store}",
        "inbound keys: required (2 keys and virtual keys)",
        "metrics: on at /metrics; tracing: off",
    ]
    for secret in (UPSTREAM_SECRET, *INBOUND_KEYS):
        assert secret not in text


def test_zero_config_block_shows_the_model_mapping_and_the_data_directory(upstream: ScriptedChatUpstream) -> None:
    env = {"OPENAI_BASE_URL": upstream.base_url, "OPENAI_API_KEY": UPSTREAM_SECRET, "DRAGOMAN_DEFAULT_MODEL": "",
           "DRAGOMAN_SMALL_MODEL": "gpt-5-nano", "DRAGOMAN_AUDIT_STORE": ""}
    with run_gateway(None, env=env) as gateway:
        block = _block(gateway)
        data_home = gateway.stderr_path.parent / "data"
        text = gateway.stderr_text()
    host = f"127.0.0.1:{upstream.port}"
    assert block[0].startswith("starting with zero-config (no --config;")
    assert block[1:] == [
        f"route gpt-5-via-gateway -> openai gpt-5 at {host} (chat)",
        f"route gpt-5-mini-via-gateway -> openai gpt-5-nano at {host} (chat)",
        f"route openai -> openai (the requested name, verbatim) at {host} (chat)",
        "a route's own name -> that route",
        "model *haiku* -> gpt-5-mini-via-gateway",
        "model claude-* -> gpt-5-via-gateway",
        "any other model -> openai",
        f"audit: SQLite {data_home / 'dragoman' / 'dragoman.db'}",
        "inbound keys: not required (any client that reaches the port may call) until a virtual key is made "
        "(dragoman keys create)",
        "metrics: on at /metrics; tracing: off",
    ]
    assert UPSTREAM_SECRET not in text


def _workers_with_the_store_open(supervisor: int, store: Path) -> int:
    """How many child processes of `supervisor` hold `store` open: a worker opens it at the end of its startup."""
    try:
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    except OSError:
        return 0
    count = 0
    for child in children:
        try:
            fds = os.listdir(f"/proc/{child}/fd")
            count += any(os.readlink(f"/proc/{child}/fd/{fd}") == str(store) for fd in fds)
        except OSError:
            continue
    return count


def test_with_workers_the_block_is_said_once(upstream: ScriptedChatUpstream, tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    with run_gateway(_config(upstream, store), env={"UPSTREAM_SECRET": UPSTREAM_SECRET},
                     args=("--workers", "2")) as gateway:
        wait_for(lambda: _workers_with_the_store_open(gateway.proc.pid, store) >= 2, 15,
                 "both workers past their startup (each has the store open)", alive=gateway.proc,
                 log=gateway.stderr_text)
        block = _block(gateway)  # asserts the block is there exactly once
    assert block[0].endswith("dragoman.yaml, 2 workers")


def test_postgres_store_is_shown_without_its_password() -> None:
    url = f"postgresql://audit:{PG_PASSWORD}@db.internal:5433/dragoman?sslmode=require&password={PG_PASSWORD}"
    observe = ObserveSettings(audit=AuditSettings(store=url),
                              tracing=TracingSettings(enabled=True, otlp_endpoint="http://otel:4318/v1/traces"))
    lines = startup_lines(zero_config({}), observe)
    assert "  audit: PostgreSQL audit@db.internal:5433/dragoman" in lines
    assert "  metrics: on at /metrics; tracing: on, OTLP to otel:4318" in lines
    assert PG_PASSWORD not in "\n".join(lines)


def test_audit_off_and_an_endpoint_with_credentials_show_no_secret() -> None:
    config = parse_config(
        "routes:\n  - name: local\n    upstream: {provider: openai_compatible, model: m,"
        " endpoint: 'http://user:hunter2@10.0.0.5:8000/v1'}\n", "inline.yaml", {})
    observe = msgspec.structs.replace(ObserveSettings(), audit=AuditSettings(enabled=False))
    lines = startup_lines(config, observe)
    assert "  route local -> openai_compatible m at 10.0.0.5:8000 (chat, no key)" in lines
    assert "  audit: off" in lines and "  any other model -> 404 not_found_error" in lines
    traced = msgspec.structs.replace(observe, tracing=TracingSettings(enabled=True))
    assert "  metrics: on at /metrics; tracing: on, but no otlp_endpoint: spans are not exported" in startup_lines(
        config, traced)
    assert "hunter2" not in "\n".join(lines)


def test_a_store_holding_a_virtual_key_makes_the_block_say_keys_are_required(
    upstream: ScriptedChatUpstream, tmp_path: Path
) -> None:
    """A virtual key in the store refuses every keyless call, so the block says keys are required (it said "not
    required … until a virtual key is made" from the config alone, while a keyless call got a 401)."""
    import subprocess
    import sys

    env = {"OPENAI_BASE_URL": upstream.base_url, "OPENAI_API_KEY": UPSTREAM_SECRET, "DRAGOMAN_AUDIT_STORE": "",
           "XDG_DATA_HOME": str(tmp_path / "data")}
    with run_gateway(None, env=env):
        pass  # the gateway makes the store; `dragoman keys create` only writes into one
    made = subprocess.run([sys.executable, "-m", "dragoman", "keys", "create", "--developer", "ana"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    with run_gateway(None, env=env) as gateway:
        block = _block(gateway)
        keyless = gateway.request("POST", "/v1/messages", {"model": "gpt-5", "max_tokens": 5,
                                                            "messages": [{"role": "user", "content": "hi"}]})
    assert "inbound keys: required (1 virtual key)" in block, "\n".join(block)
    assert keyless.status == 401
