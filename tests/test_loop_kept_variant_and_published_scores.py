"""The kept prompt variant and the scores the scoreboard publishes for /metrics, driven as the Assessor drives a
VerdictSink: a reload that renames or removes the kept variant un-keeps it; the kept variant is replaced only by
a clearly better one, so equally good variants do not swap back and forth; the per-series scores a scrape reads
are published by the writer (after each drain and each late signal that changed a call), read without the lock
the writer holds for a whole drain, and equal to the windows' scores through evictions, late signals and
window-size changes."""

from __future__ import annotations

import itertools
import logging
import random

import pytest

from dragoman.config.loop import ShiftSettings
from dragoman.config.model import PromptPrefix
from dragoman.loop import scores as S
from dragoman.loop.scores import Scoreboard
from dragoman.loop.shift import Shift
from dragoman.loop.verdict import CLIENT_REFUSED, EXECUTION_FAILED, LateSignal
from dragoman.observe.record import AuditRecord

TOOLS = "tools|8k|stream|nothink"
CHAT = "notools|8k|stream|nothink"
_ids = itertools.count()
VARIANTS = ShiftSettings(window=100, min_calls=5, variant_min_calls=20)


def record(route: str = "a", verdict: str = "pass", shape: str = TOOLS, variant: str | None = None,
           model: str = "gpt-x") -> AuditRecord:
    return AuditRecord(time=1000.0, request_id=f"req_{next(_ids)}", route=route, upstream_model=model,
                       verdict=verdict, shape=shape, prompt_variant=variant, tool_calls=1)


def feed(board: Scoreboard, passed: int, failed: int, **kwargs: str) -> list[AuditRecord]:
    out = [record(verdict="pass", **kwargs) for _ in range(passed)] + [record(verdict="fail", **kwargs)
                                                                       for _ in range(failed)]
    board.verdicts(out)
    return out


def kept_board(names: tuple[str, ...] = ("v1", "v2")) -> Scoreboard:
    """A board that keeps v1 (20 of 20 passed) over v2 (18 of 20)."""
    board = Scoreboard(VARIANTS)
    board.configure(VARIANTS, {"a": names}, frozenset())
    feed(board, 20, 0, variant="v1")
    feed(board, 18, 2, variant="v2")
    assert board.state.kept == {("a", TOOLS): "v1"}
    return board


# ---- a reload that renames or removes the kept variant ----------------------------------------------------------

def test_a_reload_that_renames_the_kept_variant_unkeeps_it() -> None:
    board = kept_board()
    board.configure(VARIANTS, {"a": ("n1", "n2", "n3")}, frozenset())
    assert board.state.kept == {}
    assert board._variants == {}  # noqa: SLF001 - the gone names' windows would keep calls a choice never reads


def test_a_reload_that_keeps_the_kept_variants_name_keeps_it() -> None:
    board = kept_board()
    board.configure(VARIANTS, {"a": ("v1", "v3")}, frozenset())
    assert board.state.kept == {("a", TOOLS): "v1"}
    assert set(board._variants) == {("a", TOOLS, "v1")}  # noqa: SLF001


def test_a_kept_name_the_route_no_longer_lists_splits_traffic_evenly() -> None:
    """Even had the board kept a name the route lost, the pick does not pile onto the route's first variant."""
    board = kept_board()
    board.state = S.ShiftState(kept={("a", TOOLS): "gone"})
    shift = Shift(board, rng=random.Random(4))

    class Route:  # what Shift.variant reads
        name = "a"
        prompt_prefixes = tuple(PromptPrefix(name=n, text=n) for n in ("n1", "n2", "n3"))

    picks = [shift.variant(Route, TOOLS).name for _ in range(3000)]  # type: ignore[arg-type,union-attr]
    assert all(800 < picks.count(n) < 1200 for n in ("n1", "n2", "n3")), {n: picks.count(n) for n in "n1 n2 n3".split()}


# ---- the kept variant is replaced only by a clearly better one --------------------------------------------------

def test_a_challenger_a_little_better_does_not_replace_the_kept_variant() -> None:
    board = kept_board()
    feed(board, 0, 3, variant="v1")  # v1: 20 of 23 = 0.87
    feed(board, 20, 0, variant="v2")  # v2: 38 of 40 = 0.95, better but not clearly (z < 3)
    assert board.state.kept == {("a", TOOLS): "v1"}
    assert [e.kind for e in board.events] == [S.VARIANT_KEPT]


def test_a_clearly_better_challenger_replaces_the_kept_variant() -> None:
    board = kept_board()
    feed(board, 0, 30, variant="v1")  # v1: 20 of 50 = 0.4
    feed(board, 20, 0, variant="v2")  # v2: 38 of 40 = 0.95
    assert board.state.kept == {("a", TOOLS): "v2"}
    assert [e.kind for e in board.events] == [S.VARIANT_KEPT, S.VARIANT_KEPT]
    assert "variant v2 kept" in board.events[-1].detail


def test_a_challenger_needs_variant_min_calls_of_its_own() -> None:
    board = Scoreboard(VARIANTS)
    board.configure(VARIANTS, {"a": ("v1", "v2", "v3")}, frozenset())
    feed(board, 20, 0, variant="v1")
    feed(board, 19, 1, variant="v2")
    feed(board, 18, 2, variant="v3")
    feed(board, 0, 40, variant="v1")  # v1 now 20 of 60
    feed(board, 19, 0, variant="v2")  # v2 now 38 of 40: clearly better, with 40 calls
    assert board.state.kept == {("a", TOOLS): "v2"}
    board.configure(VARIANTS, {"a": ("v2", "v4")}, frozenset())
    feed(board, 0, 60, variant="v2")
    feed(board, 19, 0, variant="v4")  # every call passed, but 19 are fewer than variant_min_calls
    assert board.state.kept == {("a", TOOLS): "v2"}
    feed(board, 1, 0, variant="v4")
    assert board.state.kept == {("a", TOOLS): "v4"}


def test_equally_good_variants_do_not_swap_the_kept_one_back_and_forth() -> None:
    """Two variants passing 90% each, on the default settings, as Shift picks them: one is kept, and stays (the
    best score alone swapped it 92 times in 20,000 calls)."""
    logging.disable(logging.WARNING)
    try:
        board = Scoreboard(ShiftSettings())
        board.configure(board.settings, {"a": ("v1", "v2")}, frozenset())
        shift = Shift(board, rng=random.Random(1))

        class Route:
            name = "a"
            prompt_prefixes = (PromptPrefix("v1", "x"), PromptPrefix("v2", "y"))

        rng = random.Random(2)
        for _ in range(20_000):
            variant = shift.variant(Route, TOOLS).name  # type: ignore[arg-type,union-attr]
            board.verdict(record(variant=variant, verdict="pass" if rng.random() < 0.9 else "fail"))
    finally:
        logging.disable(logging.NOTSET)
    assert [e.kind for e in board.events] == [S.VARIANT_KEPT]


# ---- the scores a /metrics scrape reads --------------------------------------------------------------------------

class _WritersLock:
    """The scoreboard's lock as a scrape finds it while the writer drains: held. Entering it is the failure."""

    def __enter__(self) -> None:
        raise AssertionError("a /metrics scrape waited on the lock the audit writer holds for a whole drain")

    def __exit__(self, *exc: object) -> None:
        return None


def expected(board: Scoreboard) -> dict[tuple[str, str, str], float]:
    """Each route × model × shape's score from the windows themselves (prompt variants together)."""
    sums: dict[tuple[str, str, str], list[float]] = {}
    for (route, model, shape, _variant), window in board._keys.items():  # noqa: SLF001 - the truth to compare to
        total = sums.setdefault((route, model, shape), [0.0, 0.0])
        total[0] += sum(call.value for call in window.calls)
        total[1] += len(window.calls)
    return {key: value / count for key, (value, count) in sums.items() if count}


def test_a_scrape_reads_the_published_scores_without_the_writers_lock() -> None:
    board = Scoreboard(VARIANTS)
    feed(board, 3, 1, variant="v1")
    feed(board, 1, 1, variant="v2", model="gpt-y")
    feed(board, 2, 0, shape=CHAT)
    board._lock = _WritersLock()  # type: ignore[assignment] # noqa: SLF001
    assert board.scores() == {("a", "gpt-x", TOOLS): 0.75, ("a", "gpt-y", TOOLS): 0.5, ("a", "gpt-x", CHAT): 1.0}


def test_published_scores_are_replaced_whole_never_changed_in_place() -> None:
    board = Scoreboard(VARIANTS)
    feed(board, 1, 0)
    before = dict(published := board.scores())
    feed(board, 0, 1)
    assert published == before and board.scores() == {("a", "gpt-x", TOOLS): 0.5}


def test_published_scores_follow_variants_late_signals_and_evictions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "MAX_KEYS", 6)
    board = Scoreboard(ShiftSettings(window=10, min_calls=50, variant_min_calls=5), clock=lambda: 1.0)
    board.configure(board.settings, {"a": ("v1", "v2")})
    rng = random.Random(7)
    sent: list[AuditRecord] = []
    for step in range(400):
        drain = [record(route=rng.choice("ab"), model=rng.choice(["m1", "m2", ""]), shape=rng.choice([TOOLS, CHAT]),
                        variant=rng.choice([None, "v1", "v2"]), verdict=rng.choice(["pass", "pass", "fail"]))
                 for _ in range(rng.randrange(1, 8))]
        board.verdicts(drain)
        sent += drain
        if step % 3 == 0:
            earlier = rng.choice(sent[-40:])
            kind = rng.choice([CLIENT_REFUSED, EXECUTION_FAILED])
            board.late_signal(LateSignal(request_id=earlier.request_id, kind=kind, time=1.0, route=earlier.route,
                                         model=earlier.upstream_model, shape=earlier.shape))
        assert board.scores() == pytest.approx(expected(board)), step
    board.configure(ShiftSettings(window=20, min_calls=50), {})
    assert board.scores() == {}


def test_a_late_signal_that_names_no_model_still_reaches_the_published_score() -> None:
    board = Scoreboard(VARIANTS)
    recs = feed(board, 4, 0)
    board.late_signal(LateSignal(request_id=recs[0].request_id, kind=CLIENT_REFUSED, time=1.0))
    assert board.scores() == {("a", "gpt-x", TOOLS): 0.75}
