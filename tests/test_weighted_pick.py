"""Picking a weighted route's candidate (loop/shift.py), with an injected RNG: by weight while none is demoted;
never a demoted candidate but on its probe turn (exactly a probe_share of the requests of that shape, for any
share), nor one whose breaker is open while another is ready; with every candidate demoted, or every breaker open,
the normal weights (service is never refused); each request's record says what the loop did. Prompt variants
split evenly until one is kept, then the kept one but for the exploration share."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragoman.config.loop import ShiftSettings
from dragoman.config.model import CandidateEntry, PromptPrefix, Route, Timeouts, WeightedRoute
from dragoman.loop.scores import Demotion, Scoreboard, ShiftState
from dragoman.loop.shift import Shift
from dragoman.routing.breaker import CircuitBreaker
from dragoman.translate.options import TranslationOptions

SHAPE = "tools|8k|stream|nothink"

weights = st.lists(st.floats(min_value=0.01, max_value=1000), min_size=2, max_size=6)


def weighted(ws: list[float]) -> WeightedRoute:
    return WeightedRoute(name="w", candidates=tuple(CandidateEntry(route=f"c{i}", weight=w) for i, w in enumerate(ws)))


def shift_with(demoted: set[str], probe_share: float = 0.05, seed: int = 0) -> Shift:
    board = Scoreboard(ShiftSettings(probe_share=probe_share))
    board.state = ShiftState(demoted={(name, SHAPE): Demotion(score=0.41, calls=40, since=0.0) for name in demoted})
    return Shift(board, rng=random.Random(seed))


@given(weights, st.integers(min_value=0, max_value=2**32))
def test_the_pick_is_always_a_candidate(ws: list[float], seed: int) -> None:
    shift = shift_with(set(), seed=seed)
    names = {f"c{i}" for i in range(len(ws))}
    assert all(shift.pick(weighted(ws), SHAPE, []) in names for _ in range(20))


@settings(max_examples=25)
@given(weights, st.data())
def test_a_demoted_candidate_gets_only_probe_traffic(ws: list[float], data: st.DataObject) -> None:
    demoted = set(data.draw(st.sets(st.sampled_from([f"c{i}" for i in range(len(ws))]), max_size=len(ws) - 1)))
    shift = shift_with(demoted, probe_share=0.1, seed=data.draw(st.integers(0, 2**32)))
    events: list[str] = []
    picks = [shift.pick(weighted(ws), SHAPE, events) for _ in range(100)]
    to_demoted = [p for p in picks if p in demoted]
    assert len(to_demoted) == (10 if demoted else 0)  # every 10th request, exactly
    assert sum(e.startswith("probe: ") for e in events) == len(to_demoted)


@settings(max_examples=25)
@given(weights, st.integers(min_value=0, max_value=2**32))
def test_all_candidates_demoted_falls_back_to_normal_weights(ws: list[float], seed: int) -> None:
    names = {f"c{i}" for i in range(len(ws))}
    shift = shift_with(names, seed=seed)
    events: list[str] = []
    assert shift.pick(weighted(ws), SHAPE, events) in names
    assert events == [f"all candidates of w demoted for {SHAPE}: normal weights"]


def test_shares_follow_the_weights() -> None:
    shift = shift_with(set(), seed=7)
    picks = Counter(shift.pick(weighted([80, 20]), SHAPE, []) for _ in range(10_000))
    assert 7700 < picks["c0"] < 8300 and picks["c0"] + picks["c1"] == 10_000


def test_demotion_for_another_shape_does_not_move_traffic() -> None:
    shift = shift_with({"c0"})
    events: list[str] = []
    picks = Counter(shift.pick(weighted([50, 50]), "notools|8k|json|nothink", events) for _ in range(200))
    assert picks["c0"] > 50 and events == []


def test_the_record_names_the_avoided_and_the_probed_candidate() -> None:
    shift = shift_with({"c0"}, probe_share=0.5)
    first: list[str] = []
    second: list[str] = []
    assert shift.pick(weighted([80, 20]), SHAPE, first) == "c1"
    assert shift.pick(weighted([80, 20]), SHAPE, second) == "c0"
    assert first == [f"avoided: c0 (demoted for {SHAPE})"]
    assert second == [f"probe: c0 (demoted for {SHAPE}, score 0.41 over 40 calls)"]


def test_shifting_off_keeps_the_weights() -> None:
    shift = shift_with({"c0"})
    shift.enabled = False
    assert Counter(shift.pick(weighted([50, 50]), SHAPE, []) for _ in range(200))["c0"] > 50


def _route(*variants: str) -> Route:
    return Route(name="a", provider="openai", model="m", endpoint="http://x/v1/chat/completions", api_key=None,
                 timeouts=Timeouts(), translation=TranslationOptions(),
                 prompt_prefixes=tuple(PromptPrefix(name=v, text=f"[{v}]") for v in variants))


def test_variants_split_evenly_until_one_is_kept() -> None:
    shift = shift_with(set(), seed=3)
    picks = Counter(shift.variant(_route("plain", "cc"), SHAPE).name for _ in range(4000))
    assert 1800 < picks["plain"] < 2200


@pytest.mark.parametrize("exploration", [0.0, 0.1])
def test_the_kept_variant_gets_all_but_the_exploration_share(exploration: float) -> None:
    board = Scoreboard(ShiftSettings(exploration=exploration))
    board.state = ShiftState(kept={("a", SHAPE): "cc"})
    shift = Shift(board, rng=random.Random(5))
    picks = Counter(shift.variant(_route("plain", "cc", "other"), SHAPE).name for _ in range(10_000))
    assert picks["plain"] + picks["other"] == pytest.approx(10_000 * exploration, abs=150)
    assert shift.variant(_route(), SHAPE) is None


def _breakers(*open_names: str, names: tuple[str, ...] = ("c0", "c1", "c2")) -> dict[str, CircuitBreaker]:
    out = {}
    for name in names:
        breaker = out[name] = CircuitBreaker(failures=1, cooldown=60, clock=lambda: 0.0)
        if name in open_names:
            breaker.failure()
    return out


def test_a_candidate_whose_breaker_is_open_gets_no_share_while_another_is_ready() -> None:
    shift = shift_with(set(), seed=11)
    events: list[str] = []
    picks = Counter(shift.pick(weighted([90, 5, 5]), SHAPE, events, _breakers("c0")) for _ in range(1000))
    assert picks["c0"] == 0 and picks["c1"] + picks["c2"] == 1000
    assert events == ["avoided: c0 (circuit breaker open)"] * 1000


def test_with_every_breaker_open_the_normal_weights_apply() -> None:
    shift = shift_with(set(), seed=11)
    events: list[str] = []
    picks = Counter(shift.pick(weighted([80, 20]), SHAPE, events, _breakers("c0", "c1")) for _ in range(1000))
    assert 700 < picks["c0"] < 900 and events == []


def test_a_demoted_candidate_is_preferred_to_one_whose_breaker_is_open() -> None:
    # c0 answers badly (demoted), c1 does not answer at all: c0 takes the traffic, and no probe goes to c1.
    shift = shift_with({"c0"}, seed=11)
    events: list[str] = []
    assert {shift.pick(weighted([50, 50]), SHAPE, events, _breakers("c1")) for _ in range(100)} == {"c0"}
    assert events[:2] == ["avoided: c1 (circuit breaker open)",
                          f"all candidates of w demoted for {SHAPE}: normal weights"]


def test_probes_skip_a_demoted_candidate_whose_breaker_is_open() -> None:
    shift = shift_with({"c0", "c1"}, probe_share=0.5, seed=11)
    picks = Counter(shift.pick(weighted([1, 1, 1]), SHAPE, [], _breakers("c1")) for _ in range(100))
    assert picks == {"c2": 50, "c0": 50}


@pytest.mark.parametrize("share", [0.05, 0.3, 0.4, 0.45, 0.07, 0.15, 0.5, 0.001])
def test_the_probe_share_is_exact_for_any_share(share: float) -> None:
    shift = shift_with({"c0"}, probe_share=share)
    n = 10_000
    probes = sum(shift.pick(weighted([1, 1]), SHAPE, []) == "c0" for _ in range(n))
    assert probes == round(n * share)


def test_probes_are_evenly_spaced() -> None:
    # 0.3: three in every ten requests, never more than ceil(1 / share) requests apart.
    shift = shift_with({"c0"}, probe_share=0.3)
    turns = [i for i in range(100) if shift.pick(weighted([1, 1]), SHAPE, []) == "c0"]
    assert len(turns) == 30 and max(b - a for a, b in zip(turns, turns[1:])) <= 4


def test_a_reloaded_probe_share_applies_to_the_next_request() -> None:
    shift = shift_with({"c0"}, probe_share=0.001)
    assert "c0" not in {shift.pick(weighted([1, 1]), SHAPE, []) for _ in range(999)}  # 0.999 of a probe earned
    shift.scoreboard.settings = ShiftSettings(probe_share=0.5)  # as Scoreboard.configure sets it on a reload
    assert [shift.pick(weighted([1, 1]), SHAPE, []) for _ in range(6)] == ["c1", "c0"] * 3


def test_the_largest_weights_allowed_still_split_by_weight() -> None:
    from dragoman.config.model import MAX_WEIGHT

    shift = shift_with(set(), seed=7)
    picks = Counter(shift.pick(weighted([MAX_WEIGHT] * 3), SHAPE, []) for _ in range(3000))
    assert all(900 < picks[f"c{i}"] < 1100 for i in range(3))
