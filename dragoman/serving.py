"""Running the ASGI app under uvicorn: one process, or N worker processes sharing one port.

Both run `_Server`, whose shutdown stops accepting before it drains: it takes the connections the kernel has
already queued (closing the listener would reset them), closes the listener, answers every request under way, and
at `server.shutdown_timeout` ends the upstream exchanges still open with an overloaded error (`Gateway.end_inflight`).
With workers, `_Supervisor` closes its own copy of the listening socket the moment it is told to stop, so no
connection queues on a socket that nobody will accept from, and starts replacement workers from the last good
config (`worker_config`). A worker of the first start that cannot start stops the gateway (exit code 3, as one
process); a replacement that cannot start (the store unreachable for a moment) is retried with backoff while the
others serve. Written against uvicorn 0.55.0; tests/test_uvicorn_internals_pinned.py pins what the
overrides rely on."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from dragoman.config.model import Config, ServerSettings
from dragoman.config.reload import ignore_sighup, ignore_sighup_to_exit
from dragoman.http_protocol import LimitedHttpToolsProtocol, Limits
from dragoman.observe.metrics import claim_multiprocess_dir, forget_worker, release_multiprocess_dir
from dragoman.server import Gateway
from dragoman.upstreams.inflight import SHUTDOWN_MESSAGE
from dragoman.worker_config import SNAPSHOT_ENV, LastGoodConfig

log = logging.getLogger("dragoman")

HARD_STOP_MARGIN = 5.0  # seconds after shutdown_timeout for ended exchanges to send their error; then uvicorn cancels
_RESERVED_DESCRIPTORS = 64  # files, the audit store, pipes: not for connections


class _UvicornConfig(uvicorn.Config):
    """uvicorn's config plus what our protocol and server read; pickled as is to spawned workers."""

    def __init__(self, app: Any, *, limits: Limits, drain_seconds: float, **kwargs: Any) -> None:
        super().__init__(app, timeout_graceful_shutdown=drain_seconds + HARD_STOP_MARGIN, **kwargs)  # type: ignore[arg-type]
        self.limits = limits
        self.drain_seconds = drain_seconds


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_stopped: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.on_stopped = on_stopped  # after the drain: uvicorn re-raises a stop signal, so no `finally` of ours runs

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.started:
            return
        if self.config.workers in (None, 1):
            port = _bound_port([s for server in self.servers for s in server.sockets or ()], self.config.port)
            print(f"dragoman listening on http://{self.config.host}:{port}", file=sys.stderr, flush=True)
        else:
            log.info("worker %d serving", os.getpid())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._take_queued()
        app = self.config.loaded_app
        if isinstance(app, Gateway):
            app.begin_shutdown()  # the dashboard's live feeds end now, not at the drain limit
        cut = asyncio.get_running_loop().call_later(self.config.drain_seconds, self._end_drain)
        try:
            await super().shutdown(sockets=sockets)  # closes the listener at once, then drains
        finally:
            cut.cancel()
            if self.on_stopped is not None:
                self.on_stopped()

    def _end_drain(self) -> None:
        """shutdown_timeout passed: end what is still under way with an overloaded error, not a cut."""
        for connection in list(self.server_state.connections):
            if isinstance(connection, LimitedHttpToolsProtocol):
                connection.end_waiting(SHUTDOWN_MESSAGE)  # requests still arriving
        app = self.config.loaded_app
        if isinstance(app, Gateway):
            app.end_inflight()  # upstream exchanges

    async def _take_queued(self) -> None:
        """Accept every connection the kernel has completed: the listener's close would reset them."""
        loop = asyncio.get_running_loop()
        config, state, app_state = self.config, self.server_state, self.lifespan.state

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(config=config, server_state=state, app_state=app_state)

        for server in self.servers:
            for listener in server.sockets or ():
                try:
                    sock = socket.socket(fileno=os.dup(listener.fileno()))  # a duplicate: closing it stops nothing
                except OSError:  # out of descriptors: the queue is lost as it would have been
                    continue
                with sock:
                    sock.setblocking(False)
                    while True:
                        try:
                            conn, _ = sock.accept()
                        except OSError:  # BlockingIOError: none left
                            break
                        try:
                            await loop.connect_accepted_socket(protocol, conn)
                        except OSError:  # gone already
                            conn.close()


class _Process(Process):
    """A uvicorn worker process that runs `_Server`."""

    first_start = False  # one of the workers the gateway started with, not a replacement

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = _Server(config=self.config)
        return self._server


class _Backoff:
    """When a worker slot whose replacement could not start may try again: `first` seconds after the first
    failure, doubling up to `cap`. The guard against a hot crash loop, yet a transient cause (PostgreSQL restarting)
    ends in a serving worker, never in the whole gateway stopping."""

    def __init__(self, first: float = 1.0, cap: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.first, self.cap, self.clock = first, cap, clock
        self._next = first
        self._due: float | None = None  # set while waiting for the next try

    def failed(self) -> float:
        """A start failed: the seconds until the next try."""
        delay, self._next = self._next, min(self.cap, self._next * 2)
        self._due = self.clock() + delay
        return delay

    def pending(self) -> bool:
        """A start failed and no worker was started since."""
        return self._due is not None

    def due(self) -> bool:
        """The wait is over: the caller starts a worker now (only once per failure)."""
        if self._due is None or self.clock() < self._due:
            return False
        self._due = None
        return True


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, with: SIGHUP passed on to each worker (which validates the file before it swaps,
    rather than being restarted onto a broken file), replacements started from the last good config, and the
    listening socket closed as soon as a stop signal arrives. A worker of the first start that cannot start stops
    the gateway (`startup_failed`); a replacement that cannot start is tried again with backoff."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], last_good: LastGoodConfig | None,
                 backoff: Callable[[], _Backoff] = _Backoff) -> None:
        super().__init__(config, sockets)
        self.last_good = last_good
        self.backoff = backoff
        self.startup_failed = False
        self._retries: dict[int, _Backoff] = {}  # slot index -> its replacements' backoff, until one serves
        self._stopping = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_stop_signal)

    def _on_stop_signal(self, sig: int, frame: Any) -> None:
        # In the handler, not on the next 0.5 s tick: the workers (signalled with us, by a process-group kill)
        # may close their copies first, and a connection queued on ours alone would be reset at exit.
        self._stopping = True  # no new worker can be handed the closed socket
        ignore_sighup("shutting down")  # nothing left to reload: the workers are flushing their records
        for sock in self.sockets:
            sock.close()
        self.signal_queue.append(sig)

    def init_processes(self) -> None:
        for _ in range(self.processes_num):
            process = self._start_worker()
            process.first_start = True
            self.processes.append(process)

    def _start_worker(self) -> _Process:
        process = _Process(self.config, self.sockets)
        # Started with SIGHUP blocked, a mask the worker keeps across exec: a SIGHUP (ours, forwarded, or the
        # process group's) reaching it before it can handle one waits until `worker_config` has set it to be
        # ignored, instead of killing it. Blocked here too for that instant; it is delivered once unblocked.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        return process

    def keep_subprocess_alive(self) -> None:
        # uvicorn 0.55 Multiprocess.keep_subprocess_alive, starting `_Process` and refreshing the snapshot first;
        # uvicorn stops on any startup failure, which is right only for the first start (the app or the socket is
        # broken): a replacement's failure can be transient, and stopping would take the serving workers down too.
        if self.should_exit.is_set() or self._stopping:
            return
        if self.last_good is not None:
            self.last_good.refresh()
        for idx, process in enumerate(self.processes):
            if not self._keep_slot(idx, process):
                return

    def _keep_slot(self, idx: int, process: Process) -> bool:
        """Keep one worker slot served; False when the supervisor stops."""
        retry = self._retries.get(idx)
        if retry is not None and retry.pending():  # its last replacement could not start: wait for the backoff
            if retry.due():
                self.processes[idx] = self._start_worker()
            return True
        if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
            if retry is not None and process.is_ready(timeout=self.config.timeout_worker_healthcheck):
                del self._retries[idx]  # it serves: a later failure starts from the first delay again
            return True
        process.kill()
        process.join()
        forget_worker(process.pid)
        if process.exitcode == STARTUP_FAILURE:
            return self._not_started(idx, process)
        if self.should_exit.is_set() or self._stopping:
            return False
        log.warning("worker [%s] died (exit code %s); starting another", process.pid, process.exitcode)
        self.processes[idx] = self._start_worker()
        return True

    def _not_started(self, idx: int, process: Process) -> bool:
        """A worker exited before it served: fatal for the first start, else its slot waits out the backoff."""
        if getattr(process, "first_start", False):
            log.error("worker [%s] could not start; stopping", process.pid)
            self.startup_failed = True
            self.should_exit.set()
            return False
        # The worker logged why (redacted like every startup error); said once here, with when it is tried again.
        delay = self._retries.setdefault(idx, self.backoff()).failed()
        log.error("worker [%s] could not start; starting another in %g s, the other workers serve meanwhile",
                  process.pid, delay)
        return True

    def join_all(self) -> None:
        # A stopped worker dies of the re-raised SIGTERM, so its own exit hooks never drop its live gauges.
        for process in self.processes:
            process.join()
            forget_worker(process.pid)

    def handle_ttou(self) -> None:
        retired = self.processes[-1] if self.processes_num > 1 else None  # the one uvicorn stops
        super().handle_ttou()
        if retired is not None:
            forget_worker(retired.pid)
            self._retries.pop(len(self.processes), None)

    def handle_ttin(self) -> None:
        self.processes_num += 1
        self.processes.append(self._start_worker())

    def handle_hup(self) -> None:
        if self._stopping or self.should_exit.is_set():
            log.warning("SIGHUP ignored: shutting down")
            return
        if self.last_good is not None:
            self.last_good.refresh(force=True)
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:  # not one waiting to be started again
                os.kill(process.pid, signal.SIGHUP)


def _bound_port(sockets: list[socket.socket], asked: int) -> int:
    """The port the listener got: the one asked for, or with --port 0 the free port the system picked."""
    for sock in sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return sock.getsockname()[1]
    return asked


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed (workers inherit it); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit is refused above the system's own cap (Linux nr_open, macOS OPEN_MAX): try less.
    targets = (hard,) if hard != resource.RLIM_INFINITY else (1 << 20, 1 << 16, 10_240)
    for target in targets:
        if target <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            continue
    return soft


def limits_for(settings: ServerSettings, descriptors: int) -> Limits:
    # Each connection may hold an upstream connection too: half the descriptors, so accept() never fails.
    default_cap = max(16, (descriptors - _RESERVED_DESCRIPTORS) // 2)
    return Limits(
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        max_connections=settings.max_connections or default_cap,
    )


def port_in_use(host: str, port: int) -> str | None:
    """Why `port` cannot be served on `host`, when another server holds it: checked before the start block, so a
    first run ends with how to pick another port rather than uvicorn's bare "address already in use" after it.
    Bound as uvicorn binds (SO_REUSEADDR), then released; any other bind error is left to uvicorn to report."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use: pick another with --port or DRAGOMAN_PORT"
    return None


def run(config: Config, host: str, port: int, workers: int, log_level: str, config_path: str | None = None) -> int:
    """Serve until stopped. uvloop + httptools: the fastest stack measured here (shared/performance.md)."""
    settings = config.server
    common: dict[str, Any] = dict(
        host=host, port=port, loop="uvloop", http=LimitedHttpToolsProtocol, ws="none", lifespan="on",
        access_log=False, log_level="warning" if log_level == "info" else log_level, server_header=False,
        date_header=False,
        proxy_headers=False,  # the gateway never reads the client's address; the middleware cost ~1% per request
        limits=limits_for(settings, raise_descriptor_limit()), drain_seconds=settings.shutdown_timeout,
    )
    # This gateway's own metrics directory (if any), removed when it stops: never shared with another gateway.
    metrics_dir = claim_multiprocess_dir(workers if config.observe.metrics.enabled else 1)
    try:
        if workers > 1:
            return _run_workers(common, workers, config_path)
        server = _Server(_UvicornConfig(Gateway(config, config_path), **common),
                         on_stopped=lambda: release_multiprocess_dir(metrics_dir))
        try:
            server.run()
        finally:
            ignore_sighup_to_exit()  # the closed event loop put SIGHUP back to its default action
        return 0 if server.started else 1
    finally:
        release_multiprocess_dir(metrics_dir)


def _run_workers(common: dict[str, Any], workers: int, config_path: str | None) -> int:
    # Each worker builds its own app from DRAGOMAN_CONFIG (or zero-config): sockets are shared, state is not.
    last_good = LastGoodConfig(config_path) if config_path else None
    if last_good is not None:
        os.environ[SNAPSHOT_ENV] = last_good.snapshot  # spawned workers inherit the environment
    try:
        uv = _UvicornConfig("dragoman.server:create_app", factory=True, workers=workers, **common)
        sock = uv.bind_socket()
        print(f"dragoman listening on http://{common['host']}:{_bound_port([sock], common['port'])} ({workers} workers)",
              file=sys.stderr, flush=True)
        supervisor = _Supervisor(uv, [sock], last_good)
        supervisor.run()
        # Non-zero when no worker could start, as one process: a supervisor (systemd, Kubernetes) restarts it.
        return STARTUP_FAILURE if supervisor.startup_failed else 0
    finally:
        ignore_sighup_to_exit()  # every worker has stopped: nothing is left to reload or to lose
        if last_good is not None:
            last_good.close()
