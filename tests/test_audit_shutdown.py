"""The audit log under stress, over real sockets with the real gateway process:

- SIGTERM during a burst of concurrent requests: every request that got a complete response has its record
  once the process has exited (SQLite, records still queued when the signal arrives);
- a store that goes down mid-run (PostgreSQL stopped) fails no request: the backlog stays
  bounded, and what is dropped is counted in dragoman_audit_dropped_total and logged, without secrets.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
from pathlib import Path

import pytest

from dragoman.observe.stores import open_store
from tests.audit_helpers import (
    ENV,
    all_records,
    assert_no_secrets,
    config,
    messages_body,
    parse_metrics,
    route,
    sample_value,
    wait_for,
)
from tests.gateway import run_gateway
from tests.observe_pg import PostgresCluster, cluster
from tests.upstreams import ChatReply, Hang, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(30)

THREADS = 8
SIGTERM_AFTER = 40  # answers: the signal arrives mid-burst, with THREADS requests in flight


def _one_request(port: int, i: int) -> str | None:
    """POST one request on a fresh connection; the request id when the response arrived complete, else None."""
    stream = i % 2 == 0
    body = json.dumps(messages_body("r", f"request {i}", stream=stream)).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/messages", body, {"content-type": "application/json", "anthropic-version": "2023-06-01"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            return None
        if stream:
            if b"event: message_stop" not in data:
                return None
        else:
            json.loads(data)
        return resp.getheader("request-id")
    except (OSError, http.client.HTTPException, ValueError):
        return None  # refused or cut after SIGTERM: no complete response, so no record is owed
    finally:
        conn.close()


def test_sigterm_during_a_burst_loses_no_record(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    store = f"sqlite:///{db}"
    # A slightly slow upstream, so requests are in flight when the signal arrives.
    with ScriptedChatUpstream(Hang(0.15, then=ChatReply(text="ok", usage=(20, 5, 0), model="gpt-5", chunk_delay=0.02))) as up:
        # A long flush interval and a big batch: nearly every record is still queued at SIGTERM.
        text = config([route("r", up.base_url)], store=store, audit={"flush_interval": 30, "batch": 10_000})
        with run_gateway(text, env={**ENV, "DRAGOMAN_AUDIT_STORE": ""}) as gw:
            answered: list[str] = []
            attempted = [0]
            lock = threading.Lock()
            enough = threading.Event()  # SIGTERM_AFTER answers are in: time for the signal
            signalled = threading.Event()

            def worker(n: int) -> None:
                i = n
                while True:
                    rid = _one_request(gw.port, i)
                    with lock:
                        attempted[0] += 1
                        if rid:
                            answered.append(rid)
                            if len(answered) >= SIGTERM_AFTER:
                                enough.set()
                    i += THREADS
                    if rid is None and signalled.is_set():
                        return  # refused or cut: the server is going away, and owes this thread nothing more

            threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(THREADS)]
            for t in threads:
                t.start()
            assert enough.wait(15), f"only {len(answered)} answers before the signal"
            signalled.set()
            gw.proc.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(15)
            assert not any(t.is_alive() for t in threads)
            # uvicorn re-raises the captured SIGTERM after its graceful shutdown: -SIGTERM is a clean exit too
            code = gw.proc.wait(20)
            assert code in (0, -signal.SIGTERM), gw.stderr_text()
            stderr = gw.stderr_text()

    print(f"{len(answered)} of {attempted[0]} requests answered")
    assert len(answered) >= SIGTERM_AFTER
    assert len(set(answered)) == len(answered)
    opened = open_store(store, migrate=False)
    try:
        recorded = {r["request_id"]: r for r in opened.query_requests(limit=100_000)}
    finally:
        opened.close()
    missing = set(answered) - set(recorded)
    assert not missing, f"{len(missing)} of {len(answered)} answered requests have no record: {sorted(missing)[:5]}"
    for rid in answered:
        assert recorded[rid]["status"] == 200 and recorded[rid]["route"] == "r", recorded[rid]
    assert "dropped" not in stderr, stderr


def _post(port: int, i: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/messages", json.dumps(messages_body("r", f"q{i}")).encode(),
                     {"content-type": "application/json", "anthropic-version": "2023-06-01"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_store_down_fails_no_request_and_drops_are_counted() -> None:
    # That a request never waits on the store is pinned in test_observe_writer.py against a store stuck in a write.
    cluster()  # fails (never skips) with the install hint when PostgreSQL is missing
    pg = PostgresCluster()  # a private cluster: this test stops it mid-run
    try:
        pg.start()
        password = "pg-password-s3cr3t-4411"  # trust auth ignores it; it must still never be logged
        url = f"postgresql://postgres:{password}@127.0.0.1:{pg.port}/postgres"
        queue_size = 20
        with ScriptedChatUpstream(ChatReply(text="ok", usage=(20, 5, 0), model="gpt-5")) as up:
            text = config([route("r", up.base_url)], store=url,
                          audit={"queue_size": queue_size, "batch": 5, "flush_interval": 0.05})
            with run_gateway(text, env={**ENV, "DRAGOMAN_AUDIT_STORE": ""}) as gw:
                for i in range(15):
                    assert _post(gw.port, i) == 200
                wait_for(lambda: len(all_records(url)) >= 15, 10, "the first 15 records in PostgreSQL")

                pg.stop()  # the store goes down (immediate shutdown)
                total = 120
                for i in range(total):
                    status = _post(gw.port, 100 + i)
                    assert status == 200, f"request {i} with the store down answered {status}"

                def dropped() -> float:
                    families = parse_metrics(gw.request("GET", "/metrics").text)
                    return sample_value(families, "dragoman_audit_dropped_total")

                # at most queue_size records wait in the queue and queue_size in the retry buffer
                wait_for(lambda: dropped() >= total - 2 * queue_size, 10, "dragoman_audit_dropped_total to count drops")
                families = parse_metrics(gw.request("GET", "/metrics").text)
                depth = sample_value(families, "dragoman_audit_queue_depth")
                assert depth <= 2 * queue_size, depth
                assert dropped() <= total, "more records dropped than requests made"
                wait_for(lambda: "audit: dropped" in gw.stderr_text(), 10, "the writer's 'dropped' log line")
                stderr = gw.stderr_text()
                assert "audit store write failed" in stderr, stderr
                assert password not in stderr and password not in gw.request("GET", "/metrics").text
                assert_no_secrets(stderr, "the gateway's stderr")
    finally:
        pg.stop()
