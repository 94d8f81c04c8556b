"""The correctness loop as one gateway process runs it: the Assessor the audit writer calls, config versions with
their automatic rollback, and the judge. The server calls `start()`, `finished(...)` once per Messages request,
`config_applied(...)` after a reload, and `stop()`; the rest happens off the event loop (the writer thread, the
default executor) or in the judge's own tasks."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import msgspec

from dragoman import errors as E
from dragoman.config.loop import JudgeSettings
from dragoman.config.model import Config
from dragoman.exchange.candidates import select
from dragoman.exchange.lifecycle import Exchange, new_request_id
from dragoman.loop.assess import Assessor
from dragoman.loop.judge import JUDGE_CALL, Budget, Judge
from dragoman.loop.versions import ConfigVersions
from dragoman.observe.record import AuditRecord
from dragoman.protocols import anthropic as A
from dragoman.runtime import Runtime

if TYPE_CHECKING:
    from dragoman.server import Gateway

log = logging.getLogger("dragoman")
_encode = msgspec.json.encode


class CorrectnessLoop:
    def __init__(self, gateway: Gateway, assessor: Assessor) -> None:
        self.gateway = gateway
        self.assessor = assessor
        self.versions: ConfigVersions | None = None  # built at startup: it needs the audit store
        self.judge: Judge | None = None
        # The judge's calls this hour and dollars today, kept here: a reload or rollback that changes the judge's
        # settings replaces the Judge, and must not give it a fresh budget.
        self.judge_budget: Budget | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recording: set[asyncio.Future[None]] = set()  # version records a reload started, not yet written

    async def start(self) -> None:
        """After the store opened and the first runtime was built: record the version, start the judge."""
        gw = self.gateway
        self._loop = asyncio.get_running_loop()
        self.versions = ConfigVersions(gw.config, gw.observe.store, self._apply_from_thread, path=gw.config_path,
                                       on_rollback=self._count_rollback)
        self.assessor.add_sink(self.versions.scores)
        await self._loop.run_in_executor(None, self._record_version, gw.config, "startup")
        self._start_judge(gw.config)

    def stop(self) -> None:
        if self.judge is not None:
            self.judge.stop()

    def finished(self, rt: Runtime, exchange: Exchange, record: AuditRecord) -> None:
        """A Messages request is over and the client has its last byte: the call is examined (its verdict set on
        the record), the record (naming the version it ran under) goes to the writer, and the call may be
        sampled for the judge."""
        record.config_version = rt.version
        observe = self.gateway.observe
        examined = self.assessor.examine(record, exchange.evidence()) if observe.writer is not None else None
        observe.record(record, examined)
        if self.judge is not None and exchange.keep_answer:
            self.judge.offer(record, exchange.request, exchange.kept_answer(), streamed=exchange.streamed)

    def sampled(self) -> bool:
        """Whether the judge is to judge the call of a request arriving now (loop/judge.py `sampled`)."""
        judge = self.judge
        return judge is not None and judge.sampled()

    def config_applied(self, config: Config, reason: str) -> None:
        """The watcher applied a new file (reason: file change, SIGHUP): record its version off the loop."""
        assert self._loop is not None
        recording = self._loop.run_in_executor(None, self._record_version, config, reason)
        self._recording.add(recording)
        recording.add_done_callback(self._recording.discard)
        self._start_judge(config)

    async def recorded(self, timeout: float) -> bool:
        """Wait (up to `timeout` s) for the version records reloads started, so they are written before the process
        exits (one still waiting for the store's lock then finishes on its own: the store's close() leaves a
        connection in use to its thread). True: none left."""
        if self._recording:
            await asyncio.wait(set(self._recording), timeout=timeout)
        if self._recording:
            log.warning("shutting down with %d config version record(s) still waiting for the store", len(self._recording))
        return not self._recording

    # ---- config versions ---------------------------------------------------------------------------------

    def _record_version(self, config: Config, applied_by: str) -> None:
        assert self.versions is not None
        try:
            entry = self.versions.applied(config, applied_by)
        except Exception:  # noqa: BLE001 - the store may be down: the config serves anyway
            log.exception("could not record the config version")
            return
        metrics = self.gateway.observe.metrics
        if metrics is not None:
            metrics.config_version_live(entry.version)

    def _apply_from_thread(self, config: Config) -> None:
        """ConfigVersions swaps a rolled-back config in from the writer thread or an executor."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._swap_rolled_back, config)

    def _swap_rolled_back(self, config: Config) -> None:
        gw = self.gateway
        gw.apply_config(config)
        if gw._watcher is not None:
            gw._watcher.seen()  # this process wrote the file: no second reload of it
        self._start_judge(config)
        if gw.observe.metrics is not None and self.versions is not None:
            gw.observe.metrics.config_version_live(self.versions.live)

    def _count_rollback(self, reason: str) -> None:
        if self.gateway.observe.metrics is not None:
            self.gateway.observe.metrics.config_rollback(reason)

    # ---- the judge ---------------------------------------------------------------------------------------

    def _start_judge(self, config: Config) -> None:
        """(Re)start the judge when its settings changed; none without a judge route or with the loop off."""
        settings = config.loop.judge if config.loop.enabled else None
        if self.judge is not None and settings == self.judge.settings:
            return
        if self.judge is not None:
            self.judge.stop()
            self.judge = None
        if settings is not None and settings.route is not None and settings.sample > 0:
            observe = self.gateway.observe
            self.judge = Judge(settings, self._judge_send, self.assessor.report_late, store=observe.store,
                               metrics=observe.metrics, budget=self._budget_for(settings))
            self.judge.start()

    def _budget_for(self, settings: JudgeSettings) -> Budget:
        """The process's one judge budget, held to `settings`' limits from now on (what was spent stays spent)."""
        if self.judge_budget is None:
            self.judge_budget = Budget(settings)
        else:
            self.judge_budget.limit(settings)
        return self.judge_budget

    async def _judge_send(self, req: A.MessagesRequest) -> tuple[bytes, float | None]:
        """The judge's request, through the judge route's candidates; audited, marked as the judge's call."""
        rt, observe = self.gateway.runtime, self.gateway.observe
        assert rt is not None
        route = rt.upstreams.by_name.get(req.model)
        if route is None:
            raise E.NotFound(f"the judge route {req.model!r} is not in the config any more")
        exchange = Exchange(new_request_id(), [], observe.tracer)
        exchange.requested_model = req.model
        status, error_type = 500, "api_error"
        try:
            answer = await select(rt.upstreams, rt.upstreams.candidates(route), req, _encode(req), [], exchange)
            exchange.usage, exchange.upstream_model = answer.usage, answer.upstream_model
            status, error_type = 200, None
        except E.GatewayError as err:
            status, error_type = err.status, err.error_type
            raise
        finally:
            record = exchange.finish(status, error_type, observe.pricer)
            record.config_version, record.loop_events = rt.version, [JUDGE_CALL]
            record.cost_usd = observe.pricer.price(record)
            observe.record(record)
        return answer.body, record.cost_usd
