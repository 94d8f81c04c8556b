"""Helpers for the audit / metrics / tracing end-to-end tests: configs with identity, pricing, policies and
observe blocks; a gateway in front of a scripted Chat and a scripted Responses upstream, asked through the SDK;
bounded polling of the audit store; the CLI; secret scanning; Prometheus text parsing."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import yaml

from dragoman.observe.stores import open_store
from tests.gateway import Gateway, run_gateway
from tests.upstreams import ScriptedChatUpstream
from tests.upstreams.openai_responses import ScriptedResponsesUpstream

ROOT = Path(__file__).resolve().parent.parent

# Every secret the gateway sees in these tests; none may appear in a record, a log line, a span or an error.
UPSTREAM_KEY = "sk-upstream-secret-0d7c1e9a4b"
ALICE_KEY = "sk-gw-alice-secret-5f2a9c"
PLAIN_KEY = "sk-gw-plain-secret-81b3e4"
WRONG_KEY = "sk-gw-wrong-secret-c0ffee"
ADMIN_KEY = "adm-secret-7e1f00d2"
SECRETS = (UPSTREAM_KEY, ALICE_KEY, PLAIN_KEY, WRONG_KEY, ADMIN_KEY)
ENV = {"OPENAI_PROD": UPSTREAM_KEY}

ALICE = {"id": "team-web-alice", "key": ALICE_KEY, "developer": "alice", "team": "web", "repo": "shop"}
FAST = {"connect": 2, "first_byte": 5, "idle": 5}
NO_RETRY = {"attempts": 1}
NO_BREAKER = {"failures": 1000, "cooldown": 1}

# `route PRICED` has a pricing override; `route BUILTIN` is priced by the built-in table (gpt-5-mini).
PRICED = "priced"
BUILTIN = "builtin"
OVERRIDE = {"input": 2.0, "cached_input": 0.5, "output": 8.0}
GPT5_MINI = {"input": 0.25, "cached_input": 0.025, "output": 2.0}  # the table's gpt-5-mini, USD per million
POLICY = "size_policy"
POLICY_RULE = "if input_tokens < 8000:\n  route builtin\nelse:\n  route priced\n"
SMALL_BRANCH = "if input_tokens < 8000"


def route(name: str, endpoint: str, *, model: str = "gpt-5", pricing: dict | None = None,
          fallbacks: list[str] | None = None, retry: dict | None = None, breaker: dict | None = None,
          timeout: dict | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "upstream": {"provider": "openai", "model": model, "endpoint": endpoint, "api_key_ref": "openai_prod",
                     "timeout": dict(timeout or FAST)},
        "retry": dict(retry or NO_RETRY),
        "breaker": dict(breaker or NO_BREAKER),
    }
    if pricing is not None:
        entry["pricing"] = dict(pricing)
    if fallbacks:
        entry["fallbacks"] = list(fallbacks)
    return entry


def config(routes: list[dict[str, Any]], *, store: str | None = None, keys: list | None = None,
           admin: list[str] | None = None, policies: list[dict] | None = None, audit: dict | None = None,
           metrics: dict | None = None, tracing: dict | None = None, default_route: str | None = None) -> str:
    data: dict[str, Any] = {}
    if default_route:
        data["default_route"] = default_route
    if policies:
        data["policies"] = policies
    if keys is not None:
        data["auth"] = {"keys": keys}
    audit_block = {"flush_interval": 0.05, **(audit or {})}
    if store is not None:
        audit_block["store"] = store
    data["audit"] = audit_block
    if metrics is not None:
        data["metrics"] = metrics
    if tracing is not None:
        data["tracing"] = tracing
    if admin is not None:
        data["admin"] = {"keys": admin}
    data["routes"] = routes
    return yaml.safe_dump(data, sort_keys=False)


def messages_body(model: str, text: str = "hi", *, stream: bool = False, max_tokens: int = 64, **extra: Any) -> dict:
    return {"model": model, "max_tokens": max_tokens, "stream": stream,
            "messages": [{"role": "user", "content": text}], **extra}


def headers(key: str | None, **more: str) -> dict[str, str]:
    out = {"anthropic-version": "2023-06-01"}
    if key is not None:
        out["x-api-key"] = key
    out.update(more)
    return out


# ---- a gateway on both OpenAI APIs ----------------------------------------------------------------------


@dataclass
class BothApis:
    """A gateway with an SQLite audit store, its routes on a scripted Chat and a scripted Responses upstream."""

    gateway: Gateway
    store: str
    chat: ScriptedChatUpstream
    responses: ScriptedResponsesUpstream

    def ask(self, stream: bool, **body: Any) -> tuple[anthropic.types.Message, str]:
        """One Messages call through the SDK, as JSON or streamed: (the message it builds, the gateway's request id)."""
        with anthropic.Anthropic(base_url=self.gateway.base_url, api_key="sk-client", max_retries=0, timeout=20) as sdk:
            if stream:
                with sdk.messages.stream(**body) as events:
                    return events.get_final_message(), events.response.headers["request-id"]
            raw = sdk.messages.with_raw_response.create(**body)
            return raw.parse(), raw.headers["request-id"]


@contextlib.contextmanager
def both_apis(store_dir: Path, routes: Callable[[str, str], list[dict[str, Any]]], signing_key: str) -> Iterator[BothApis]:
    """`routes(chat_endpoint, responses_endpoint)` served by one gateway, its records in `store_dir`."""
    store = f"sqlite:///{store_dir}/audit.db"
    with ScriptedChatUpstream() as chat, ScriptedResponsesUpstream() as responses:
        endpoints = routes(chat.base_url + "/chat/completions", responses.base_url + "/responses")
        process_env = {**ENV, "DRAGOMAN_AUDIT_STORE": "", "DRAGOMAN_SIGNING_KEY": signing_key}
        with run_gateway(config(endpoints, store=store), env=process_env) as gateway:
            yield BothApis(gateway, store, chat, responses)


# ---- reading records -------------------------------------------------------------------------------------


def wait_records(store_url: str, request_ids: Iterable[str], timeout: float = 10.0) -> dict[str, dict]:
    """Poll the store (bounded) until every request id has its record; returns them by request id."""
    wanted = set(request_ids)
    store = open_store(store_url, migrate=False)

    def all_found() -> dict[str, dict] | None:
        found = {}
        for rid in wanted:
            rows = store.query_requests({"request_id": rid}, limit=5)
            if rows:
                assert len(rows) == 1, f"{len(rows)} records for {rid}"
                found[rid] = rows[0]
        return found if len(found) == len(wanted) else None

    try:
        return wait_for(all_found, timeout, f"the records of {sorted(wanted)}")
    finally:
        store.close()


def wait_record(store_url: str, request_id: str, timeout: float = 10.0) -> dict:
    return wait_records(store_url, [request_id], timeout)[request_id]


def all_records(store_url: str, limit: int = 10_000) -> list[dict]:
    store = open_store(store_url, migrate=False)
    try:
        return store.query_requests(None, limit)
    finally:
        store.close()


def cli(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """`python -m dragoman ARGS` with no DRAGOMAN_AUDIT_STORE in the environment."""
    env = {k: v for k, v in os.environ.items() if k != "DRAGOMAN_AUDIT_STORE"}
    return subprocess.run([sys.executable, "-m", "dragoman", *args], check=False, capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def cli_json(*args: str) -> Any:
    result = cli(*args)
    assert result.returncode == 0, f"dragoman {' '.join(args)} exited {result.returncode}: {result.stderr}"
    return json.loads(result.stdout)


def cost(usage: tuple[int, int, int], price: Mapping[str, float]) -> float:
    """USD by hand: usage is the upstream's (prompt_tokens, completion_tokens, cached_tokens)."""
    prompt, completion, cached = usage
    return ((prompt - cached) * price["input"] + cached * price["cached_input"] + completion * price["output"]) / 1e6


def assert_no_secrets(text: str, where: str, secrets: Iterable[str] = SECRETS) -> None:
    for secret in secrets:
        assert secret not in text, f"{where} contains the secret {secret[:8]}…"
        # the secret's distinctive tail, in case a prefix was masked and the rest kept
        assert secret[-10:] not in text, f"{where} contains the tail of secret {secret[:8]}…"


def assert_sane_latencies(record: Mapping[str, Any], *, streamed_delay: float = 0.0) -> None:
    total, ttfb, upstream, overhead = (record[k] for k in ("latency_total_ms", "ttfb_ms", "upstream_ms", "overhead_ms"))
    rid = record["request_id"]
    assert total is not None and total > 0, (rid, total)
    assert ttfb is not None and 0 < ttfb <= total, (rid, ttfb, total)
    assert upstream is not None and 0 <= upstream <= total + 0.01, (rid, upstream, total)
    assert overhead is not None and overhead >= 0, (rid, overhead)
    assert abs(overhead - (total - upstream)) < 0.01, (rid, overhead, total, upstream)
    if streamed_delay:
        # The upstream waited `streamed_delay` after its first chunk (a floor it enforces): the record must count
        # that wait after the first byte. A busy machine only lengthens it; the 0.8 leaves room for the first
        # byte's own relay, which starts the ttfb clock a little after the upstream's first chunk left.
        assert total - ttfb >= streamed_delay * 1000 * 0.8, (rid, total, ttfb)


# ---- metrics ----------------------------------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, list]:
    """Prometheus text → {family name: [Sample…]} via prometheus_client's parser (fails on bad syntax)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {family.name: list(family.samples) for family in text_string_to_metric_families(text)}


def sample_value(families: Mapping[str, list], sample_name: str, **labels: str) -> float:
    """Sum of the samples called `sample_name` whose labels include `labels` (0 when none)."""
    total = 0.0
    for samples in families.values():
        for s in samples:
            if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


from tests.waiting import wait_for  # noqa: E402 - one poll loop for the suite (tests/waiting.py)
