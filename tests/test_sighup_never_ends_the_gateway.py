"""SIGHUP never ends a gateway. From the start of `dragoman serve` until it exits, a SIGHUP either reloads the config
or is logged as ignored ("SIGHUP ignored: starting" / "shutting down"). It never gets SIGHUP's default action,
which terminates the process. It can come from `systemctl reload`, a deploy hook, or a closed terminal that
signals the whole process group.

Each test runs real gateway processes, once single and once with `--workers 2`. Another connection holds
SQLite's write lock on the audit store (BEGIN EXCLUSIVE), which keeps the gateway in the step under test:
- at startup, migrating the store, before the config watcher can take a reload;
- at shutdown, flushing its queued records after SIGTERM.

A SIGHUP sent during either step used to kill the process; at shutdown that lost every queued record."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from tests.audit_helpers import ENV, all_records, config, headers, messages_body, route
from tests.gateway import Gateway, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(90)

REQUESTS = 6
# "dragoman.reload: …" from the process that was started, "dragoman.reload[pid]: …" from a worker
IGNORED = re.compile(r"dragoman\.reload(?:\[(\d+)\])?: SIGHUP ignored: (starting|shutting down)")


@contextlib.contextmanager
def write_lock(db: Path) -> Iterator[None]:
    """SQLite's write lock on `db`, held by another connection: the gateway's writes wait for it (busy_timeout)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _signal(gw: Gateway, sig: int, workers: int) -> None:
    """`sig` to the gateway; with workers, to its whole process group, as a terminal's hang-up would be."""
    if workers > 1:
        os.killpg(gw.proc.pid, sig)  # run_gateway gives a gateway with workers its own session
    else:
        gw.proc.send_signal(sig)


def _ignored_by_each(gw: Gateway, reason: str, workers: int) -> bool:
    """Whether the gateway (each of its workers, with --workers) logged a SIGHUP it ignored for `reason`."""
    found = {m.group(1) or "" for m in IGNORED.finditer(gw.stderr_text()) if m.group(2) == reason}
    return "" in found if workers == 1 else len(found - {""}) >= workers


def _hup_until_ignored(gw: Gateway, reason: str, workers: int) -> None:
    """SIGHUP again and again until each serving process logged one it ignored for `reason`. The first SIGHUP
    that reached a process at SIGHUP's default action would kill it, and fail this wait."""
    def sent_and_seen() -> bool:
        _signal(gw, signal.SIGHUP, workers)
        return _ignored_by_each(gw, reason, workers)

    wait_for(sent_and_seen, 30, f"'SIGHUP ignored: {reason}' from each process", step=0.05, alive=gw.proc,
             log=gw.stderr_text)


def _gateway_config(store: str, upstream: str) -> str:
    # A long flush interval and a big batch: every record is still queued when SIGTERM arrives.
    return config([route("r", upstream)], default_route="r", store=store, audit={"flush_interval": 60, "batch": 10_000})


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_while_the_audit_queue_is_flushed_at_shutdown_loses_no_record(tmp_path: Path, workers: int) -> None:
    db = tmp_path / "audit.db"
    store = f"sqlite:///{db}"
    with ScriptedChatUpstream(ChatReply(text="ok", usage=(3, 2, 0))) as up:
        with run_gateway(_gateway_config(store, up.base_url), env={**ENV, "DRAGOMAN_AUDIT_STORE": ""},
                         workers=workers) as gw:
            if workers > 1:  # each worker started: none is still writing its start to the store
                wait_for(lambda: len(set(re.findall(r"worker (\d+) serving", gw.stderr_text()))) >= workers, 30,
                         "every worker serving", alive=gw.proc, log=gw.stderr_text)
            with write_lock(db):  # a slow store: the flush at shutdown waits on it
                answered = []
                for i in range(REQUESTS):
                    reply = gw.request("POST", "/v1/messages", messages_body("r", f"q{i}"), headers(None))
                    assert reply.status == 200, reply.text
                    answered.append(reply.headers["request-id"])
                _signal(gw, signal.SIGTERM, workers)
                _hup_until_ignored(gw, "shutting down", workers)
            code = gw.proc.wait(30)
            log = gw.stderr_text()
    # uvicorn re-raises the SIGTERM it caught once shut down: -SIGTERM is a clean exit too
    assert code in (0, -signal.SIGTERM), log
    recorded = {r["request_id"] for r in all_records(store)}
    assert set(answered) <= recorded, f"records lost: {sorted(set(answered) - recorded)}\n{log}"


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_before_the_gateway_can_reload_is_ignored_then_reloads(tmp_path: Path, workers: int) -> None:
    db = tmp_path / "audit.db"
    store = f"sqlite:///{db}"
    sqlite3.connect(db).close()
    with contextlib.ExitStack() as held:
        held.enter_context(write_lock(db))  # the startup's store migration waits on it: the gateway stays starting
        with run_gateway(_gateway_config(store, "http://127.0.0.1:9/v1"), env={**ENV, "DRAGOMAN_AUDIT_STORE": ""},
                         workers=workers, healthy=False) as gw:
            # `serve` logs the startup block itself, early: from there on no SIGHUP may be fatal
            wait_for(lambda: "starting with config" in gw.stderr_text(), 30, "the startup block", alive=gw.proc,
                     log=gw.stderr_text)
            _hup_until_ignored(gw, "starting", workers)
            held.close()  # the store free: the start completes
            gw.wait_healthy()
            _signal(gw, signal.SIGHUP, workers)
            wait_for(lambda: "config reloaded from" in gw.stderr_text(), 30, "a reload on SIGHUP once started",
                     alive=gw.proc, log=gw.stderr_text)
            assert "died" not in gw.stderr_text(), gw.stderr_text()
