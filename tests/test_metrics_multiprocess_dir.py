"""The directory prometheus-client's multiprocess mode keeps its value files in, end to end with real gateway
processes: each gateway claims one of its own inside the operator's PROMETHEUS_MULTIPROC_DIR (or the temp dir),
so gateways sharing the variable neither count nor delete each other's files and a restart starts from zero; a
dead worker's live gauges leave the sums; the directory goes when the gateway stops."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from tests.audit_helpers import ENV, config, headers, messages_body, parse_metrics, route, sample_value
from tests.gateway import Gateway, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(90)

LIVE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db$")


def _config(upstream: ScriptedChatUpstream) -> str:
    return config([route("r", upstream.base_url)], default_route="r", audit={"enabled": False})


def _requests_total(gw: Gateway) -> float:
    return sample_value(parse_metrics(gw.request("GET", "/metrics").text), "dragoman_requests_total")


def _send(gw: Gateway, n: int) -> None:
    for _ in range(n):
        assert gw.request("POST", "/v1/messages", messages_body("r"), headers(None)).status == 200


def _reaches(gw: Gateway, expected: float) -> None:
    # counters are applied by the audit writer after its batch, a moment after the answer
    wait_for(lambda: _requests_total(gw) == expected, 15, f"dragoman_requests_total == {expected}",
             log=lambda: f"last: {_requests_total(gw)}\n{gw.stderr_text()}")


def _own_dirs(base: Path) -> set[Path]:
    return {p for p in base.iterdir() if p.is_dir()}


def _upstream() -> ScriptedChatUpstream:
    return ScriptedChatUpstream(lambda body: ChatReply(text="ok", usage=(10, 5, 0), model="gpt-5"))


def test_gateways_sharing_the_multiproc_variable_count_and_keep_only_their_own_values(tmp_path: Path) -> None:
    shared = tmp_path / "prom"
    shared.mkdir()
    env = {**ENV, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    with _upstream() as up, run_gateway(_config(up), env=env, workers=2) as a:
        _send(a, 3)
        _reaches(a, 3)
        with run_gateway(_config(up), env=env, workers=2) as b:  # the start that used to empty the directory
            assert _requests_total(b) == 0  # not A's three again
            assert _requests_total(a) == 3
            assert len(_own_dirs(shared)) == 2
        _send(a, 2)
        _reaches(a, 5)
        assert len(_own_dirs(shared)) == 1  # B removed its own directory when it stopped, and nothing of A's
    assert list(shared.iterdir()) == []


def test_a_restarted_single_process_gateway_starts_from_zero(tmp_path: Path) -> None:
    shared = tmp_path / "prom"
    shared.mkdir()
    env = {**ENV, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    with _upstream() as up:
        with run_gateway(_config(up), env=env) as first:
            _send(first, 2)
            _reaches(first, 2)
        with run_gateway(_config(up), env=env) as second:
            assert _requests_total(second) == 0
    # each removed its directory on SIGTERM, though uvicorn re-raises the signal to exit
    assert list(shared.iterdir()) == []


def test_a_killed_workers_live_gauges_leave_the_sums_and_the_temp_directory_goes_at_stop(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    # no operator directory: the gateway makes one in the temp dir
    with _upstream() as up, run_gateway(_config(up), env={**ENV, "TMPDIR": str(tmp)}, workers=2) as gw:
        (metrics_dir,) = tmp.glob("dragoman-metrics-*")

        def live_pids() -> set[int]:
            return {int(m.group(1)) for p in metrics_dir.iterdir() if (m := LIVE_FILE.match(p.name))}

        wait_for(lambda: len(live_pids()) == 2, 15, "both workers' live gauges", log=gw.stderr_text)
        victim = min(live_pids())
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: f"worker [{victim}] died" in gw.stderr_text(), 15, "the supervisor to see the kill",
                 log=gw.stderr_text)
        wait_for(lambda: victim not in live_pids(), 15, "the dead worker's live gauges to go",
                 log=lambda: str(sorted(p.name for p in metrics_dir.iterdir())))
        assert (metrics_dir / f"counter_{victim}.db").exists()  # what it counted still counts
        wait_for(lambda: len(live_pids()) == 2, 15, "the replacement worker's live gauges", log=gw.stderr_text)
    assert list(tmp.glob("dragoman-metrics-*")) == []
