"""The gateway the audit record tests share (tests/test_audit_records_*.py): five routes on a good and a failing
scripted upstream (priced by an override, by the built-in table, a ledger route, one that falls back, one that
is down), a routing policy, client keys with and without an identity, an admin key, and the audit store on
SQLite or on PostgreSQL (tests/observe_pg.py: when PostgreSQL is missing the postgres cases FAIL with the
install command, they never skip). The `audit_env` fixture in conftest.py starts one per module and store."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.audit_helpers import (
    ADMIN_KEY,
    ALICE,
    BUILTIN,
    ENV,
    OVERRIDE,
    PLAIN_KEY,
    POLICY,
    POLICY_RULE,
    PRICED,
    config,
    headers,
    route,
)
from tests.gateway import Gateway, RawResponse, run_gateway
from tests.observe_pg import cluster
from tests.upstreams import ChatReply, ErrorReply, ScriptedChatUpstream

USAGE = (1200, 300, 200)  # upstream prompt_tokens, completion_tokens, cached_tokens → input 1000, cache read 200
LEDGER = {"input": 3.0, "cached_input": 0.3, "output": 12.0}
CHUNK_DELAY = 0.04
BOOM = "The server had an error"


def dated(model: str) -> str:
    """The model name the scripted upstream reports back: a dated snapshot of what was asked for."""
    return f"{model}-2025-08-07"


def answer(body: dict) -> ChatReply:
    return ChatReply(text="Hello from upstream", usage=USAGE, model=dated(body.get("model", "x")),
                     chunk_delay=CHUNK_DELAY)


@dataclass
class AuditEnv:
    gateway: Gateway
    store: str
    good: ScriptedChatUpstream
    bad: ScriptedChatUpstream
    kind: str


@contextlib.contextmanager
def run_audit_gateway(kind: str, data_dir: Path) -> Iterator[AuditEnv]:
    """The gateway with its store of `kind` (sqlite | postgres), a SQLite file going under `data_dir`."""
    if kind == "sqlite":
        store = f"sqlite:///{data_dir}/audit.db"
    else:
        store = cluster().new_database()  # fails (never skips) with the install hint when PostgreSQL is missing
    bad_reply = ErrorReply(500, {"error": {"message": BOOM, "type": "server_error"}})
    with ScriptedChatUpstream(answer) as good, ScriptedChatUpstream(bad_reply) as bad:
        routes = [
            route(PRICED, good.base_url, model="gpt-5", pricing=OVERRIDE),
            route(BUILTIN, good.base_url, model="gpt-5-mini"),
            route("ledger", good.base_url, model="gpt-4.1", pricing=LEDGER),
            route("flaky", bad.base_url, model="gpt-5", fallbacks=[BUILTIN]),
            route("down", bad.base_url, model="gpt-5"),
        ]
        text = config(
            routes, store=store, keys=[ALICE, PLAIN_KEY], admin=[ADMIN_KEY],
            policies=[{"name": POLICY, "applies_to": ["claude-*"], "rule": POLICY_RULE}],
        )
        with run_gateway(text, env={**ENV, "DRAGOMAN_AUDIT_STORE": ""}) as gateway:
            yield AuditEnv(gateway, store, good, bad, kind)


def post(env: AuditEnv, body: dict | bytes | str, key: str | None, **more: str) -> RawResponse:
    """POST /v1/messages with `key` (None: no key) and the extra headers `more`."""
    return env.gateway.request("POST", "/v1/messages", body, headers(key, **more), timeout=20)


def unique(prefix: str) -> str:
    """`prefix` made unique, so a test finds its own records among the module's."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
