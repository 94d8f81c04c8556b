"""Picking a weighted route's candidate (loop/shift.py), with an injected RNG: by weight while none is demoted;
never a demoted candidate but on its probe turn (exactly every 1/probe_share-th request of that shape); with
every candidate demoted, the normal weights (service is never refused); each request's record says what the loop
did. Prompt variants split evenly until one is kept, then the kept one but for the exploration share."""

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
