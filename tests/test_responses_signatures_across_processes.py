"""A thinking signature sealed by one gateway process opens in another that shares its key file: after a restart,
on every worker of `dragoman serve --workers 2`, and between two gateways on one key file; a gateway with
another key cannot open it, and the turn goes on without the reasoning item."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.waiting import wait_for
from tests.gateway import Gateway, _healthy, _stop, free_port, gateway_config, run_gateway
from tests.responses_helpers import assert_not_replayed, assert_replayed_in_place, signing_env, turn_1, turn_2
from tests.routing_helpers import sdk
from tests.upstreams.openai_responses import ScriptedResponsesUpstream

pytestmark = pytest.mark.timeout(30)


class SenderNotingUpstream(ScriptedResponsesUpstream):
    """The scripted Responses server, also noting which process sent each request (for the worker test)."""

    def __init__(self) -> None:
        self.track_senders = False
        self.senders: list[int | None] = []
        super().__init__()

    def reset(self, script: Any = None) -> None:
        super().reset(script)
        self.track_senders = False
        self.senders.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.track_senders:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.senders.append(_process_with_local_port(peer[1]) if peer else None)
        return await super()._handle(request)


def _process_with_local_port(port: int) -> int | None:
    """The pid owning the 127.0.0.1:`port` end of a TCP connection (found through /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # ESTABLISHED
                inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                return int(pid)
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def _module_responses_upstream() -> Iterator[SenderNotingUpstream]:
    """Overrides conftest.py's: in this module the upstream can also say which process sent each request."""
    with SenderNotingUpstream() as upstream:
        yield upstream


def test_signature_opens_after_a_gateway_restart(responses_upstream, signing_key_file):
    restart_key = signing_key_file.with_name("restart.key")
    config = gateway_config(responses_upstream.responses_url)
    with run_gateway(config, env=signing_env(restart_key)) as first_gateway, sdk(first_gateway, timeout=20) as client:
        content = turn_1(client, responses_upstream, True).content
    assert restart_key.exists() and restart_key.stat().st_mode & 0o777 == 0o600
    with run_gateway(config, env=signing_env(restart_key)) as second_gateway, sdk(second_gateway, timeout=20) as client:
        assert_replayed_in_place(turn_2(client, responses_upstream, content, False))
    # Another deployment (another key) cannot open it.
    other_key = signing_key_file.with_name("other.key")
    with run_gateway(config, env=signing_env(other_key)) as other, sdk(other, timeout=20) as client:
        assert_not_replayed(turn_2(client, responses_upstream, content, False))


@pytest.fixture
def two_workers(responses_upstream: SenderNotingUpstream, tmp_path: Path) -> Iterator[tuple[Gateway, list[int]]]:
    """`dragoman serve --workers 2` (run_gateway cannot pass --workers), with a fresh signing key file."""
    config_path = tmp_path / "dragoman.yaml"
    config_path.write_text(gateway_config(responses_upstream.responses_url))
    stderr_path = tmp_path / "stderr.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DRAGOMAN_API_KEYS"}
    env.update({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                **signing_env(tmp_path / "keys" / "signing.key")})
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "dragoman", "serve", "--config", str(config_path),
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, env=env, cwd=tmp_path)
    gateway = Gateway(port=port, proc=proc, stderr_path=stderr_path)
    try:
        wait_for(lambda: _healthy(port) and len(_children(proc.pid)) >= 2, 15, "the gateway up with 2 workers",
                 alive=proc, log=gateway.stderr_text)
        yield gateway, _children(proc.pid)
    finally:
        _stop(proc)


def _children(pid: int) -> list[int]:
    """The worker processes of the supervisor `pid` (multiprocessing's resource tracker is a child too)."""
    try:
        children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    workers = []
    for child in children:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(child)
        except OSError:
            continue
    return workers


def test_signatures_open_on_every_worker(two_workers, responses_upstream):
    # Which worker accepts a connection is the kernel's choice, so the turns below may or may not cross
    # workers; the deterministic cross-process check is the next test (two gateways, one key file).
    gateway, workers = two_workers
    responses_upstream.track_senders = True
    for i in range(6):
        # A fresh connection for each request, so the kernel picks a worker each time.
        with sdk(gateway, timeout=20) as client:
            content = turn_1(client, responses_upstream, i % 2 == 0).content
        with sdk(gateway, timeout=20) as client:
            sent = turn_2(client, responses_upstream, content, i % 2 == 1)
        assert {responses_upstream.senders[-2], responses_upstream.senders[-1]} <= set(workers), (
            responses_upstream.senders, workers)
        assert_replayed_in_place(sent)


def test_two_gateways_on_one_key_file_open_each_others_signatures(responses_upstream, tmp_path):
    # The first creates the key file; the second reads it: a turn sealed on one opens on the other.
    key = tmp_path / "fresh" / "signing.key"
    config = gateway_config(responses_upstream.responses_url)
    with run_gateway(config, env=signing_env(key)) as first, run_gateway(config, env=signing_env(key)) as second:
        with sdk(first, timeout=20) as client:
            content = turn_1(client, responses_upstream, True).content
        with sdk(second, timeout=20) as client:
            assert_replayed_in_place(turn_2(client, responses_upstream, content, False))
