"""Run the gateway as a real subprocess (`python -m dragoman serve`) for end-to-end tests."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml
from tests.waiting import wait_for

START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
ROUTE_NAME = "gpt-5-via-gateway"
UPSTREAM_KEY = "sk-upstream-test"


@dataclass
class Gateway:
    """A running gateway process."""

    port: int
    proc: subprocess.Popen
    stderr_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def audit_store(self) -> str:
        """The URL of its default audit store: SQLite in the data directory run_gateway gave it."""
        return f"sqlite:///{self.stderr_path.parent / 'data' / 'dragoman' / 'dragoman.db'}"

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Until it answers /healthz; AssertionError (its stderr shown) when it exits or `timeout` passes first."""
        # Its own "listening" line too: a free port is only free when asked, and another server that took it
        # meanwhile would answer /healthz while this gateway exits.
        wait_for(lambda: _healthy(self.port) and f"listening on http://127.0.0.1:{self.port}" in self.stderr_text(),
                 timeout, "the gateway healthy", alive=self.proc, log=self.stderr_text)

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        """A fresh raw HTTP connection to the gateway."""
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def leave_mid_stream(self, body: dict) -> str:
        """POST `body` (a streamed Messages request), read its first events and walk away, as Claude Code's Esc
        does: the request's id."""
        conn = self.connection()
        try:
            conn.request("POST", "/v1/messages", json.dumps(body), {"content-type": "application/json",
                                                                    "anthropic-version": "2023-06-01"})
            response = conn.getresponse()
            assert response.status == 200 and b"message_start" in response.read1(65536)
            return response.getheader("request-id") or ""
        finally:
            conn.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | dict | list | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> "RawResponse":
        """One raw HTTP exchange on a fresh connection; dict/list bodies are sent as JSON."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body, {"content-type": "application/json", **(headers or {})})
            response = conn.getresponse()
            data = response.read()
            return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            conn.close()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def free_port() -> int:
    """A port nothing listens on right now (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(port: int, path: str = "/healthz") -> bool:
    """Whether a server on 127.0.0.1:`port` answers GET `path` with a 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _stop(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT, group: bool = False) -> None:
    """SIGTERM, then SIGKILL (of its whole session with `group`: supervisor and workers) after `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)  # the session it leads: supervisor and its workers
        else:
            proc.kill()
        proc.wait(timeout)


@contextlib.contextmanager
def run_gateway(
    config_text: str | None, env: dict[str, str] | None = None, command: list[str] | None = None, *,
    args: tuple[str, ...] = (), workers: int = 1, preexec_fn: Callable[[], None] | None = None,
    healthy: bool = True,
) -> Iterator[Gateway]:
    """Start `python -m dragoman serve` (or `command`, e.g. the `dragoman` console script) on a free port with
    `config_text` as its config (None: no --config, the zero-config start) and any extra `args`; stop it on
    exit. With `healthy=False` it is handed over as soon as it is spawned, for a test of its startup. Its audit store defaults to a temporary data directory (XDG_DATA_HOME), never the developer's home.
    With `workers` > 1 the supervisor leads its own session, so its workers can be killed with it."""
    with tempfile.TemporaryDirectory(prefix="dragoman-e2e-") as tmp:
        config_args: list[str] = []
        if config_text is not None:
            config_path = Path(tmp) / "dragoman.yaml"
            config_path.write_text(config_text)
            config_args = ["--config", str(config_path)]
        stderr_path = Path(tmp) / "stderr.log"
        port = free_port()
        drop = ("DRAGOMAN_API_KEYS", "DRAGOMAN_CONFIG", "DRAGOMAN_CONFIG_SNAPSHOT")
        proc_env = {k: v for k, v in os.environ.items() if k not in drop}
        proc_env.update({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                         "XDG_DATA_HOME": str(Path(tmp) / "data")})
        proc_env.update(env or {})
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(
                [*(command or [sys.executable, "-m", "dragoman"]), "serve", *config_args,
                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), *args],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                env=proc_env,
                cwd=tmp,
                start_new_session=workers > 1,
                preexec_fn=preexec_fn,
            )
        gateway = Gateway(port=port, proc=proc, stderr_path=stderr_path)
        try:
            if healthy:
                try:
                    gateway.wait_healthy()
                except AssertionError as err:
                    raise RuntimeError(str(err)) from None  # a fixture that could not start, not a failed assertion
            yield gateway
        finally:
            _stop(proc, group=workers > 1)


def gateway_config(
    endpoint: str,
    *,
    route_name: str = ROUTE_NAME,
    default_route: str | None = ROUTE_NAME,
    model: str = "gpt-5",
    provider: str = "openai",
    api_key_ref: str = "openai_prod",
    max_output_tokens: int | None = None,
    timeout: dict[str, float] | None = None,
    translation: dict[str, Any] | None = None,
    auth_keys: list[str] | None = None,
    max_body_bytes: int | None = None,
    model_routes: list[dict[str, str]] | None = None,
    extra_routes: list[dict[str, Any]] | None = None,
) -> str:
    """The YAML text of a one-route config pointing at `endpoint` (the shape in docs/CONTRACT.md)."""
    upstream: dict[str, Any] = {"provider": provider, "model": model, "endpoint": endpoint, "api_key_ref": api_key_ref}
    if max_output_tokens is not None:
        upstream["max_output_tokens"] = max_output_tokens
    if timeout is not None:
        upstream["timeout"] = timeout
    route: dict[str, Any] = {"name": route_name, "inbound_protocol": "anthropic", "upstream": upstream}
    if translation is not None:
        route["translation"] = translation
    config: dict[str, Any] = {}
    if default_route is not None:
        config["default_route"] = default_route
    if model_routes is not None:
        config["model_routes"] = model_routes
    if auth_keys is not None:
        config["auth"] = {"keys": auth_keys}
    if max_body_bytes is not None:
        config["server"] = {"max_body_bytes": max_body_bytes}
    config["routes"] = [route, *(extra_routes or [])]
    return yaml.safe_dump(config, sort_keys=False)


UPSTREAM_ENV = {"OPENAI_PROD": UPSTREAM_KEY}
