"""Running the ASGI app under uvicorn: one process, or N worker processes sharing one port."""

from __future__ import annotations

import os
import signal
import sys

import uvicorn
import uvicorn.supervisors

from dragoman.config.model import Config
from dragoman.server import Gateway


class _Server(uvicorn.Server):
    async def startup(self, sockets=None) -> None:  # noqa: ANN001
        await super().startup(sockets=sockets)
        if self.started and self.config.workers in (None, 1):
            print(f"dragoman listening on http://{self.config.host}:{self.config.port}", file=sys.stderr, flush=True)


class _Supervisor(uvicorn.supervisors.Multiprocess):
    """uvicorn's supervisor restarts every worker on SIGHUP, and a worker that cannot load a broken file
    would not come back; instead each worker is told to reload, and validates the file before it swaps."""

    def handle_hup(self) -> None:
        for process in self.processes:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)


def run(config: Config, host: str, port: int, workers: int, log_level: str, config_path: str | None = None) -> int:
    """Serve until stopped. uvloop + httptools: the fastest stack measured here (shared/performance.md)."""
    common = dict(
        host=host, port=port, loop="uvloop", http="httptools", lifespan="on", access_log=False,
        log_level="warning" if log_level == "info" else log_level, server_header=False, date_header=False,
        proxy_headers=False,  # the gateway never reads the client's address; the middleware cost ~1% per request
        timeout_graceful_shutdown=30,
    )
    if workers > 1:
        # Each worker builds its own app from DRAGOMAN_CONFIG (or zero-config): sockets are shared, state is not.
        uv = uvicorn.Config("dragoman.server:create_app", factory=True, workers=workers, **common)
        sock = uv.bind_socket()
        print(f"dragoman listening on http://{host}:{port} ({workers} workers)", file=sys.stderr, flush=True)
        _Supervisor(uv, sockets=[sock]).run()
        return 0
    server = _Server(uvicorn.Config(Gateway(config, config_path), **common))
    server.run()
    return 0 if server.started else 1
