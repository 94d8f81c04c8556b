"""The loop's actions on the hot path: which candidate of a weighted route a request goes to, and which
system-prompt prefix variant a route's request gets. Both read the scoreboard's published `ShiftState` (one
attribute, no lock) and do a few dict lookups and one random draw; nothing here waits or allocates much.

A weighted route's candidates are picked by weight among those whose circuit breaker would let the request
through and that are not demoted for the request's turn shape. A `probe_share` of the requests of that route and
shape goes to a demoted candidate instead (a counter, not a draw: the share is then exact, and the number of calls a
restoration needs is bounded). With every breaker open, or every candidate demoted, the normal weights apply: the
loop never refuses service."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from fractions import Fraction

from dragoman.config.loop import ShiftSettings
from dragoman.config.model import CandidateEntry, PromptPrefix, Route, WeightedRoute
from dragoman.loop.scores import Scoreboard
from dragoman.routing.breaker import CLOSED, CircuitBreaker

MAX_COUNTERS = 4096  # (weighted route, shape) probe counters; shapes are few, this only bounds a config churn


class Shift:
    """Candidate and variant picks for the event loop; the scoreboard behind it learns in the writer thread."""

    def __init__(self, scoreboard: Scoreboard | None = None, *, rng: random.Random | None = None,
                 enabled: bool = True) -> None:
        self.scoreboard = scoreboard if scoreboard is not None else Scoreboard()
        self.enabled = enabled  # loop.enabled and loop.shift.enabled: off, weights are never changed
        self._rng = rng or random.Random()
        self._counters: dict[tuple[str, str], int] = {}  # probe credit, in 1/denominator-ths of a probe
        self._share = (-1.0, 0, 1)  # probe_share, and it as numerator / denominator (ints: no rounding drift)

    @property
    def settings(self) -> ShiftSettings:
        return self.scoreboard.settings

    def pick(self, weighted: WeightedRoute, shape: str, events: list[str],
             breakers: Mapping[str, CircuitBreaker] | None = None) -> str:
        """The name of the candidate this request goes to; what the loop did is appended to `events`. `breakers`
        (by route name): a candidate whose breaker would refuse the request is left out while another is ready,
        or the request would fail on it although a sibling could answer (only its own fallbacks follow it)."""
        candidates = weighted.candidates if breakers is None else _ready(weighted.candidates, breakers, events)
        demoted = self.scoreboard.state.demoted if self.enabled else {}
        if not demoted:
            return _by_weight(candidates, self._rng)
        down = [c for c in candidates if (c.route, shape) in demoted]
        if not down:
            return _by_weight(candidates, self._rng)
        if len(down) == len(candidates):
            events.append(f"all candidates of {weighted.name} demoted for {shape}: normal weights")
            return _by_weight(candidates, self._rng)
        if self._probe_due(weighted.name, shape):
            chosen = _by_weight(down, self._rng)
            why = demoted[(chosen, shape)]
            events.append(f"probe: {chosen} (demoted for {shape}, score {why.score:.2f} over {why.calls} calls)")
            return chosen
        events.extend(f"avoided: {c.route} (demoted for {shape})" for c in down)
        return _by_weight([c for c in candidates if (c.route, shape) not in demoted], self._rng)

    def _probe_due(self, name: str, shape: str) -> bool:
        """Is this request of `name` and `shape` a probe? Each request earns probe_share of a probe and a probe
        is sent once a whole one is earned: exactly probe_share of them over any run (1/20: every 20th)."""
        share, numerator, denominator = self._share
        if share != self.settings.probe_share:  # a reload changed it (compared per request: cheaper than a hook)
            share = self.settings.probe_share
            ratio = Fraction(str(share)).limit_denominator(1_000_000)  # 0.3 is 3/10, not the float's 2^-54ths
            self._share = share, numerator, denominator = share, ratio.numerator, ratio.denominator
            self._counters.clear()  # credits were counted in the old denominator's units
        if not numerator:
            return False
        counters = self._counters
        if len(counters) >= MAX_COUNTERS:
            counters.clear()
        key = (name, shape)
        credit = counters.get(key, 0) + numerator
        due = credit >= denominator
        counters[key] = credit - denominator if due else credit
        return due

    def variant(self, route: Route, shape: str) -> PromptPrefix | None:
        """The prompt-prefix variant for a request on `route`: an even split until the loop keeps one, then
        the kept one but for an `exploration` share spread over the others. None: the route has no variants."""
        variants = route.prompt_prefixes
        if not variants:
            return None
        rng = self._rng
        name = self.scoreboard.state.kept.get((route.name, shape)) if self.enabled else None
        # A kept name the route no longer lists (a reload renamed or removed it) is nothing kept: an even split.
        kept = None if name is None else next((v for v in variants if v.name == name), None)
        if kept is None:
            return variants[rng.randrange(len(variants))]
        others = [v for v in variants if v is not kept]
        if others and rng.random() < self.settings.exploration:
            return others[rng.randrange(len(others))]
        return kept


def _by_weight(candidates: Sequence[CandidateEntry], rng: random.Random) -> str:
    """A candidate's route name, each with probability weight / total."""
    if len(candidates) == 1:
        return candidates[0].route
    total = sum(c.weight for c in candidates)
    point = rng.random() * total
    for cand in candidates:
        point -= cand.weight
        if point < 0:
            return cand.route
    return candidates[-1].route  # float rounding left the point at the very top


def _ready(candidates: tuple[CandidateEntry, ...], breakers: Mapping[str, CircuitBreaker],
           events: list[str]) -> tuple[CandidateEntry, ...]:
    """The candidates whose breaker would let a request through: all of them when every breaker is closed (the
    common case, checked without allocating) or every breaker is open (then the picked one is tried anyway as the
    last resort: service is never refused outright)."""
    for cand in candidates:  # per request: a plain loop and a state test first (all() over a generator, ~0.4 µs)
        breaker = breakers[cand.route]
        if breaker.state != CLOSED and not breaker.ready():
            break
    else:
        return candidates
    ready = tuple(cand for cand in candidates if breakers[cand.route].ready())
    if not ready:
        return candidates
    events.extend(f"avoided: {cand.route} (circuit breaker open)" for cand in candidates if cand not in ready)
    return ready


def variant_names(routes: Sequence[Route]) -> Mapping[str, tuple[str, ...]]:
    """Each route's prompt variant names, for the scoreboard."""
    return {route.name: tuple(v.name for v in route.prompt_prefixes) for route in routes if route.prompt_prefixes}
