"""Prometheus metrics for GET /metrics, updated once per request from its AuditRecord (in the audit writer's
thread, never per chunk).

Several worker processes (`dragoman serve --workers N`), or an operator's PROMETHEUS_MULTIPROC_DIR: the gateway
claims a directory of its own (`claim_multiprocess_dir()`, before the first metric exists) and points the variable
at it; prometheus-client decides on multiprocess mode when it is first imported. Each worker then writes its values
to memory-mapped files there and any worker's /metrics sums them all. Without the variable and with one process: a
plain in-process registry.

Labels are bounded: route, upstream and error type take values from the config and a small fixed set; each
label keeps at most `MAX_LABEL_VALUES` distinct values and folds the rest into "other". No ids. Model names
(`_ModelLabels`) may be a client's or an upstream's: a configured one always has its label, others share
bounded sets, and one holding a key never becomes a label.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from typing import Any, NamedTuple

from dragoman.observe.pricing import price_for
from dragoman.observe.record import AuditRecord, failed
from dragoman.redaction import REDACTED, holds_secret, redact_cut

MAX_LABEL_VALUES = 200
_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LEGACY_ENV = "prometheus_multiproc_dir"

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_TTFB_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


def claim_multiprocess_dir(workers: int) -> str | None:
    """A fresh directory of this gateway's own for prometheus-client's value files, set as
    PROMETHEUS_MULTIPROC_DIR for this process and the workers it starts; call before the first metric exists.

    Inside the operator's PROMETHEUS_MULTIPROC_DIR when one is set: other gateways on the host (a systemd unit's or
    an image's ENV is shared) use that directory too, and summing their files double counts them, while deleting
    them zeroes a running gateway. A fresh directory also means no earlier run's totals. Without the variable, N > 1
    workers get one in the temp dir; one process needs none (None: an in-process registry). The caller removes it
    with `release_multiprocess_dir` when the gateway stops."""
    base = os.environ.get(_ENV) or os.environ.get(_LEGACY_ENV)  # prometheus-client still honours the old name
    if not base and workers <= 1:
        return None
    if base:
        os.makedirs(base, exist_ok=True)
    path = tempfile.mkdtemp(prefix=f"dragoman-metrics-{os.getpid()}-", dir=base or None)
    os.environ[_ENV] = path  # takes precedence over the old name wherever prometheus-client reads it
    return path


def release_multiprocess_dir(path: str | None) -> None:
    """Remove the directory `claim_multiprocess_dir` made (its files only, never the operator's directory)."""
    if path:
        shutil.rmtree(path, ignore_errors=True)


def forget_worker(pid: int | None) -> None:
    """A worker process exited (crashed, killed or stopped): drop its live gauges (breaker state, audit queue
    depth, loop score) from the sums, or its last values would show for the gateway's whole life. Its counters
    stay: what it counted still counts."""
    if pid is None or not os.environ.get(_ENV):
        return
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
    except OSError:  # the directory is going away with the gateway: nothing left to drop
        pass


class _RouteChildren(NamedTuple):
    latency: Any
    ttfb: Any
    overhead: Any
    input: Any
    output: Any
    cache_read: Any
    reasoning: Any
    cost: Any


_CHILDREN_KEPT = 4096  # resolved loop counter children kept by raw labels; re-resolving one costs ~1.5 µs


class _Bounded:
    """Label values seen so far, at most `limit`; later newcomers read as "other"."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        if not value:
            return "none"
        if value in self.seen:
            return value
        with self.lock:
            if len(self.seen) >= self.limit:
                return "other"
            self.seen.add(value)
        return value


# A model label's longest value: real names (hub paths included) are far shorter; a longer one is no name.
_MODEL_LABEL_CHARS = 128
_MODEL_DECISIONS_KEPT = 4096  # label decisions cached by raw name (see _ModelLabels)


class _ModelLabels:
    """The loop metrics' `model` label (verdicts, late signals, scores). Names come from upstream answers and, on a
    route without `model:`, from clients, who may send junk or a pasted key. So: a name a route configures
    (`model:`) always has its own label; a name in the price table takes one of `limit` slots, any other name one of
    another `limit` (junk fills only those); a name longer than `_MODEL_LABEL_CHARS` or holding a key reads "other".
    The writer thread asks once per record with a verdict: decisions are cached by raw name (a dict hit)."""

    def __init__(self, limit: int) -> None:
        self.configured: dict[str, str] = {}
        self.known = _Bounded(limit)
        self.unknown = _Bounded(limit)
        self.decided: dict[str, str] = {}

    def configure(self, names: Iterable[str | None]) -> None:
        """The config's model names (each route's `model:`), at start and on every reload. Safe to call while the
        writer thread labels: both dicts are replaced whole, and a decision made on the old names lands in the
        old cache, which nothing reads any more."""
        self.configured = {name: redact_cut(name, _MODEL_LABEL_CHARS) for name in names if name}
        self.decided = {}

    def __call__(self, name: str | None) -> str:
        if not name:
            return "none"
        decided = self.decided
        label = decided.get(name)
        if label is None:
            label = self._decide(name)
            if len(name) <= _MODEL_LABEL_CHARS:  # longer ones are decided at once ("other"): not worth keeping
                if len(decided) >= _MODEL_DECISIONS_KEPT:
                    decided.clear()  # the slots stay taken: the same names get the same labels again
                decided[name] = label
        return label

    def _decide(self, name: str) -> str:
        label = self.configured.get(name)
        if label is not None:
            return label
        if len(name) > _MODEL_LABEL_CHARS or REDACTED in name or holds_secret(name):
            return "other"  # (the record's fields are redacted before they are counted: a key reads [REDACTED])
        return (self.known if price_for(name) is not None else self.unknown)(name)


class Metrics:
    """The gateway's metrics registry. Also the audit writer's sink (observe_request, audit_dropped, …)."""

    def __init__(self, *, max_label_values: int = MAX_LABEL_VALUES) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            values,
        )

        # prometheus-client picked its value storage when first imported: that, not the variable now, decides.
        self.multiprocess = values.ValueClass is not values.MutexValue
        # In multiprocess mode values live in files; this registry only keeps names unique within the process.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._route = _Bounded(max_label_values)
        self._upstream = _Bounded(max_label_values)
        # The loop's model labels (verdicts, late signals, scores) have sets of their own: model names come from
        # upstream answers or, on a route without `model:`, from clients, and in the upstream set they crowded
        # upstream names out of the breaker and attempt labels.
        self._model = _ModelLabels(max_label_values)
        self._error = _Bounded(max_label_values)
        self._status = _Bounded(64)
        route_labels = ["route"]
        self.requests = Counter("dragoman_requests", "Requests answered, by route, upstream, HTTP status and error type",
                                ["route", "upstream", "status", "error_type"], registry=r)
        self.errors = Counter("dragoman_errors", "Requests that failed (status >= 400, or an error after the first byte),"
                              " client cancellations (client_disconnected) not counted",
                              ["route", "upstream", "error_type"], registry=r)
        self.attempts = Counter("dragoman_upstream_attempts", "Upstream candidates tried, by outcome",
                                ["route", "upstream", "outcome"], registry=r)
        self.latency = Histogram("dragoman_request_duration_seconds", "Total request time, arrival to last byte",
                                 route_labels, buckets=_LATENCY_BUCKETS, registry=r)
        self.ttfb = Histogram("dragoman_time_to_first_byte_seconds", "Arrival to the first byte sent to the client",
                              route_labels, buckets=_TTFB_BUCKETS, registry=r)
        self.overhead = Histogram("dragoman_overhead_seconds", "Gateway time: total minus time waiting on upstreams",
                                  route_labels, buckets=_OVERHEAD_BUCKETS, registry=r)
        self.tokens = Counter("dragoman_tokens", "Tokens by route and kind (input, output, cache_read, reasoning)",
                              ["route", "kind"], registry=r)
        self.cost = Counter("dragoman_cost_usd", "Cost in USD at list (or configured) prices", route_labels, registry=r)
        self.fallbacks = Counter("dragoman_fallbacks", "Fallbacks from a failed candidate to the next",
                                 ["from_route", "to_route"], registry=r)
        self.breaker = Gauge("dragoman_breaker_state", "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open",
                             ["upstream"], multiprocess_mode="livemax", registry=r)
        self.dropped = Counter("dragoman_audit_dropped", "Audit records dropped (queue full, store down too long)",
                               registry=r)
        self.depth = Gauge("dragoman_audit_queue_depth", "Audit records waiting to be written",
                           multiprocess_mode="livesum", registry=r)
        self._outcomes: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        self._attempts: dict[tuple[str, str | None, str], Any] = {}  # resolved children: labels() costs ~1.5 µs
        self._per_route: dict[str, _RouteChildren] = {}
        # dragoman_verdicts_total's children by (route, model label, verdict, kind): one look-up a record. Routes
        # are raw values, so bounded: emptied when it grows past this.
        self._verdicts: dict[tuple[str | None, str | None, str, str], Any] = {}
        self._counts: dict[Any, float] = {}  # counter child -> increments not yet applied (see flush)
        self._counts_lock = threading.Lock()
        if self.multiprocess:  # a fallback for a process that exits normally; a supervisor calls it for its workers
            atexit.register(forget_worker, os.getpid())

    # ---- updates -----------------------------------------------------------------------------------------

    def observe_request(self, record: AuditRecord) -> None:
        """Every metric a finished request moves, from its record. Histograms are observed now; counter
        increments are summed and applied by flush() (the writer calls it once per batch): prometheus-client
        takes a lock and walks its value chain on every inc(), ~0.4 µs each, a dozen per record."""
        route = self._route(record.route)
        last = record.candidates[-1] if record.candidates else None
        upstream = self._upstream((last.upstream if last else None) or record.provider)
        error_type = self._error(record.error_type)
        key = (route, upstream, self._status(str(record.status)), error_type)
        outcome = self._outcomes.get(key)
        if outcome is None:
            # a cancellation is no failure (record.failed): dragoman_requests_total{error_type="client_disconnected"}
            is_error = failed(record.status, record.error_type)
            errors = self.errors.labels(route, upstream, error_type) if is_error else None
            outcome = self._outcomes[key] = (self.requests.labels(*key), errors)
        per = self._per_route.get(route) or self._route_children(route)
        if record.latency_total_ms is not None:
            per.latency.observe(record.latency_total_ms / 1000)
        if record.ttfb_ms is not None:
            per.ttfb.observe(record.ttfb_ms / 1000)
        if record.overhead_ms is not None:
            per.overhead.observe(max(0.0, record.overhead_ms) / 1000)
        increments = [(outcome[0], 1.0)]
        if outcome[1] is not None:
            increments.append((outcome[1], 1.0))
        for child, amount in (
            (per.input, record.input_tokens), (per.output, record.output_tokens),
            (per.cache_read, record.cache_read_tokens), (per.reasoning, record.reasoning_tokens),
            (per.cost, record.cost_usd),
        ):
            if amount:
                increments.append((child, amount))
        candidates = record.candidates
        for i, cand in enumerate(candidates):
            attempt_key = (cand.route, cand.upstream, cand.outcome)
            attempt = self._attempts.get(attempt_key)
            if attempt is None:
                labels = (self._route(cand.route), self._upstream(cand.upstream), self._error(cand.outcome))
                attempt = self._attempts[attempt_key] = self.attempts.labels(*labels)
            increments.append((attempt, 1.0))
            if i + 1 < len(candidates) and cand.outcome != "ok":
                increments.append((self.fallbacks.labels(self._route(cand.route), self._route(candidates[i + 1].route)), 1.0))
        if record.verdict is not None:  # the correctness loop judged it (dragoman_verdicts_total)
            kinds = record.verdict_kinds
            model = self._model(record.upstream_model)  # cached per raw name: ~0.1 µs
            verdict_key = (record.route, model, record.verdict, kinds[0] if kinds else "none")
            child = self._verdicts.get(verdict_key)
            if child is None:
                if len(self._verdicts) >= _CHILDREN_KEPT:
                    self._verdicts.clear()
                child = self._verdicts[verdict_key] = self._loop_child("verdicts", *verdict_key)
            increments.append((child, 1.0))
        with self._counts_lock:
            counts = self._counts
            for child, amount in increments:
                counts[child] = counts.get(child, 0.0) + amount

    def flush(self) -> None:
        """Apply the summed counter increments (the writer after each batch; render() before a scrape)."""
        with self._counts_lock:
            counts, self._counts = self._counts, {}
        for child, amount in counts.items():
            child.inc(amount)

    def _route_children(self, route: str) -> _RouteChildren:
        # labels() takes a lock and hashes every call (~1.5 µs); resolved children are reused per route.
        children = _RouteChildren(
            self.latency.labels(route), self.ttfb.labels(route), self.overhead.labels(route),
            self.tokens.labels(route, "input"), self.tokens.labels(route, "output"),
            self.tokens.labels(route, "cache_read"), self.tokens.labels(route, "reasoning"), self.cost.labels(route),
        )
        self._per_route[route] = children
        return children

    def set_breaker_state(self, upstream: str, state: str | int) -> None:
        """The routing layer reports a breaker transition: closed / half_open / open (or 0 / 1 / 2)."""
        value = BREAKER_STATES[state] if isinstance(state, str) else int(state)
        self.breaker.labels(self._upstream(upstream)).set(value)

    def audit_dropped(self, count: int) -> None:
        self.dropped.inc(count)

    def audit_queue_depth(self, depth: int) -> None:
        self.depth.set(depth)

    # ---- the correctness loop (dragoman.loop.assess, in the writer thread) ---------------------------------

    def observe_late_signal(self, route: str | None, model: str | None, kind: str) -> None:
        """A signal about an earlier call: dragoman_late_signals_total{route,model,kind}. Applied by flush()."""
        child = self._loop_child("late", route, self._model(model), kind)
        with self._counts_lock:
            self._counts[child] = self._counts.get(child, 0.0) + 1.0

    def configure_models(self, names: Iterable[str | None]) -> None:
        """The model names the config names (routes' `model:`): they always keep a label of their own."""
        self._model.configure(names)

    def _loop_child(self, which: str, route: str | None, model: str, *labels: str) -> Any:
        # `model` is already a label (self._model's)
        loop = self.__dict__.get("_loop")
        if loop is None:
            from prometheus_client import Counter

            loop = self._loop = {
                "verdicts": Counter("dragoman_verdicts", "Calls assessed by the correctness loop, by verdict and "
                                    "first failure kind", ["route", "model", "verdict", "kind"], registry=self.registry),
                "late": Counter("dragoman_late_signals", "Signals learned after a call (its next turn, the judge)",
                                ["route", "model", "kind"], registry=self.registry),
                "children": {},
            }
        key = (which, route, model, *labels)
        child = loop["children"].get(key)
        if child is None:
            if len(loop["children"]) >= _CHILDREN_KEPT:  # keyed by raw routes: bounded as `_verdicts` is
                loop["children"].clear()
            values = (self._route(route), model, *(self._error(label) for label in labels))
            child = loop["children"][key] = loop[which].labels(*values)
        return child

    # ---- exposition --------------------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition for GET /metrics and its content type; all workers' values in multiprocess mode."""
        from prometheus_client import (
            CONTENT_TYPE_LATEST,
            CollectorRegistry,
            generate_latest,
        )

        self.flush()
        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    # ---- governance (dragoman.govern): refusals and backend errors as they happen, spend at scrape time -----

    def rate_limited(self, scope_kind: str) -> None:
        """A request refused by a rate limit of a key, developer or team scope."""
        self._governance().rate_limited.labels(scope_kind).inc()

    def budget_refused(self, scope_kind: str) -> None:
        """A request refused by a budget's hard cap (key, developer, team or global)."""
        self._governance().budget_refused.labels(scope_kind).inc()

    def governance_backend_error(self) -> None:
        """The shared counters (Redis) did not answer: on_unreachable decided."""
        self._governance().backend_errors.inc()

    def budgets(self, rows: list[dict[str, Any]], configured: list[tuple[str, str]]) -> None:
        """Every budget's spend this period, read by GET /metrics from the Governor (`rows`, as /api/budgets
        lists them), by the scope the config wrote (`configured`: (scope, period) of each budget rule).

        /metrics may be open to anyone who reaches the port, and a wildcard budget (`key:*`, `developer:*`,
        `team:*`) and a virtual key's own budget count per key id, developer or team name: those are never label
        values. Each wildcard is one series per period: the highest share of its cap any of its members spent
        (what a budget alert watches) and how many are at or past the cap. A scope the config names
        (`team:platform`, `developer:ana`, `global`) keeps its own spend and cap; past MAX_LABEL_VALUES of them
        the rest are summed up under "other" as a wildcard is, never one of them standing for all."""
        gov = self._governance()
        named = {scope for scope, _ in configured if not scope.endswith(":*")}
        # (scope label, period) → each member's spend ÷ cap; a wildcard nobody met this period reads 0
        shares: dict[tuple[str, str], list[float]] = {key: [] for key in configured if key[0].endswith(":*")}
        for row in rows:
            scope, period, spent, limit = row["scope"], row["period"], row["spent_usd"], row["limit_usd"]
            label = gov.scope(scope) if scope in named else _wildcard(scope)
            if scope in named and label != "other":
                gov.spend.labels(label, period).set(spent)
                gov.limit.labels(label, period).set(limit)
            shares.setdefault((label, period), []).append(spent / limit if limit > 0 else 0.0)
        for (label, period), values in shares.items():
            gov.used.labels(label, period).set(max(values, default=0.0))
            gov.exhausted.labels(label, period).set(sum(1 for value in values if value >= 1.0))

    def _governance(self) -> Any:
        gov = getattr(self, "_gov", None)
        if gov is None:
            gov = self._gov = _GovernanceMetrics(self.registry)
        return gov

    # ---- the correctness loop's traffic shift (dragoman/loop/scores.py), from the audit writer's thread ------

    def loop_shift(self, kind: str, route: str, shape: str) -> None:
        """A shift: kind demoted (dragoman_loop_demotions_total{route,shape}) or restored (…_restorations_total)."""
        counters = self._loop_metrics()
        counter = counters[0] if kind == "demoted" else counters[1] if kind == "restored" else None
        if counter is not None:
            counter.labels(self._route(route), shape).inc()

    def loop_score(self, route: str, model: str, shape: str, score: float) -> None:
        """A route × model × shape's rolling score (dragoman_loop_score)."""
        self._loop_metrics()[2].labels(self._route(route), self._model(model), shape).set(score)

    def _loop_metrics(self) -> tuple[Any, Any, Any]:
        # Created on first use: a gateway without weighted routes or verdicts exports none of them.
        found = getattr(self, "_shift_metrics", None)
        if found is None:
            from prometheus_client import Counter, Gauge

            found = self._shift_metrics = (
                Counter("dragoman_loop_demotions", "Candidates demoted for a turn shape by the correctness loop",
                        ["route", "shape"], registry=self.registry),
                Counter("dragoman_loop_restorations", "Demoted candidates restored once their probes passed",
                        ["route", "shape"], registry=self.registry),
                Gauge("dragoman_loop_score", "Rolling verdict score (1 = every call passed) per route, model, shape",
                      # with --workers N the lowest worker's score: a regression one worker sees is not hidden
                      ["route", "model", "shape"], multiprocess_mode="livemin", registry=self.registry),
            )
        return found

    # ---- config versions and the judge (loop/versions.py, loop/judge.py) ----------------------------------

    def _version_metrics(self) -> Any:
        # Made on first use: a gateway that never rolls back nor judges exports none of them.
        made = self.__dict__.get("_versions")
        if made is not None:
            return made
        with self._counts_lock:  # two threads may ask first at once: register once
            return self.__dict__.get("_versions") or self._make_version_metrics()

    def _make_version_metrics(self) -> Any:
        from prometheus_client import Counter, Gauge

        r = self.registry
        made = self.__dict__["_versions"] = (
            Counter("dragoman_config_rollbacks", "Config rollbacks, by reason (auto, manual, admin)",
                    ["reason"], registry=r),
            Gauge("dragoman_config_version_info", "The live config version (value 1)", ["version"],
                  multiprocess_mode="livemax", registry=r),
            Counter("dragoman_judge_verdicts", "Calls judged by the judge route, by verdict (pass, fail, "
                    "unclear, error)", ["verdict"], registry=r),
            Counter("dragoman_judge_dropped", "Calls sampled for the judge but not judged, by reason (queue, "
                    "calls_per_hour, usd_per_day, unreadable)", ["reason"], registry=r),
            set(),
        )
        return made

    def config_rollback(self, reason: str) -> None:
        self._version_metrics()[0].labels(reason if reason in ("auto", "manual", "admin") else "other").inc()

    def config_version_live(self, version: str) -> None:
        gauge, seen = self._version_metrics()[1], self._version_metrics()[4]
        for old in seen - {version}:
            gauge.labels(old).set(0)
        seen.add(version)
        gauge.labels(version).set(1)

    def judge_verdict(self, verdict: str) -> None:
        self._version_metrics()[2].labels(verdict).inc()

    def judge_dropped(self, reason: str) -> None:
        self._version_metrics()[3].labels(reason).inc()


_WILDCARDS = {"key": "key:*", "developer": "developer:*", "team": "team:*"}


def _wildcard(scope: str) -> str:
    """The wildcard a per-identity budget counts under: `key:vk_…` → `key:*` (a key's own budget too)."""
    return _WILDCARDS.get(scope.partition(":")[0], "other")


class _GovernanceMetrics:
    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge

        self.scope = _Bounded(MAX_LABEL_VALUES)  # the budget scopes the config names (see budgets())
        self.rate_limited = Counter("dragoman_rate_limited", "Requests refused by a rate limit (429), by scope kind",
                                    ["scope"], registry=registry)
        self.budget_refused = Counter("dragoman_budget_refusals", "Requests refused by a budget (402), by scope kind",
                                      ["scope"], registry=registry)
        self.backend_errors = Counter("dragoman_governance_backend_errors",
                                      "Calls to the shared counters (Redis) that failed or timed out", registry=registry)
        self.spend = Gauge("dragoman_budget_spent_usd", "Spend this period of each budget the config names",
                           ["scope", "period"], multiprocess_mode="liveall", registry=registry)
        self.limit = Gauge("dragoman_budget_limit_usd", "Cap of each budget the config names", ["scope", "period"],
                           multiprocess_mode="liveall", registry=registry)
        self.used = Gauge("dragoman_budget_used_ratio", "Spend this period / cap; for a wildcard scope (key:*, "
                          "developer:*, team:*) the highest among its members", ["scope", "period"],
                          multiprocess_mode="liveall", registry=registry)
        self.exhausted = Gauge("dragoman_budget_exhausted", "Budgets at or past their cap (for a wildcard scope: "
                               "how many of its members)", ["scope", "period"],
                               multiprocess_mode="liveall", registry=registry)

