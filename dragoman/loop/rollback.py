"""Scores per config version, and the rule that says a newly applied version regressed: `VersionScores` is a
VerdictSink; when the live version scores clearly worse than the version before it, it calls `on_regression`.

The rule (`regression`), all of it must hold, with `loop.rollback` settings:
- the new version has at least `min_calls` assessed calls, and is still within its first `watch_calls`;
- the version before it has at least `baseline_calls` (in this process, or in the audit store);
- its failure rate is at least `min_increase` (absolute, 0.15 = 15 points) above the previous version's;
- a one-sided two-proportion z-test (pooled standard error) gives z >= `z`. The default 3.0 (p ≈ 0.0013 for
  one look) is stricter than the usual 2.58 because the rule is looked at again on every call of the window.
A version that is itself a rollback, or that was rolled back automatically once, is never rolled back
automatically: no rollback loops. Counts are per process (with `--workers N` each worker scores its own share
of the calls and the first to be sure acts for all: loop/versions.py writes the file they all reload), except
that a process starting on a version that was live before it (a restart, a respawned worker) starts that
version's tally from the audit store's count: a version is new for its first `watch_calls` calls, not for the
first `watch_calls` calls of each process.

A client that refuses a tool call the gateway counted as passed turns that call into a failure, once per call
(request id) whatever the number of refused results in its answer, and only for a call of the watched version
this process counted: a call that failed its checks is not failed twice."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

import msgspec

from dragoman.config.loop import RollbackSettings
from dragoman.loop.judge import JUDGE_CALL
from dragoman.loop.verdict import CLIENT_REFUSED, PASS, LateSignal
from dragoman.observe.record import AuditRecord

log = logging.getLogger("dragoman.loop")

_KEEP_VERSIONS = 16  # versions whose tallies are kept; older ones are forgotten
_RELOOK = 10  # a baseline too small in the store is read again every this many calls of the new version


class Tally(msgspec.Struct):
    calls: int = 0
    passed: int = 0

    @property
    def failure_rate(self) -> float:
        return 1.0 - self.passed / self.calls if self.calls else 0.0

    def __str__(self) -> str:
        return f"{self.passed}/{self.calls} passed ({100 * self.failure_rate:.1f}% failed)"


def z_score(new: Tally, old: Tally) -> float:
    """One-sided two-proportion z statistic for "new fails more often than old" (pooled standard error)."""
    if not new.calls or not old.calls:
        return 0.0
    failed = (new.calls - new.passed) + (old.calls - old.passed)
    pooled = failed / (new.calls + old.calls)
    se = math.sqrt(pooled * (1 - pooled) * (1 / new.calls + 1 / old.calls))
    if se == 0:
        return 0.0  # both all-pass or both all-fail: no difference to test
    return (new.failure_rate - old.failure_rate) / se


def regression(new: Tally, old: Tally, settings: RollbackSettings) -> str | None:
    """Why `new` is clearly worse than `old` (a sentence with both scores), or None when it is not (yet)."""
    if new.calls < settings.min_calls or new.calls > settings.watch_calls or old.calls < settings.baseline_calls:
        return None
    increase = new.failure_rate - old.failure_rate
    z = z_score(new, old)
    if increase < settings.min_increase or z < settings.z:
        return None
    return (f"{new} against {old} before it: failure rate +{100 * increase:.1f} points, z = {z:.2f} "
            f"(rollback at >= {100 * settings.min_increase:.0f} points and z >= {settings.z:g})")


class VersionScores:
    """Tallies assessed calls per config version; asks for a rollback when the live version regressed.
    `verdict`/`late_signal` come from the audit writer's thread, `live` from wherever a config was applied."""

    def __init__(
        self,
        settings: RollbackSettings,
        on_regression: Callable[[str, str, str], None],
        baseline: Callable[[str], Tally] | None = None,
    ) -> None:
        self.settings = settings
        self.on_regression = on_regression  # (bad version, previous version, why)
        self.baseline = baseline  # the previous version's tally from the store, when this process saw too few
        self.tallies: dict[str, Tally] = {}
        self.live_version: str | None = None
        self.previous: str | None = None
        self._protected: set[str] = set()  # rollbacks, and versions rolled back once
        self._stored: dict[str, Tally] = {}
        # The watched version's calls that passed, by request id: what a client's refusal may take a pass from,
        # once (`late_signal`). At most `watch_calls` of them, emptied when another version goes live.
        self._passes: dict[str, str] = {}
        self._lock = threading.Lock()

    def live(self, version: str, previous: str | None, *, protected: bool = False, seen: Tally | None = None) -> None:
        """`version` is now applied; `previous` was before it. `protected`: never roll it back automatically.
        `seen`: its calls so far in the audit store, when it was live before this process applied it (a restart):
        its watch goes on from there rather than from 0, and ends at `watch_calls` as it would have."""
        with self._lock:
            if seen is not None:
                self._seed(version, seen)
            if version == self.live_version:
                self._protected.update((version,) if protected else ())
                return
            self.live_version, self.previous = version, previous
            self._passes = {}  # the refusals still to come are of calls no longer watched
            if protected:
                self._protected.add(version)

    def _seed(self, version: str, seen: Tally) -> None:
        # One dict store (the writer thread adds to the tallies meanwhile); the writer's next new version trims them.
        if seen.calls > self.tally(version).calls:
            self.tallies[version] = Tally(seen.calls, seen.passed)

    def tally(self, version: str) -> Tally:
        return self.tallies.get(version) or Tally()

    def verdicts(self, records: list[AuditRecord]) -> None:
        """Tally each call, and check the live version after each of its calls (a rollback is taken at the call
        that made the regression clear). One loop, no call a record: the writer runs it for every record."""
        tallies = self.tallies
        for record in records:
            version = record.config_version
            if version is None or record.verdict is None or (record.loop_events and JUDGE_CALL in record.loop_events):
                continue
            tally = tallies.get(version)
            if tally is None:
                tally = self._tally(version)
            tally.calls += 1
            passed = record.verdict == PASS
            tally.passed += passed
            if version == self.live_version and self.previous is not None:
                if passed and tally.calls <= self.settings.watch_calls:
                    self._passes[record.request_id] = version
                self._check(version)

    def verdict(self, record: AuditRecord) -> None:
        self.verdicts([record])

    def _tally(self, version: str) -> Tally:
        tally = self.tallies[version] = Tally()
        if len(self.tallies) > _KEEP_VERSIONS:
            self.tallies.pop(next(v for v in self.tallies if v not in (version, self.live_version, self.previous)))
        return tally

    def late_signal(self, signal: LateSignal) -> None:
        # The client refused a tool call of a call that had passed its checks: that call failed after all. Popped:
        # a second refused result of the same answer (or a made-up one) finds nothing left to take.
        if signal.kind != CLIENT_REFUSED:
            return
        version = self._passes.pop(signal.request_id, None)
        tally = self.tallies.get(version) if version is not None else None
        if tally is None or tally.passed == 0:
            return
        tally.passed -= 1
        if version == self.live_version:
            self._check(version)

    def _check(self, version: str) -> None:
        # Nothing to roll back to, or the version is not in its watched first calls (read without the lock: one
        # attribute, set whole, and a count only this thread changes): no lock taken, as for nearly every call.
        new = self.tallies[version]
        if self.previous is None or not self.settings.min_calls <= new.calls <= self.settings.watch_calls:
            return
        with self._lock:
            previous = self.previous
            if not self.settings.enabled or previous is None or version in self._protected:
                return
        why = regression(new, self._baseline(previous, new.calls), self.settings)
        if why is None:
            return
        with self._lock:
            self._protected.add(version)  # one automatic rollback per version, whatever comes of it
        log.warning("config version %s regressed: %s; rolling back to %s", version, why, previous)
        try:
            self.on_regression(version, previous, why)
        except Exception:  # noqa: BLE001 - a failed rollback must not stop the writer thread
            log.exception("automatic rollback of config version %s failed", version)

    def _baseline(self, previous: str, looks: int) -> Tally:
        here = self.tally(previous)
        if here.calls >= self.settings.baseline_calls or self.baseline is None:
            return here
        stored = self._stored.get(previous)
        if stored is None or (stored.calls < self.settings.baseline_calls and looks % _RELOOK == 0):
            try:
                stored = self._stored[previous] = self.baseline(previous)
            except Exception:  # noqa: BLE001 - the store is down: judge on what this process saw
                log.warning("cannot read config version %s's score from the audit store", previous, exc_info=True)
                return here
        return stored if stored.calls > here.calls else here
