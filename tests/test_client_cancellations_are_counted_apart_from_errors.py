"""A request the client cancelled (Esc in Claude Code) is neither an error nor a success: 499 client_disconnected
when it left before the first byte, 200 client_disconnected when it stopped reading a stream before its end.
Every count and filter keeps cancellations apart from errors — the dashboard's /api/stats (Overview tiles), the
costs roll-up (/api/costs, the Routes page, `dragoman costs`), status=error / status=cancelled / status=ok
(Requests page and `dragoman logs --status`), dragoman_errors_total — on SQLite and PostgreSQL, while a 502 and a
stream that broke mid-way stay errors. Over real sockets, a stream the client walks away from is recorded so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from dragoman.observe.metrics import Metrics
from dragoman.observe.record import AuditRecord, cancelled, failed
from dragoman.observe.stores import AuditStore
from dragoman.ui.api import stats
from tests.audit_helpers import ENV, all_records, config, route, wait_for
from tests.gateway import Gateway, run_gateway
from tests.observe_pg import store, store_url  # noqa: F401 (fixtures: each store test on SQLite, then PostgreSQL)
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.upstreams.openai_chat import Gate

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600
ERRORS = {"req_broken_stream", "req_502"}
CANCELLED = {"req_gone_before_first_byte", "req_stopped_reading"}


def _records() -> list[AuditRecord]:
    base = {"route": "main", "developer": "ana"}
    return [AuditRecord(time=T0 + 10, request_id="req_ok", status=200, **base),
            AuditRecord(time=T0 + 20, request_id="req_broken_stream", status=200, error_type="stream_error",
                        stream=True, **base),
            AuditRecord(time=T0 + 30, request_id="req_502", status=502, error_type="api_error", **base),
            AuditRecord(time=T0 + 40, request_id="req_gone_before_first_byte", status=499,
                        error_type="client_disconnected", stream=True, **base),
            AuditRecord(time=T0 + 50, request_id="req_stopped_reading", status=200, error_type="client_disconnected",
                        stream=True, output_tokens=40, **base)]


def _ids(store: AuditStore, status: str) -> set[str]:
    return {row["request_id"] for row in store.query_requests({"status": status}, 10)}


def test_the_overview_stats_count_cancellations_apart_from_errors(store: AuditStore) -> None:
    store.write(_records())
    body = msgspec.json.decode(stats(store, {"since": str(T0), "until": str(T0 + 3600), "bucket": "1h"}, T0 + 3600))
    assert [(b["requests"], b["errors"], b["cancelled"]) for b in body["data"]] == [(5, 2, 2)]


def test_the_costs_and_routes_roll_up_counts_cancellations_apart_from_errors(store: AuditStore) -> None:
    store.write(_records())
    rows = store.query_costs("route", T0, None)
    assert [(row["route"], row["requests"], row["errors"], row["cancelled"]) for row in rows] == [("main", 5, 2, 2)]


def test_the_status_filters_put_cancellations_in_their_own_group(store: AuditStore) -> None:
    store.write(_records())
    assert _ids(store, "error") == ERRORS
    assert _ids(store, "cancelled") == CANCELLED
    assert _ids(store, "ok") == {"req_ok"}
    assert _ids(store, "499") == {"req_gone_before_first_byte"}  # a code is still just that code


def test_the_store_and_the_python_predicates_agree_on_every_record(store: AuditStore) -> None:
    store.write(_records())
    rows = store.query_requests(None, 10)
    assert {r["request_id"] for r in rows if failed(r["status"], r["error_type"])} == _ids(store, "error")
    assert {r["request_id"] for r in rows if cancelled(r["status"], r["error_type"])} == _ids(store, "cancelled")


def test_dragoman_logs_and_costs_count_cancellations_as_the_dashboard_does(store: AuditStore, store_url: str) -> None:
    store.write(_records())

    def cli(*args: str) -> list[dict]:
        done = subprocess.run([sys.executable, "-m", "dragoman", *args, "--store", store_url, "--format", "json"],
                              capture_output=True, text=True, check=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        return json.loads(done.stdout)

    assert {row["request_id"] for row in cli("logs", "--status", "error", "--since", str(T0))} == ERRORS
    assert {row["request_id"] for row in cli("logs", "--status", "cancelled", "--since", str(T0))} == CANCELLED
    assert [(row["errors"], row["cancelled"]) for row in cli("costs", "--by", "route", "--since", str(T0))] == [(2, 2)]


def test_dragoman_errors_total_leaves_cancellations_out() -> None:
    metrics = Metrics()
    for record in _records():
        metrics.observe_request(record)
    body = metrics.render()[0].decode()
    errors = [line for line in body.splitlines() if line.startswith("dragoman_errors_total{")]
    assert sorted(line.split("error_type=")[1].split(",")[0] for line in errors) == ['"api_error"', '"stream_error"']
    assert 'status="499"' in body  # still in dragoman_requests_total, with its status and error type


# ---- over real sockets -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def gateway_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('cancelled')}/audit.db"


@pytest.fixture(scope="module")
def gateway(upstream: ScriptedChatUpstream, gateway_store: str) -> Iterator[Gateway]:
    with run_gateway(config([route("main", upstream.base_url)], store=gateway_store),
                     env={**ENV, "DRAGOMAN_AUDIT_STORE": ""}) as gw:
        yield gw


def test_a_stream_the_client_stopped_reading_is_recorded_cancelled(gateway: Gateway, upstream: ScriptedChatUpstream,
                                                                   gateway_store: str) -> None:
    gate = Gate()
    # Paced: the gateway sees the client gone well before the answer's end (it looks after each chunk it sends).
    upstream.reset(ChatReply(text="The first half of the answer, then the second half.", pieces=6, gate=gate,
                             gate_before=3, chunk_delay=0.05))
    body = {"model": "main", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "tell me"}]}
    abandoned = gateway.leave_mid_stream(body)  # Esc in Claude Code: the client walks away with part of the answer
    gate.open()
    row = wait_for(lambda: next((r for r in all_records(gateway_store) if r["request_id"] == abandoned), None), 15,
                   "the abandoned stream's record")
    assert (row["status"], row["error_type"], row["stream"]) == (200, "client_disconnected", True)


def test_a_stream_read_to_its_end_is_recorded_answered(gateway: Gateway, upstream: ScriptedChatUpstream,
                                                       gateway_store: str) -> None:
    upstream.reset(ChatReply(text="A whole answer.", pieces=2))
    body = {"model": "main", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "tell me"}]}
    response = gateway.request("POST", "/v1/messages", body, {"anthropic-version": "2023-06-01"})
    assert response.status == 200 and "message_stop" in response.text
    answered = response.headers["request-id"]
    row = wait_for(lambda: next((r for r in all_records(gateway_store) if r["request_id"] == answered), None), 15,
                   "the answered stream's record")
    assert (row["status"], row["error_type"]) == (200, None)
