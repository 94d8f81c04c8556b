"""Scores: a rolling window of calls per route × model × turn shape × prompt variant, and the decisions taken on
them — demotion of a candidate for a shape, its restoration once its probes pass, the prompt-prefix variant kept.

A call's value is 1 when its verdict passed and 0 when it failed; a late `client_refused` (the client rejected the
call's tool_use in its next turn) sets it to 0; a late `execution_failed` (the call ran and failed: a command that
exited non-zero, an Edit whose old_string was not found) takes `execution_failed_weight` off it, once. A score is
the mean value of the calls in the window. Calls without a verdict (error answers) are not scored: the breakers
deal with upstreams that fail outright.

`Scoreboard` is a VerdictSink: only the audit writer's thread calls it. What the event loop reads (who is demoted
for which shape, which variant is kept) is published as an immutable `ShiftState`, swapped whole on change, so the
hot path reads one attribute and takes no lock; so are the gauges' scores a /metrics scrape reads (`scores`). Memory is bounded: at most `MAX_KEYS` windows per level of `window`
calls each, the last `MAX_INDEXED` calls a late signal can still change, `MAX_EVENTS` events."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from dragoman.config.loop import ShiftSettings
from dragoman.loop.rollback import Tally, z_score
from dragoman.loop.verdict import CLIENT_REFUSED, EXECUTION_FAILED, FAIL, PASS, LateSignal
from dragoman.observe.record import AuditRecord

log = logging.getLogger("dragoman.loop")

MAX_KEYS = 4096  # windows kept per level; the least recently scored is forgotten first
MAX_INDEXED = 20_000  # calls a late signal can still find (Claude Code's next turn comes within seconds)
MAX_EVENTS = 500
VARIANT_MARGIN = 0.05  # a challenger replaces the kept prompt variant only this much better at least …
VARIANT_Z = 4.0  # … and with this z (`_clearly_better`)

DEMOTED, RESTORED, VARIANT_KEPT = "demoted", "restored", "variant_kept"
_SCORED = (PASS, FAIL)


class Call(msgspec.Struct, gc=False):
    """One scored call: mutable, a late signal changes its value wherever the call is held (and bumps the
    scoreboard's revision, so every window sums again). A Struct: one is built per verdict, in C."""

    request_id: str
    route: str
    shape: str
    value: float
    late: bool = False  # an execution failure already counted against it
    held: int = 0  # windows holding it: at 0 no score can change with it, and the index lets it go
    slot: int = -1  # its place in the index's ring, when indexed


class Window:
    """The last `size` calls of one key and the sum of their values, kept as calls come and go, so a score costs
    the same for any window size (every verdict asks for one; summing a 100-call window was ~3 µs a record). The
    sum is taken afresh when a late signal changed some call's value since (`revision`, the scoreboard's count of
    such changes) and once per `size` additions; scores are rounded to 9 places, so the rounding of adding and
    removing values such as 0.7 never moves a score across a threshold."""

    __slots__ = ("calls", "total", "revision", "seen", "adds", "index")

    def __init__(self, size: int, revision: list[int], calls: Any = (), index: _Index | None = None) -> None:
        self.calls: deque[Call] = deque(calls, maxlen=size)
        for call in self.calls:
            call.held += 1
        self.revision = revision  # shared with the scoreboard: [changes of a call's value so far]
        self.index = index  # the scoreboard's late-signal index: a call no window holds leaves it
        self.total = 0.0
        self.seen = -1  # the revision `total` was summed at (-1: never)
        self.adds = 0  # additions since

    def add(self, call: Call) -> None:
        calls = self.calls
        if len(calls) == calls.maxlen:
            oldest = calls[0]
            self.total -= oldest.value
            oldest.held -= 1
            if not oldest.held and self.index is not None:
                self.index.discard(oldest)
        calls.append(call)
        call.held += 1
        self.total += call.value
        self.adds += 1

    def release(self) -> None:
        """The window is dropped: its calls are held by one window fewer."""
        index = self.index
        for call in self.calls:
            call.held -= 1
            if not call.held and index is not None:
                index.discard(call)

    def count(self) -> int:
        return len(self.calls)

    def passed(self) -> int:
        return sum(1 for call in self.calls if call.value >= 1.0)

    def score(self) -> float:
        calls = self.calls
        if not calls:
            return 1.0
        if self.seen != self.revision[0] or self.adds >= len(calls):
            self.total, self.seen, self.adds = sum(call.value for call in calls), self.revision[0], 0
        return round(self.total / len(calls), 9)


class Demotion(msgspec.Struct, frozen=True):
    """Why a candidate is demoted for a shape: its score over that many calls, and since when."""

    score: float
    calls: int
    since: float


class ShiftState(msgspec.Struct, frozen=True):
    """What the hot path reads: demotions by (route, shape) and the kept prompt variant by (route, shape)."""

    demoted: Mapping[tuple[str, str], Demotion] = {}
    kept: Mapping[tuple[str, str], str] = {}


class ShiftEvent(msgspec.Struct, frozen=True):
    """A shift the loop made (GET /api/scores' `events`)."""

    time: float
    kind: str  # demoted | restored | variant_kept
    route: str
    shape: str
    score: float
    calls: int
    detail: str


# A drain's look-up of one route × model × shape × variant: its shown window, its (route, shape) key and candidate
# window, its variant window (None: no variant).
_Keyed = tuple[Window, tuple[str, str], Window, "Window | None"]


class _Index:
    """The calls a late signal can still change, by request id. Only a passed call with tool calls is kept: the
    late signals that change a value (client_refused, execution_failed) are about an answer's tool calls, and a
    failed call's value is 0 already. And only while a window holds it (`Call.held`): once it has left every window
    no score depends on it. A ring of the calls in the order they came bounds it besides (`size`; windows forgotten
    with their key are not counted out). What the index keeps lives as long as it does, and a 20,000-call index
    was the dearest single part of the loop on a busy core (bench/RESULTS.md, "The loop's cost, read side by side"):
    it keeps no more than it must."""

    __slots__ = ("calls", "ring", "at")

    def __init__(self, size: int) -> None:
        self.calls: dict[str, Call] = {}
        self.ring: list[Call | None] = [None] * size  # the indexed calls in the order they came (None: let go)
        self.at = 0

    def add(self, call: Call) -> None:
        ring, at = self.ring, self.at
        oldest = ring[at]
        if oldest is not None:
            self.discard(oldest)
        ring[at] = call
        call.slot = at
        self.at = at + 1 if at + 1 < len(ring) else 0
        self.calls[call.request_id] = call

    def get(self, request_id: str) -> Call | None:
        return self.calls.get(request_id)

    def discard(self, call: Call) -> None:
        """Let `call` go (its ring slot too: the ring keeps nothing the index let go)."""
        if self.calls.get(call.request_id) is call:
            del self.calls[call.request_id]
            self.ring[call.slot] = None

    def __len__(self) -> int:
        return len(self.calls)


class _Bounded(OrderedDict):
    """Windows by key, at most MAX_KEYS, least recently used forgotten first (`forgotten` is told of each)."""

    def __init__(self, size: int, revision: list[int], index: _Index,
                 forgotten: Callable[[Any], None] | None = None) -> None:
        super().__init__()
        self.size = size
        self.revision = revision
        self.index = index
        self.forgotten = forgotten

    def window(self, key: Any) -> Window:
        found = self.get(key)
        if found is None:
            if len(self) >= MAX_KEYS:
                oldest, window = self.popitem(last=False)
                window.release()
                if self.forgotten is not None:
                    self.forgotten(oldest)
            found = self[key] = Window(self.size, self.revision, index=self.index)
        else:
            self.move_to_end(key)
        return found

    def drop(self, key: Any) -> None:
        window = self.pop(key, None)
        if window is not None:
            window.release()

    def replace(self, key: Any, window: Window) -> None:
        self.drop(key)
        self[key] = window


def _clearly_better(challenger: tuple[float, str, int], kept: tuple[float, str, int]) -> bool:
    """Whether a variant (score, name, calls) scores clearly above the kept one: by VARIANT_MARGIN at least, and by
    a one-sided two-proportion z-test (rollback's) with z >= VARIANT_Z. Stricter than rollback's 3: the test is
    looked at on every call for as long as a variant is kept, not over one watch window. Two variants passing 90%
    each swapped the kept one 92 times in 20,000 calls on the best score alone, 6 times in 200,000 at z >= 3, and
    not once in 800,000 at z >= 4; a challenger at 0.9 against a kept 0.7 still takes over in ~1,000-2,500 calls."""
    if challenger[0] - kept[0] < VARIANT_MARGIN:
        return False
    new, old = Tally(kept[2], round(kept[0] * kept[2])), Tally(challenger[2], round(challenger[0] * challenger[2]))
    return z_score(new, old) >= VARIANT_Z  # z of "the kept one fails more often than the challenger"


class Scoreboard:
    """Scores per key, and the demotions and variant choices made from them (a VerdictSink)."""

    def __init__(self, settings: ShiftSettings | None = None, *, clock: Callable[[], float] = time.time,
                 on_event: Callable[[ShiftEvent], None] | None = None,
                 on_score: Callable[[str, str, str, float], None] | None = None) -> None:
        self.settings = settings or ShiftSettings()
        self.state = ShiftState()  # read by the event loop: replaced whole, never changed in place
        self.events: tuple[ShiftEvent, ...] = ()  # newest last, replaced whole
        self.variants: Mapping[str, tuple[str, ...]] = {}  # route -> its prompt variant names (set per config)
        # The routes some weighted route lists: only those can be demoted (None: any, for a board used alone).
        self.candidates: frozenset[str] | None = None
        self._clock = clock
        self._on_event = on_event
        self._on_score = on_score
        # Writes come from the writer thread only; the lock is for readers elsewhere (the admin API's executor),
        # never taken on the event loop: what a /metrics scrape reads is published (`scores`).
        self._lock = threading.Lock()
        self._revision = [0]  # late signals that changed a call's value so far: windows sum again after one
        self._drain: dict[tuple[str, str, str, str], _Keyed] = {}  # the windows a drain looked up (`verdicts`)
        self._resize(self.settings.window)

    def _resize(self, size: int) -> None:
        self._index = index = _Index(MAX_INDEXED)
        # (route, model, shape, variant): what is shown
        self._keys = _Bounded(size, self._revision, index, self._forget_shown)
        # The gauges' scores, one per route × model × shape over its variants' shown windows: published whole by
        # the writer (`_publish`), so a scrape reads one attribute and takes no lock. `_series` are the windows
        # behind each, `_stale` the ones a drain or a late signal changed since the last publication.
        self.published: dict[tuple[str, str, str], float] = {}  # replaced whole, never changed in place
        self._series: dict[tuple[str, str, str], dict[str, Window]] = {}
        self._stale: set[tuple[str, str, str]] = set()
        self._candidates = _Bounded(size, self._revision, index)  # (route, shape): what demotion reads
        self._variants = _Bounded(size, self._revision, index)  # (route, shape, variant): what the variant choice reads
        self._probes = _Bounded(size, self._revision, index)  # (route, shape) while demoted: the calls since demotion

    def configure(self, settings: ShiftSettings, variants: Mapping[str, tuple[str, ...]],
                  candidates: frozenset[str] | None = None) -> None:
        """A (re)loaded config: its thresholds, each route's variant names, the routes weighted routes list.
        Scores survive unless the window size changed (then they start over: a window is its size)."""
        with self._lock:
            if settings.window != self.settings.window:
                self._resize(settings.window)
                self.state = ShiftState()
            self.settings = settings
            self.variants = dict(variants)
            self.candidates = candidates
            self._forget_gone_variants()

    def _forget_gone_variants(self) -> None:
        """A kept variant the config no longer lists (renamed, removed) is kept no more, and the windows of such
        names are dropped: the route's variants split evenly again until one is kept from their own scores."""
        listed = self.variants
        kept = {key: name for key, name in self.state.kept.items() if name in listed.get(key[0], ())}
        if len(kept) != len(self.state.kept):
            self.state = msgspec.structs.replace(self.state, kept=kept)
        for key in [k for k in self._variants if k[2] not in listed.get(k[0], ())]:
            self._variants.drop(key)

    # ---- VerdictSink -------------------------------------------------------------------------------------

    def verdict(self, record: AuditRecord) -> None:
        self.verdicts([record])

    def verdicts(self, records: list[AuditRecord]) -> None:
        """Score each call and decide after each (a demotion is taken at the call that crossed the threshold, as
        README states); one lock for a whole drain of the audit writer, not one per call, and each key's windows
        looked up once a drain (a drain's calls share a few keys), not once per call."""
        with self._lock:
            drain = self._drain = {}
            for record in records:
                if record.verdict in _SCORED and record.route is not None:
                    self._score(record, drain)
            self._drain = {}
            if self._stale:
                self._publish()

    def _score(self, record: AuditRecord, drain: dict[tuple[str, str, str, str], _Keyed]) -> None:
        route, shape, variant = record.route, record.shape or "", record.prompt_variant or ""
        model = record.upstream_model or ""
        passed = record.verdict == PASS
        call = Call(record.request_id, route, shape, 1.0 if passed else 0.0)
        if passed and record.tool_calls:
            self._index.add(call)
        keyed = drain.get((route, model, shape, variant))
        if keyed is None:
            keyed = drain[(route, model, shape, variant)] = self._keyed(drain, route, model, shape, variant)
        shown, key, candidate, varied = keyed
        shown.add(call)
        candidate.add(call)
        if varied is not None:
            varied.add(call)
        if self._on_score is not None:
            self._on_score(route, model, shape, shown.score())
        if not self.settings.enabled:  # shifting off: scores are kept, nothing is demoted, restored or kept
            return
        demotion = self.state.demoted.get(key)
        if demotion is not None and _after_demotion(record, demotion):
            self._probes.window(key).add(call)
        if demotion is not None or len(self.variants.get(route, ())) > 1:
            self._decide(key, candidate)
        elif self.candidates is None or route in self.candidates:  # `_decide`'s common case, inline: no demotion
            s = self.settings
            if len(candidate.calls) >= s.min_calls and candidate.score() < s.demote_below:
                self._maybe_demote(key, candidate)

    def _keyed(self, drain: dict[tuple[str, str, str, str], _Keyed], route: str, model: str, shape: str,
               variant: str) -> _Keyed:
        """The windows a call of this route × model × shape × variant goes to. A new key can push out the least
        recently scored one, whose window a drain's look-up may hold: the drain looks them up afresh after it."""
        if MAX_KEYS <= max(len(self._keys), len(self._candidates), len(self._variants)):
            drain.clear()
        key = (route, shape)
        varied = self._variants.window((route, shape, variant)) if variant else None
        shown = self._keys.window((route, model, shape, variant))
        series = (route, model, shape)
        windows = self._series.get(series)
        if windows is None:
            windows = self._series[series] = {}
        windows[variant] = shown
        self._stale.add(series)  # once a key a drain, not once a call: the drain's calls go to this window
        return shown, key, self._candidates.window(key), varied

    def _stale_with(self, call: Call, signal: LateSignal) -> None:
        """The series whose score a late signal about `call` changed: the one of its record's model, which the
        assessor's signals repeat; for a signal that does not say, each model's of the call's route and shape."""
        if signal.model is not None:
            self._stale.add((call.route, signal.model, call.shape))
        else:
            self._stale.update(s for s in self._series if s[0] == call.route and s[2] == call.shape)

    def _forget_shown(self, key: tuple[str, str, str, str]) -> None:
        """A shown window was forgotten (MAX_KEYS): its series' gauge no longer counts it."""
        series = key[:3]
        windows = self._series.get(series)
        if windows is not None and windows.pop(key[3], None) is not None:
            if not windows:
                del self._series[series]
            self._stale.add(series)

    def _publish(self) -> None:
        """Swap in the gauges' scores with the stale series scored afresh: a copy of one float a series, and for
        each series a drain touched its windows' running totals (a window holds a call at least: it is made for
        one). `Window.score`'s freshness test is inline: its call and rounding were half the cost of a series."""
        published = self.published.copy()
        by_series = self._series
        revision = self._revision[0]
        for series in self._stale:
            windows = by_series.get(series)
            if windows is None:  # its windows were all forgotten
                published.pop(series, None)
                continue
            total = count = 0
            for window in windows.values():
                n = len(window.calls)
                if window.seen != revision or window.adds >= n:
                    window.score()  # sums afresh
                total += window.total
                count += n
            published[series] = total / count
        self._stale.clear()
        self.published = published

    def late_signal(self, signal: LateSignal) -> None:
        with self._lock:
            self._late(signal)
            if self._stale:
                self._publish()

    def _late(self, signal: LateSignal) -> None:
        call = self._index.get(signal.request_id)
        if call is None:  # forgotten, or answered by another worker
            return
        if signal.kind == CLIENT_REFUSED:
            call.value = 0.0
            self._revision[0] += 1
        elif signal.kind == EXECUTION_FAILED and not call.late:
            call.late = True
            call.value = max(0.0, call.value - self.settings.execution_failed_weight)
            self._revision[0] += 1
        else:
            return
        self._stale_with(call, signal)
        if self.settings.enabled:  # shifting off: the score changed, no decision follows
            self._decide((call.route, call.shape))

    # ---- decisions ---------------------------------------------------------------------------------------

    def _decide(self, key: tuple[str, str], window: Window | None = None) -> None:
        """Demote, restore or keep a variant for `key` (route, shape) if its scores say so; `window`: its candidate
        window, when the caller has it at hand (one look-up a verdict, not two)."""
        route = key[0]
        if key in self.state.demoted:
            self._maybe_restore(key)
        elif self.candidates is None or route in self.candidates:
            self._maybe_demote(key, window if window is not None else self._candidates.window(key))
        if len(self.variants.get(route, ())) > 1:
            self._maybe_keep_variant(key)

    def _maybe_demote(self, key: tuple[str, str], window: Window) -> None:
        s = self.settings
        calls = window.count()
        if calls < s.min_calls:
            return
        score = window.score()
        if score >= s.demote_below:
            return
        demoted = dict(self.state.demoted)
        demoted[key] = Demotion(score=score, calls=calls, since=self._clock())
        self._probes.drop(key)
        self.state = msgspec.structs.replace(self.state, demoted=demoted)
        self._event(DEMOTED, key, score, calls, f"score {score:.2f} over {calls} calls is below demote_below "
                    f"{s.demote_below}; probe_share {s.probe_share} keeps measuring it")

    def _maybe_restore(self, key: tuple[str, str]) -> None:
        probes = self._probes.get(key)
        s = self.settings
        if probes is None or probes.count() < s.min_calls:
            return
        score, calls = probes.score(), probes.count()
        if score <= s.restore_above:
            return
        demoted = dict(self.state.demoted)
        demoted.pop(key, None)
        # judged from now on by how it does since it healed (the new window holds the probes' calls before the old
        # windows let them go, so the index keeps them)
        self._candidates.replace(key, Window(s.window, self._revision, probes.calls, self._index))
        self._probes.drop(key)
        self.state = msgspec.structs.replace(self.state, demoted=demoted)
        self._event(RESTORED, key, score, calls, f"probe score {score:.2f} over {calls} calls is above restore_above "
                    f"{s.restore_above}")

    def _maybe_keep_variant(self, key: tuple[str, str]) -> None:
        """The first choice, once every variant has variant_min_calls: the best (ties: the first written). Then
        a challenger with variant_min_calls of its own replaces the kept one only when it is clearly better
        (`_clearly_better`): equally good variants would otherwise swap back and forth on noise."""
        route, shape = key
        s = self.settings
        scored = []
        for name in self.variants[route]:
            window = self._variants.get((route, shape, name))
            if window is not None and window.count() >= s.variant_min_calls:
                scored.append((window.score(), name, window.count()))
        held = self.state.kept.get(key)
        if held is None:
            if len(scored) < len(self.variants[route]):
                return
            best = max(scored, key=lambda item: item[0])  # ties: the first written
        else:
            current = next((item for item in scored if item[1] == held), None)
            challengers = [item for item in scored if item[1] != held]
            if current is None or not challengers:
                return
            best = max(challengers, key=lambda item: item[0])
            if not _clearly_better(best, current):
                return
        kept = dict(self.state.kept)
        kept[key] = best[1]
        self.state = msgspec.structs.replace(self.state, kept=kept)
        others = ", ".join(f"{name} {score:.2f}" for score, name, _ in scored if name != best[1])
        self._event(VARIANT_KEPT, key, best[0], best[2], f"variant {best[1]} kept (score {best[0]:.2f}; {others}); "
                    f"exploration {s.exploration} keeps trying the others")

    def _event(self, kind: str, key: tuple[str, str], score: float, calls: int, detail: str) -> None:
        self._drain.clear()  # a demotion or restoration replaces windows: the drain looks them up afresh
        event = ShiftEvent(time=self._clock(), kind=kind, route=key[0], shape=key[1], score=round(score, 4),
                           calls=calls, detail=detail)
        self.events = (self.events + (event,))[-MAX_EVENTS:]
        log.warning("loop: %s %s for %s: %s", kind, key[0], key[1], detail)
        if self._on_event is not None:
            self._on_event(event)

    # ---- reading -----------------------------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """The windows as GET /api/scores rows (call from any thread: a copy is read)."""
        state = self.state
        with self._lock:
            windows = [(key, list(window.calls)) for key, window in self._keys.items()]
        out = []
        for (route, model, shape, variant), calls in windows:
            n = len(calls)
            value = sum(c.value for c in calls)
            out.append({
                "route": route, "model": model or None, "shape": shape or None, "prompt_variant": variant or None,
                "calls": n, "passed": sum(1 for c in calls if c.value >= 1.0),
                "score": round(value / n, 4) if n else None, "state": self.route_state(state, route, shape),
            })
        return out

    def scores(self) -> Mapping[tuple[str, str, str], float]:
        """Each route × model × shape's score over its windows (prompt variants together), for the gauges: as the
        writer last published them (after each drain and each late signal that changed a call), read on the event
        loop at a scrape without the lock, which the writer holds for a whole drain. Never changed in place."""
        return self.published

    def indexed(self) -> int:
        """How many calls a late signal can still change (the index's size)."""
        with self._lock:
            return len(self._index)

    def route_state(self, state: ShiftState, route: str, shape: str) -> str:
        """active | demoted | probing (demoted, and probes have been scored since). Shifting off: active (a
        demotion from before it was switched off moves no traffic)."""
        if not self.settings.enabled or (route, shape) not in state.demoted:
            return "active"
        probes = self._probes.get((route, shape))
        return "probing" if probes is not None and probes.count() else "demoted"


def _after_demotion(record: AuditRecord, demotion: Demotion) -> bool:
    """Is this call evidence of how a demoted candidate does since its demotion (a probe)? Calls already in flight
    or queued for the writer when it was demoted are not: counted, a run of their failures opened the probe window
    and restoration took up to ~4× the min_calls probes README promises. `time` is when the request arrived; a
    request that arrived just before the demotion but was picked after it says so in its loop events."""
    if record.time >= demotion.since:
        return True
    mark = f"probe: {record.route} "
    return any(event.startswith(mark) for event in record.loop_events)
