"""SIGTERM under load with `--workers 2`, against a real gateway process: it stops accepting before it drains.

Each of 200 requests, on a fresh connection, gets either its whole answer or a clean refusal (connection
refused): none is accepted and then reset. Before this, new connections kept queueing on the supervisor's copy of
the listening socket, which nobody accepted from, and were reset when it exited (55 of 200)."""

from __future__ import annotations

import http.client
import json
import signal
import threading

import pytest

from tests.audit_helpers import ENV, config, messages_body, route
from tests.gateway import run_gateway
from tests.upstreams import ChatReply, Hang, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(90)

TOTAL = 200
THREADS = 16
SIGTERM_AFTER = 40  # answers before the signal


def _one(port: int) -> str:
    """'answered', 'refused', or what went wrong."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        try:
            conn.connect()
        except ConnectionRefusedError:
            return "refused"
        conn.request("POST", "/v1/messages", json.dumps(messages_body("r", "hi")),
                     {"content-type": "application/json", "anthropic-version": "2023-06-01"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status == 200 and json.loads(body)["content"][0]["text"] == "ok":
            return "answered"
        return f"status {resp.status}: {body[:200]!r}"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return f"failed after connecting: {exc!r}"
    finally:
        conn.close()


def test_sigterm_under_load_answers_or_refuses_every_client() -> None:
    with ScriptedChatUpstream(Hang(0.05, then=ChatReply(text="ok"))) as up:
        text = config([route("r", up.base_url)], audit={"enabled": False})
        with run_gateway(text, env=ENV, workers=2) as gw:
            outcomes: list[tuple[bool, str]] = []  # (signal sent before it started, outcome)
            lock = threading.Lock()
            enough = threading.Event()
            signalled = threading.Event()
            remaining = [TOTAL]

            def client() -> None:
                while True:
                    with lock:
                        if remaining[0] == 0:
                            return
                        remaining[0] -= 1
                    after = signalled.is_set()
                    outcome = _one(gw.port)
                    with lock:
                        outcomes.append((after, outcome))
                        if sum(o == "answered" for _, o in outcomes) >= SIGTERM_AFTER:
                            enough.set()

            threads = [threading.Thread(target=client, daemon=True) for _ in range(THREADS)]
            for thread in threads:
                thread.start()
            assert enough.wait(30), f"not {SIGTERM_AFTER} answers before the signal: {outcomes[:5]}"
            gw.proc.send_signal(signal.SIGTERM)
            signalled.set()
            for thread in threads:
                thread.join(60)
            assert not any(thread.is_alive() for thread in threads)
            assert gw.proc.wait(30) == 0, gw.stderr_text()
            stderr = gw.stderr_text()

    answered = [o for _, o in outcomes if o == "answered"]
    refused_early = [o for after, o in outcomes if o == "refused" and not after]
    broken = [o for _, o in outcomes if o not in ("answered", "refused")]
    print(f"{len(answered)} answered, {len(outcomes) - len(answered) - len(broken)} refused of {len(outcomes)}")
    assert len(outcomes) == TOTAL
    assert broken == [], f"{len(broken)} of {TOTAL} neither answered nor refused: {broken[:5]}"
    assert refused_early == [], "refused before the gateway was told to stop"
    assert len(answered) >= SIGTERM_AFTER
    assert "Traceback" not in stderr, stderr
