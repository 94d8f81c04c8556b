"""deploy/nginx.conf in front of two real gateway processes on loopback, as compose runs it: requests reach both
instances, a streamed answer's events reach the client while the upstream is still holding the rest, and with one
instance stopped every request is still answered by the other. (nginx passes small events on to a fast client even
with its buffering on; `proxy_buffering off`, which matters for slow clients, is pinned by
test_compose_runs_two_gateways_behind_a_load_balancer.)

Needs the nginx executable (Debian: apt-get install nginx). CI does not install it, so without it this skips with
that reason; test_compose_runs_two_gateways_behind_a_load_balancer checks the same file's settings everywhere."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import anthropic
import pytest

from tests.waiting import wait_for
from tests.deploy_files import DEPLOY, find_block
from tests.gateway import ROUTE_NAME, UPSTREAM_ENV, free_port, gateway_config, run_gateway
from tests.upstreams import ChatReply, Gate, ScriptedChatUpstream

import crossplane  # noqa: E402 - NGINX's own config parser (the test extra: nginx-crossplane)

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


def _local_nginx_conf(tmp: Path, port: int, gateway_ports: list[int]) -> Path:
    """deploy/nginx.conf with its listen port, upstream servers and writable paths moved to this test's."""
    parsed = crossplane.parse(str(DEPLOY / "nginx.conf"), single=True)["config"][0]["parsed"]
    for directive in parsed:
        if directive["directive"] == "pid":
            directive["args"] = [str(tmp / "nginx.pid")]
    http = find_block(parsed, ("http",))
    for directive in http:
        if directive["directive"] in ("client_body_temp_path", "proxy_temp_path"):
            directive["args"] = [str(tmp / directive["directive"])]
        if directive["directive"] == "access_log":
            directive["args"] = [str(tmp / "access.log")]
    upstream = next(d for d in http if d["directive"] == "upstream")["block"]
    servers = [d for d in upstream if d["directive"] == "server"]
    assert len(servers) == len(gateway_ports)
    for directive, gateway_port in zip(servers, gateway_ports):
        directive["args"] = [f"127.0.0.1:{gateway_port}", *directive["args"][1:]]
    server = find_block(http, ("server",))
    next(d for d in server if d["directive"] == "listen")["args"] = [f"127.0.0.1:{port}"]
    if os.geteuid() == 0:
        parsed.insert(0, {"directive": "user", "args": ["root"]})  # else its workers switch to nobody
    parsed[:] = [d for d in parsed if d["directive"] != "error_log"] + [
        {"directive": "error_log", "args": [str(tmp / "error.log"), "warn"]}]
    path = tmp / "nginx.conf"
    path.write_text(crossplane.build(parsed))
    return path


@contextlib.contextmanager
def _nginx(tmp: Path, gateway_ports: list[int]) -> Iterator[int]:
    port = free_port()
    conf = _local_nginx_conf(tmp, port, gateway_ports)
    subprocess.run([NGINX, "-t", "-q", "-p", str(tmp), "-c", str(conf)], check=True, capture_output=True, timeout=30)
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _answers(port), 15, "nginx answering its health location", alive=proc,
                 log=lambda: proc.stderr.read().decode() if proc.stderr else "")
        yield port
    finally:
        proc.terminate()
        proc.wait(15)


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lb-healthz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _need_nginx() -> None:
    """Skip without nginx, except in CI (CI=true), which installs it: there a missing nginx fails the test."""
    if NGINX is None:
        missing = "nginx is not installed (apt-get install nginx; .ci/run does): the load balancer runs only where it is"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.fixture
def setup(tmp_path: Path):
    _need_nginx()
    with ScriptedChatUpstream() as first, ScriptedChatUpstream() as second, contextlib.ExitStack() as stack:
        gateways = [stack.enter_context(run_gateway(gateway_config(up.chat_url), env=UPSTREAM_ENV))
                    for up in (first, second)]
        port = stack.enter_context(_nginx(tmp_path, [gw.port for gw in gateways]))
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="sk-client-key", max_retries=0,
                                     timeout=30)
        yield client, (first, second), gateways


def _ask(client: anthropic.Anthropic) -> str:
    message = client.messages.create(model=ROUTE_NAME, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    return message.content[0].text


def test_requests_reach_both_instances(setup) -> None:
    client, upstreams, _ = setup
    for up in upstreams:
        up.script(ChatReply(text="hello"))
    assert [_ask(client) for _ in range(4)] == ["hello"] * 4
    assert all(len(up.bodies) >= 1 for up in upstreams), [len(up.bodies) for up in upstreams]
    assert sum(len(up.bodies) for up in upstreams) == 4


def test_streamed_events_pass_through_before_the_answer_is_complete(setup) -> None:
    client, upstreams, _ = setup
    gate = Gate()
    for up in upstreams:
        up.script(ChatReply(text="one two three four", pieces=4, gate=gate, gate_before=3))
    seen: list[str] = []
    first_delta = threading.Event()
    try:
        with client.messages.stream(model=ROUTE_NAME, max_tokens=64,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            for event in stream:
                seen.append(event.type)
                if event.type == "content_block_delta" and not first_delta.is_set():
                    # The gate is still shut, so the answer cannot be complete: this event came through nginx
                    # unbuffered. (The upstream may still be sending its first pieces: wait for it at the gate.)
                    assert gate.reached.wait(30)
                    first_delta.set()
                    gate.open()
            text = stream.get_final_message().content[0].text
    finally:
        gate.open()
    assert first_delta.is_set()
    assert text == "one two three four"
    assert seen[-1] == "message_stop"


def test_a_stopped_instance_costs_no_request(setup) -> None:
    client, upstreams, gateways = setup
    for up in upstreams:
        up.script(ChatReply(text="still here"))
    stopped = gateways[1].proc
    stopped.terminate()
    stopped.wait(30)
    assert [_ask(client) for _ in range(4)] == ["still here"] * 4  # refused connections move to the other one
    assert len(upstreams[0].bodies) == 4 and len(upstreams[1].bodies) == 0


# ---- what nginx answers itself is Anthropic's error JSON; what the gateway would answer reaches the gateway --------

def _post(port: int, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str, dict]:
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/v1/messages", body, {"content-type": "application/json", **(headers or {})})
        answer = conn.getresponse()
        return answer.status, answer.getheader("content-type") or "", json.loads(answer.read())
    finally:
        conn.close()


def _body(text_bytes: int) -> bytes:
    import json

    return json.dumps({"model": ROUTE_NAME, "max_tokens": 5,
                       "messages": [{"role": "user", "content": "x" * text_bytes}]}).encode()


def test_bodies_and_headers_the_gateway_judges_reach_it(setup) -> None:
    client, upstreams, _ = setup
    for up in upstreams:
        up.script(ChatReply(text="ok"))
    port = int(str(client.base_url).rsplit(":", 1)[1].strip("/"))
    status, kind, error = _post(port, _body(32 * 1024 * 1024 + 1024))  # over the gateway's 32 MiB, under nginx's
    assert (status, kind, error["error"]["type"]) == (413, "application/json", "request_too_large")
    assert "gateway's limit" in error["error"]["message"]  # the gateway's own answer, not nginx's
    status, _, answer = _post(port, _body(10), {"x-dragoman-repo": "r" * 10_000})  # nginx's default took 8 KiB
    assert status == 200 and answer["type"] == "message"


@pytest.mark.parametrize(("what", "body", "headers", "status", "error_type"), [
    ("body past the load balancer's limit", 34 * 1024 * 1024, {}, 413, "request_too_large"),
    ("headers past 64 KiB", 10, {"x-dragoman-repo": "r" * 70_000}, 431, "invalid_request_error"),
])
def test_what_nginx_refuses_itself_is_anthropic_error_json(setup, what, body, headers, status, error_type) -> None:
    client, _, _ = setup
    port = int(str(client.base_url).rsplit(":", 1)[1].strip("/"))
    got, kind, error = _post(port, _body(body), headers)
    assert (got, kind) == (status, "application/json"), what
    assert error["type"] == "error" and error["error"]["type"] == error_type and error["error"]["message"]


def test_no_instance_answering_is_an_overloaded_error(tmp_path: Path) -> None:
    _need_nginx()
    with _nginx(tmp_path, [free_port(), free_port()]) as port:
        status, kind, error = _post(port, _body(10))
    assert (status, kind) == (529, "application/json")
    assert error == {"type": "error", "error": {"type": "overloaded_error", "message": error["error"]["message"]}}
