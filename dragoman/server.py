"""The HTTP server: a plain ASGI app (no framework on the hot path), HTTP only. It parses and authenticates,
hands a Messages request's body to its Exchange (dragoman.exchange), writes the bytes it is given back, and
turns every GatewayError into an Anthropic error in one place (`_send_error`)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os

import aiohttp
import msgspec

from dragoman import errors as E
from dragoman.admin_api import AdminApi, Services
from dragoman.client_keys import client_key
from dragoman.config.model import Config
from dragoman.config.reload import ConfigWatcher, ignore_sighup
from dragoman.config.restart import needing_restart
from dragoman.correctness_loop import CorrectnessLoop
from dragoman.exchange.lifecycle import Exchange, new_request_id
from dragoman.govern.authenticate import caller_grant
from dragoman.http_io import (
    ClientGone, MethodNotAllowed, Receive, Scope, Send, read_body, require_method, send_error, send_json,
    stream_answer, unless_gone, wait_disconnect,
)
from dragoman.govern.governor import Admission, Governor
from dragoman.govern.grant import Grant
from dragoman.govern.key_cache import KeyCache, open_key_cache
from dragoman.loop.assess import Assessor
from dragoman.loop.clusters import Clusters
from dragoman.loop.scores import Scoreboard
from dragoman.loop.shift import Shift, variant_names
from dragoman.loop_api import LoopView
from dragoman.not_found_log import NotFoundLog
from dragoman.config.model import Pricing
from dragoman.observe.pricing import Pricer
from dragoman.observe.record import CANCELLED_STATUS, CLIENT_DISCONNECTED
from dragoman.observe.runtime import Observability
from dragoman.observe.stores import StoreError, is_postgres
from dragoman.protocols import anthropic as A
from dragoman.redaction import redact_cut
from dragoman.request_guard import answer_preflight, is_preflight, with_cors
from dragoman.runtime import Runtime
from dragoman.tokens import count_in_turn
from dragoman.ui.app import Dashboard
from dragoman.upstreams.client import UpstreamClient
from dragoman.upstreams.inflight import InFlight

log = logging.getLogger("dragoman")


_decode_count = msgspec.json.Decoder(A.CountTokensRequest).decode
_encode = msgspec.json.encode



class Gateway:
    """The ASGI application for one loaded Config."""

    def __init__(self, config: Config, config_path: str | None = None, *, worker: bool = False) -> None:
        self.config = config
        self.config_path = config_path
        self.worker = worker  # one of `--workers N`: other processes may receive a call's next turn
        self.runtime: Runtime | None = None  # built at startup: it needs the event loop's HTTP session
        self._session: aiohttp.ClientSession | None = None
        self._client: UpstreamClient | None = None
        self._watcher: ConfigWatcher | None = None
        self._inflight = InFlight()
        # The correctness loop judges calls in the audit writer's thread (loop/assess.py); the sinks of scores and
        # config versions register with it.
        self.assessor = Assessor(config.loop.verdicts)
        self.loop = CorrectnessLoop(self, self.assessor)  # config versions and rollback, the judge
        self.observe = Observability(config.observe, _pricing(config), assess=self.assessor.assess_drain,
                                     assess_pending=self.assessor.pending)
        self._services: Services | None = None  # what the admin API works on, built at startup
        self._loop_parts(config)
        self._not_found = NotFoundLog(log)
        self._warned_doubled_v1 = False
        self.keys: KeyCache | None = None  # virtual keys, loaded at startup
        self._keys_task: asyncio.Task | None = None
        self._admin_api: AdminApi | None = None
        self.governor: Governor | None = None  # built at startup: its counters may need the event loop (Redis)
        self._dashboard: Dashboard | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    # ---- lifecycle ---------------------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except StoreError as exc:  # the operator's to fix (a newer Dragoman's store, a URL naming none):
                    await self._abandon_start()  # one line, as the CLI prints it, not a traceback per worker
                    await send({"type": "lifespan.startup.failed", "message": f"dragoman: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _abandon_start(self) -> None:
        """Close what a failed start opened before it failed (the upstreams' HTTP session among it)."""
        try:
            await self.stop()
        except Exception:  # noqa: BLE001 - a start cut short leaves parts unbuilt; the failure reported is the start's
            log.debug("closing a gateway whose start failed", exc_info=True)

    def shares_store(self) -> bool:
        """Another process may receive a call's next turn: this is a worker of `--workers N`, or the store is
        PostgreSQL (other instances), as written or from DRAGOMAN_AUDIT_STORE (the settings observe applied)."""
        return self.worker or is_postgres(self.observe.settings.audit.store)

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=False,
                                              response_class=self._inflight.response_class)
        self._client = UpstreamClient(self._session)
        await asyncio.get_running_loop().run_in_executor(None, self.observe.start)
        self.assessor.attach(self.observe.store, self.observe.metrics, shared=self.shares_store())
        await self._start_keys()
        self.runtime = Runtime(self.config, self._client, shift=self.shift)
        await self.loop.start()
        self.governor = Governor(self.config.governance, lambda: self.observe.store, self.observe.metrics)
        self._services = Services(audit=self.observe.store, keys=self.keys, governor=self.governor,
                                  loop=asyncio.get_running_loop(), loop_view=self.loop_view,
                                  versions=self.loop.versions)
        self._admin_api = AdminApi(self._services, self.observe.settings.admin.keys)
        if self.config_path is not None:
            self._watcher = ConfigWatcher(self.config_path, self.apply_config, applied=self.loop.config_applied)
            self._watcher.start()
        else:
            ignore_sighup("zero-config, no file to reload")
        _tune_gc()

    def apply_config(self, config: Config) -> None:
        """Swap in a new, already validated config; requests in flight keep the runtime they started with."""
        assert self._client is not None
        waiting = needing_restart(self.config, config)
        if waiting:
            log.warning("config reloaded; these settings take effect at the next restart (this process keeps the "
                        "values it started with): %s", ", ".join(waiting))
        self.runtime = Runtime(config, self._client, previous=self.runtime, shift=self.shift)
        self.config = config
        if self._admin_api is not None:  # a leaked key taken out of admin.keys must stop working now
            self._admin_api.use_admin_keys(config.observe.with_env().admin.keys)
        if self.governor is not None:
            self.governor.configure(config.governance)  # (the counters' backend: config/restart.py)
        self._configure_loop(config)
        self.observe.pricer = Pricer(_pricing(config))  # (audit, metrics, tracing: config/restart.py)

    def _loop_parts(self, config: Config) -> None:
        """The correctness loop's scores, clusters and traffic shift: one scoreboard per process (workers do not
        share theirs), kept over reloads. `verdict_sinks` are what the Assessor calls with each finished call."""
        metrics = self.observe.metrics
        self.scoreboard = Scoreboard(
            config.loop.shift,
            on_event=None if metrics is None else lambda e: metrics.loop_shift(e.kind, e.route, e.shape),
        )  # scores reach /metrics at scrape time (_metrics): a gauge write per verdict cost the writer thread
        self.clusters = Clusters()
        self.shift = Shift(self.scoreboard)
        self.verdict_sinks = (self.scoreboard, self.clusters)
        for sink in self.verdict_sinks:
            self.assessor.add_sink(sink)
        self._configure_loop(config)

    def _configure_loop(self, config: Config) -> None:
        candidates = frozenset(c.route for w in config.weighted for c in w.candidates)
        self.scoreboard.configure(config.loop.shift, variant_names(config.routes), candidates)
        self.shift.enabled = config.loop.enabled and config.loop.shift.enabled
        self.loop_view = LoopView(self.scoreboard, self.clusters, config.weighted, self.shift.enabled)
        if self.observe.metrics is not None:  # the loop metrics' model labels: configured names always have theirs
            self.observe.metrics.configure_models(route.model for route in config.routes)
        if self._services is not None:
            self._services.loop_view = self.loop_view

    def end_inflight(self) -> int:
        """The shutdown's drain limit passed: end each upstream exchange still open with an overloaded error."""
        ended = self._inflight.end_all()
        if ended:
            log.warning("shutdown_timeout passed: ended %d upstream exchange(s) still in flight", ended)
        return ended

    async def _start_keys(self) -> None:
        """Load the virtual keys before the first request, then keep them fresh in the background."""
        audit = self.observe.settings.audit
        self.keys = await asyncio.get_running_loop().run_in_executor(
            None, open_key_cache, self.config.governance.keys, self.observe.store, audit.store)
        if self.keys is not None:
            if self.keys.has_keys:
                log.info("virtual keys: %d in the store; every call needs a key", len(self.keys))
            self._keys_task = asyncio.create_task(self.keys.run(), name="dragoman-key-refresh")

    def begin_shutdown(self) -> None:
        """Shutdown began: end what would otherwise run until the drain limit (the dashboard's live feeds)."""
        if self._dashboard is not None:
            self._dashboard.closing.set()

    async def stop(self) -> None:
        self.begin_shutdown()
        self.loop.stop()
        if self._keys_task is not None:
            self._keys_task.cancel()
        if self._watcher is not None:
            self._watcher.stop()  # SIGHUP is ignored from here on, never fatal: the queue below is still to write
        else:
            ignore_sighup("shutting down")
        if self._session is not None:
            await self._session.close()
        if self.governor is not None:
            await self.governor.close()
        await self.loop.recorded(10.0)  # a reload's version record, before the store closes
        # uvicorn runs this on SIGTERM once requests in flight are done: every queued record is written.
        await self.observe.aclose()

    # ---- dispatch ----------------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        try:
            origin = self._admit(scope, request_id)
            if origin is not None:
                send = with_cors(send, origin)
                if is_preflight(scope):
                    await answer_preflight(send, scope)
                    return
            await self._dispatch(scope, receive, send, request_id)
        except E.GatewayError as err:
            await send_error(send, err, request_id)
        except ClientGone:
            return
        except Exception:  # noqa: BLE001 - a bug must answer 500, not take the process down
            log.exception("unhandled error in request %s", request_id)
            await send_error(send, E.ApiError(f"internal gateway error (request id {request_id})"), request_id)

    def _admit(self, scope: Scope, request_id: str) -> bytes | None:
        """Refuse what a web page could forge (request_guard.py); a refused Messages request is still audited."""
        rt = self.runtime
        assert rt is not None
        try:
            return rt.guard.check(scope)
        except E.GatewayError as err:
            if scope["path"].endswith("/v1/messages"):
                self.observe.record(Exchange(request_id, scope["headers"]).finish(err.status, err.error_type, self.observe.pricer))
            raise

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        path: str = scope["path"]
        if path.startswith("/v1/v1/"):  # the one check the hot path pays for it: see _undouble_v1
            path = self._undouble_v1(path)
        method: str = scope["method"]
        rt = self.runtime
        assert rt is not None
        if path == "/v1/messages":
            require_method(method, "POST")
            await self._messages(rt, scope, receive, send, request_id)
        elif path == "/v1/messages/count_tokens":
            require_method(method, "POST")
            await self._authenticate(rt, scope)
            await self._count_tokens(rt, scope, receive, send, request_id)
        elif path == "/v1/models" or path.startswith("/v1/models/"):
            require_method(method, "GET")
            await self._authenticate(rt, scope)
            await self._models(rt, path, send, request_id)
        elif path == "/metrics":
            require_method(method, "GET")
            if rt.metrics_keys is not None:  # metrics.auth: key
                assert self._admin_api is not None
                await self._admin_api.authenticate_scraper(scope["headers"], rt.keys, rt.metrics_keys)
            await self._metrics(rt, send, request_id)
        elif path in ("/", "/healthz", "/api/hello"):  # Claude Code preflights HEAD / (2.1.197) or /api/hello
            if method not in ("GET", "HEAD"):
                raise MethodNotAllowed(method)
            await send_json(send, 200, b'{"status":"ok"}', request_id)  # uvicorn drops the body for HEAD
        elif path.startswith("/api/"):
            await self._api(rt, scope, receive, send, request_id)
        elif path == "/ui" or path.startswith("/ui/"):
            await self.dashboard().serve_page(scope, receive, send, request_id)
        else:
            self._not_found(method, scope["path"])
            raise E.NotFound(f"no such endpoint: {method} {scope['path']}")

    def _undouble_v1(self, path: str) -> str:
        # The widely copied setup says ANTHROPIC_BASE_URL=https://gateway.example.com/v1, and Claude Code and the
        # SDKs append /v1/messages to it: serve /v1/v1/... as /v1/..., and say once how to fix the client.
        if not self._warned_doubled_v1:
            self._warned_doubled_v1 = True
            log.warning("a client called %r: its ANTHROPIC_BASE_URL ends in /v1, and clients add /v1 themselves; "
                        "drop the /v1 suffix from ANTHROPIC_BASE_URL (served as under one /v1 meanwhile)",
                        redact_cut(path, 200))  # a key put into the base URL is in every path
        return path[3:]

    # ---- endpoints ---------------------------------------------------------------------------------------

    def dashboard(self) -> Dashboard:
        """/ui and the admin API (dragoman/ui/app.py), built on first use."""
        if self._dashboard is None:
            assert self._admin_api is not None
            self._dashboard = Dashboard(self._admin_api)
        return self._dashboard

    async def _messages(self, rt: Runtime, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        exchange = Exchange(request_id, scope["headers"], self.observe.tracer, capture=rt.loop_on,
                            keep_answer=self.loop.sampled())
        status, error_type = 200, None
        gone: asyncio.Future | None = None  # done when the client disconnects, once its body is read
        admission: Admission | None = None
        governor = self.governor
        assert governor is not None

        async def gate(ex: Exchange) -> None:  # budgets and rate limits, before any upstream call
            nonlocal admission
            admission = await governor.admit(grant, ex.requested_model or "", ex.input_estimate, ex.streamed)

        try:
            grant = await self._authenticate(rt, scope)
            exchange.authenticated(grant)
            body = await read_body(scope, receive, rt.max_body)
            gone = asyncio.ensure_future(wait_disconnect(receive))
            await unless_gone(exchange.open(body, rt.router, rt.upstreams, gate), gone)
            extra = admission.headers if admission is not None else None
            if exchange.streamed:
                await stream_answer(send, exchange.stream(), request_id, gone, extra)
                if exchange.stopped_reading():  # the client had its 200: cancelled, not answered in full
                    error_type = CLIENT_DISCONNECTED
            else:
                await send_json(send, 200, exchange.answer(), request_id, extra=extra)
        except E.GatewayError as err:
            status, error_type = err.status, err.error_type
            raise
        except ClientGone:
            status, error_type = CANCELLED_STATUS, CLIENT_DISCONNECTED
            raise
        except BaseException:
            status, error_type = 500, "api_error"
            raise
        finally:
            if gone is not None:
                gone.cancel()
            record = exchange.finish(status, error_type, self.observe.pricer)
            if admission is not None and admission.plan is not None:  # spend and tokens counted, stream slot freed
                if record.cost_usd is None:
                    record.cost_usd = self.observe.pricer.price(record)
                governor.settle(admission, record.input_tokens, record.output_tokens, record.cost_usd)
            self.loop.finished(rt, exchange, record)

    async def _authenticate(self, rt: Runtime, scope: Scope) -> Grant | None:
        """The caller's grant, or None when inbound auth is off (no key configured, no virtual key ever made);
        a missing, unknown, revoked or expired key is a 401."""
        return await caller_grant(client_key(scope["headers"]), (rt.keys,), self.keys, "API key")

    async def _api(self, rt: Runtime, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """/api/…: the dashboard's session or an admin/viewer key, then the admin API (ui/app.py)."""

        async def body(limit: int) -> bytes:
            return await read_body(scope, receive, limit)

        await self.dashboard().serve_api(scope, receive, send, request_id, self.observe.store, rt, body)

    async def _metrics(self, rt: Runtime, send: Send, request_id: str) -> None:
        metrics = self.observe.metrics
        if metrics is None:
            raise E.NotFound("metrics are off (metrics: {enabled: false})")
        for name, breaker in rt.upstreams.breakers.items():  # read at scrape time: nothing on the request path
            metrics.set_breaker_state(name, breaker.state)
        writer = self.observe.writer
        if writer is not None:
            metrics.audit_queue_depth(writer.depth)
        # the scores the writer published after its last drain: one attribute, no lock, on the event loop
        for (route, model, shape), score in self.scoreboard.scores().items():
            metrics.loop_score(route, model, shape, score)
        if self.governor is not None:  # budgets' spend, read at scrape time, by the scopes the config wrote
            configured = [(ref.scope, ref.period) for ref in self.governor.budget_rules.refs()]
            metrics.budgets(await self.governor.budgets(), configured)
        body, content_type = metrics.render()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _count_tokens(self, rt: Runtime, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        body = await read_body(scope, receive, rt.max_body)
        req = E.decode_body(_decode_count, body)
        rt.router.resolve(req.model)
        count = await count_in_turn(req)  # off the loop, one count at a time (tokens.py)
        await send_json(send, 200, _encode(A.TokenCount(input_tokens=count)), request_id)

    async def _models(self, rt: Runtime, path: str, send: Send, request_id: str) -> None:
        infos = [A.ModelInfo(id=route.name, display_name=route.name) for route in rt.router.routes()]
        if path != "/v1/models":
            name = path[len("/v1/models/"):]
            match = [info for info in infos if info.id == name]
            if not match:
                raise E.NotFound(f"model {name!r} is not a route of this gateway")
            await send_json(send, 200, _encode(match[0]), request_id)
            return
        listing = A.ModelList(data=infos, first_id=infos[0].id if infos else None, last_id=infos[-1].id if infos else None)
        await send_json(send, 200, _encode(listing), request_id)


def _tune_gc() -> None:
    # What exists after startup (modules, config, compiled policies) lives as long as the process: freeze it
    # out of every collection. Requests allocate many short-lived containers; a larger first generation
    # collects them less often (+10-25% requests/s in bench/gc_variants.py), at a few MB of memory.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _pricing(config: Config) -> dict[str, Pricing]:
    return {route.name: route.pricing for route in config.routes if route.pricing is not None}


def create_app() -> Gateway:
    """Factory for uvicorn workers: the config path arrives through DRAGOMAN_CONFIG."""
    from dragoman.worker_config import CONFIG_ENV, worker_config

    if not logging.getLogger().handlers:  # a spawned worker: the parent's logging setup did not come along
        level = os.environ.get("DRAGOMAN_LOG_LEVEL", "INFO").upper()
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    config = worker_config(os.environ)  # the file, or the supervisor's last good copy when the file is broken
    return Gateway(config, os.environ.get(CONFIG_ENV) or None, worker=True)
