"""`--workers 2` with a broken config on disk (already refused by hot reload), against a real gateway process: a
worker that dies is replaced by one that starts from the last good config the supervisor validated and serves
it, instead of replacements that crash on start one after another (11–12 tracebacks in 6 s before)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, config_yaml, route, wait_until
from tests.upstreams import ChatReply, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(60)

ROUTE = "gpt-5-via-gateway"
BODY = {"model": ROUTE, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _workers(supervisor: int) -> set[int]:
    """The supervisor's worker processes (its spawned children, not multiprocessing's resource tracker)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == supervisor and b"spawn_main" in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.add(int(entry))
    return found


def _serving(gw: Gateway) -> int:
    """How many workers have started serving so far (each logs it once)."""
    return len(re.findall(r"worker \d+ serving$", gw.stderr_text(), re.MULTILINE))


def _answers(gw: Gateway, n: int) -> list[str]:
    texts = []
    for _ in range(n):
        response = gw.request("POST", "/v1/messages", BODY, {"anthropic-version": "2023-06-01", "x-api-key": "k"})
        assert response.status == 200, response.text
        texts.append(response.json()["content"][0]["text"])
    return texts


def test_worker_replaced_while_the_file_is_broken_serves_the_last_good_config() -> None:
    with ScriptedChatUpstream(ChatReply(text="from the good config")) as up:
        good = config_yaml([route(ROUTE, up.base_url)], default_route=ROUTE)
        with run_gateway(good, env=KEYS_ENV, workers=2) as gw:
            path = gw.stderr_path.parent / "dragoman.yaml"
            wait_until(lambda: _serving(gw) == 2, 15, "both workers serving")
            before = _workers(gw.proc.pid)
            assert len(before) == 2, before

            broken = path.with_name("broken.yaml")
            broken.write_text(good.replace("provider: openai", "provider: openai_compatibel"))
            os.replace(broken, path)
            wait_until(lambda: gw.stderr_text().count("reload failed") >= 2, 10, "both workers refusing the file")

            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: _serving(gw) == 3, 20, "the replacement serving")
            replaced = _workers(gw.proc.pid)
            assert len(replaced) == 2 and victim not in replaced, (before, replaced)

            assert set(_answers(gw, 30)) == {"from the good config"}
            stderr = gw.stderr_text()
            assert _workers(gw.proc.pid) == replaced, "a worker died again"

    assert stderr.count("died") == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.count("starts from the last good config") == 1, stderr
    line = next(row for row in stderr.splitlines() if "starts from the last good config" in row)
    assert f"{path}:" in line and "openai_compatibel" in line, line  # why, with the file and line
