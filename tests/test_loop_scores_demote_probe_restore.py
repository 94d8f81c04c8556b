"""The scoreboard's decisions, driven directly as the Assessor drives a VerdictSink, with an injected clock:
a candidate is demoted for a shape once its score falls below demote_below over at least min_calls calls (and
within the stated bound for a route that was perfect), only for that shape; late signals count against the
earlier call (a client refusal as a failure, an execution failure as a weaker one); probes restore it once they
score above restore_above; the best prompt variant is kept once each has variant_min_calls; memory is bounded."""

from __future__ import annotations

import itertools

import pytest

from dragoman.config.loop import ShiftSettings
from dragoman.loop import scores as S
from dragoman.loop.scores import Scoreboard
from dragoman.loop.verdict import CLIENT_REFUSED, EXECUTION_FAILED, LateSignal
from dragoman.observe.record import AuditRecord

TOOLS = "tools|8k|stream|nothink"
CHAT = "notools|8k|stream|nothink"
_ids = itertools.count()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(route: str = "a", verdict: str = "pass", shape: str = TOOLS, variant: str | None = None,
           model: str = "gpt-x") -> AuditRecord:
    return AuditRecord(time=1000.0, request_id=f"req_{next(_ids)}", route=route, upstream_model=model,
                       verdict=verdict, shape=shape, prompt_variant=variant, tool_calls=1)


def feed(board: Scoreboard, n: int, **kwargs: str) -> list[AuditRecord]:
    out = [record(**kwargs) for _ in range(n)]
    for rec in out:
        board.verdict(rec)
    return out


SETTINGS = ShiftSettings(window=10, min_calls=5, demote_below=0.6, restore_above=0.85)


def test_not_demoted_before_min_calls_even_when_every_call_fails() -> None:
    board = Scoreboard(SETTINGS, clock=Clock())
    feed(board, 4, verdict="fail")
    assert board.state.demoted == {}
    feed(board, 1, verdict="fail")
    demotion = board.state.demoted[("a", TOOLS)]
    assert (demotion.score, demotion.calls) == (0.0, 5)


def test_a_perfect_route_that_breaks_is_demoted_within_the_stated_bound() -> None:
    # README: floor(window × (1 - demote_below)) + 1 of its calls, here floor(10 × 0.4) + 1 = 5.
    board = Scoreboard(SETTINGS, clock=Clock())
    feed(board, 10)
    feed(board, 4, verdict="fail")
    assert board.state.demoted == {}
    feed(board, 1, verdict="fail")
    assert ("a", TOOLS) in board.state.demoted
    assert board.events[-1].kind == S.DEMOTED and board.events[-1].calls == 10


def test_demotion_is_per_shape_and_per_route() -> None:
    board = Scoreboard(SETTINGS, clock=Clock())
    feed(board, 5, verdict="fail", shape=TOOLS)
    feed(board, 5, shape=CHAT)
    feed(board, 5, route="b", shape=TOOLS)
    assert set(board.state.demoted) == {("a", TOOLS)}


def test_only_a_weighted_routes_candidates_are_demoted() -> None:
    board = Scoreboard(SETTINGS, clock=Clock())
    board.configure(SETTINGS, {}, frozenset({"b"}))
    feed(board, 5, verdict="fail")  # route a: scored, but no weighted route lists it: nothing to shift
    feed(board, 5, route="b", verdict="fail")
    assert set(board.state.demoted) == {("b", TOOLS)}
    assert board.rows()[0]["score"] == 0.0


def test_score_at_the_threshold_is_not_demoted() -> None:
    board = Scoreboard(SETTINGS, clock=Clock())
    for verdict in ["pass", "pass", "pass", "fail", "fail"]:  # 0.6: not below 0.6
        board.verdict(record(verdict=verdict))
    assert board.state.demoted == {}


def test_records_without_a_verdict_are_not_scored() -> None:
    board = Scoreboard(SETTINGS, clock=Clock())
    for _ in range(10):
        board.verdict(AuditRecord(time=0, request_id="r", route="a", status=502, shape=TOOLS))
    assert board.rows() == []


def test_a_client_refusal_turns_a_passed_call_into_a_failure() -> None:
    board = Scoreboard(SETTINGS, clock=Clock())
    recs = feed(board, 5)
    for rec in recs[:2]:
        board.late_signal(LateSignal(request_id=rec.request_id, kind=CLIENT_REFUSED, time=1.0))
    assert board.state.demoted == {}  # 0.6
    board.late_signal(LateSignal(request_id=recs[2].request_id, kind=CLIENT_REFUSED, time=1.0))
    assert board.state.demoted[("a", TOOLS)].score == pytest.approx(0.4)


def test_an_execution_failure_is_a_weaker_signal_counted_once_per_call() -> None:
    board = Scoreboard(ShiftSettings(window=10, min_calls=5, execution_failed_weight=0.25), clock=Clock())
    recs = feed(board, 5)
    for _ in range(3):  # several failed tool calls of one answer cost it the weight once
        board.late_signal(LateSignal(request_id=recs[0].request_id, kind=EXECUTION_FAILED, time=1.0))
    (row,) = board.rows()
    assert row["score"] == pytest.approx((4 + 0.75) / 5)
    assert row["passed"] == 4
    for rec in recs:  # every call ran and failed: 0.75 is still above demote_below
        board.late_signal(LateSignal(request_id=rec.request_id, kind=EXECUTION_FAILED, time=1.0))
    assert board.state.demoted == {}


def test_a_late_signal_finds_only_the_last_indexed_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The index of calls a late signal can change keeps the last MAX_INDEXED passed calls with tool calls: an older
    one, or a text answer's (no tool call a next turn could refuse), is scored as it was."""
    monkeypatch.setattr(S, "MAX_INDEXED", 3)
    board = Scoreboard(ShiftSettings(window=10, min_calls=50), clock=Clock())
    recs = feed(board, 5)
    text = record()
    text.tool_calls = 0
    board.verdict(text)
    for rec in (recs[0], recs[1], text):
        board.late_signal(LateSignal(request_id=rec.request_id, kind=CLIENT_REFUSED, time=1.0))
    assert board.rows()[0]["score"] == 1.0
    board.late_signal(LateSignal(request_id=recs[4].request_id, kind=CLIENT_REFUSED, time=1.0))
    assert board.rows()[0]["score"] == pytest.approx(5 / 6, abs=1e-4)  # rows() rounds to 4 places


def test_a_call_no_window_holds_leaves_the_late_signal_index() -> None:
    """A call that has left every window (the shown one and its candidate one) changes no score whatever a late
    signal says: the index lets it go, so it holds no more than the windows do."""
    board = Scoreboard(ShiftSettings(window=3, min_calls=50), clock=Clock())
    feed(board, 5)
    assert board.indexed() == 3
    feed(board, 2, shape="notools|8k|json|nothink")  # a second shape: its own windows, their own calls
    assert board.indexed() == 5


def test_a_late_signal_reaches_the_probe_calls_a_restored_candidate_is_judged_by() -> None:
    clock = Clock()
    board = Scoreboard(ShiftSettings(window=10, min_calls=3, demote_below=0.5, restore_above=0.6), clock=clock)
    feed(board, 3, verdict="fail")
    assert ("a", TOOLS) in board.state.demoted
    probes = feed(board, 3)  # probes that pass: restored, and the candidate window starts from them
    assert ("a", TOOLS) not in board.state.demoted
    board.late_signal(LateSignal(request_id=probes[0].request_id, kind=CLIENT_REFUSED, time=1.0))
    board.late_signal(LateSignal(request_id=probes[1].request_id, kind=CLIENT_REFUSED, time=1.0))
    assert board.state.demoted[("a", TOOLS)].score == pytest.approx(1 / 3)


def test_a_late_signal_for_an_unknown_call_changes_nothing() -> None:
    board = Scoreboard(SETTINGS, clock=Clock())
    feed(board, 5)
    board.late_signal(LateSignal(request_id="req_elsewhere", kind=CLIENT_REFUSED, time=1.0))
    assert board.rows()[0]["score"] == 1.0


def test_probes_restore_a_demoted_candidate_once_they_pass() -> None:
    clock = Clock()
    board = Scoreboard(SETTINGS, clock=clock)
    feed(board, 5, verdict="fail")
    assert board.route_state(board.state, "a", TOOLS) == "demoted"
    clock.now = 2000.0
    feed(board, 4)  # probes: fewer than min_calls
    assert board.route_state(board.state, "a", TOOLS) == "probing"
    feed(board, 1)
    assert board.state.demoted == {}
    event = board.events[-1]
    assert (event.kind, event.calls, event.score, event.time) == (S.RESTORED, 5, 1.0, 2000.0)
    # Judged afresh from its probes: the failures before the demotion no longer weigh on it.
    feed(board, 1, verdict="fail")
    assert board.state.demoted == {}


def test_failing_probes_keep_it_demoted() -> None:
    board = Scoreboard(SETTINGS, clock=Clock())
    feed(board, 5, verdict="fail")
    for verdict in ["pass", "fail"] * 10:
        board.verdict(record(verdict=verdict))
    assert ("a", TOOLS) in board.state.demoted
    assert [e.kind for e in board.events] == [S.DEMOTED]


def test_state_is_published_as_a_new_object_never_changed_in_place() -> None:
    board = Scoreboard(SETTINGS, clock=Clock())
    before = board.state
    feed(board, 5, verdict="fail")
    assert before.demoted == {} and board.state is not before


def test_the_best_variant_is_kept_once_each_has_enough_calls() -> None:
    board = Scoreboard(ShiftSettings(window=10, min_calls=5, variant_min_calls=4), clock=Clock())
    board.configure(board.settings, {"a": ("plain", "cc-aware")})
    for verdict in ["pass", "fail"] * 2:
        board.verdict(record(verdict=verdict, variant="plain"))
    feed(board, 3, variant="cc-aware")
    assert board.state.kept == {}  # cc-aware has 3 calls
    feed(board, 1, variant="cc-aware")
    assert board.state.kept == {("a", TOOLS): "cc-aware"}
    assert board.events[-1].kind == S.VARIANT_KEPT and "plain 0.50" in board.events[-1].detail


def test_windows_and_indexes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "MAX_KEYS", 8)
    monkeypatch.setattr(S, "MAX_INDEXED", 16)
    board = Scoreboard(SETTINGS, clock=Clock())
    for i in range(50):
        feed(board, 3, route=f"r{i}")
    assert len(board.rows()) == 8
    assert len(board._index) == 16  # noqa: SLF001 - the bound is the point


def test_a_new_window_size_starts_scores_over() -> None:
    board = Scoreboard(SETTINGS, clock=Clock())
    feed(board, 5, verdict="fail")
    board.configure(ShiftSettings(window=20, min_calls=5), {})
    assert board.state.demoted == {} and board.rows() == []


def test_a_windows_score_does_not_drift_across_a_threshold_as_calls_come_and_go() -> None:
    # Values such as 0.7 (execution_failed_weight 0.3) leave rounding in a running sum once they leave the window:
    # six passes in ten must score 0.6 exactly, not 0.5999999999999999 (which is below demote_below 0.6).
    from dragoman.loop.scores import Call, Window

    revision = [0]
    for mixed in range(1, 60):
        window = Window(10, revision)
        for i in range(mixed):
            window.add(Call(f"r{i}", "a", "s", (0.7, 1.0, 0.0)[i % 3]))
            window.score()  # scored after every call, as the scoreboard does
        for i, value in enumerate([1.0] * 6 + [0.0] * 4):
            window.add(Call(f"s{i}", "a", "s", value))
            window.score()
        assert window.score() == 0.6, mixed


def test_a_late_signal_changes_the_score_of_every_window_holding_its_call() -> None:
    from dragoman.loop.scores import Call, Window

    revision = [0]
    shown, candidates = Window(10, revision), Window(10, revision)
    call = Call("r1", "a", "s", 1.0)
    for window in (shown, candidates):
        window.add(call)
        window.add(Call("r2", "a", "s", 1.0))
        assert window.score() == 1.0
    call.value = 0.0  # the client refused the call (Scoreboard._late), which bumps the revision
    revision[0] += 1
    assert shown.score() == candidates.score() == 0.5


def _at(when: float, verdict: str = "pass", loop_events: tuple[str, ...] = ()) -> AuditRecord:
    """A call of route a that arrived at `when` (AuditRecord.time is the request's start)."""
    return AuditRecord(time=when, request_id=f"req_{next(_ids)}", route="a", upstream_model="gpt-x", verdict=verdict,
                       shape=TOOLS, tool_calls=1, loop_events=list(loop_events))


@pytest.mark.parametrize("in_flight", [0, 10, 30])
def test_calls_in_flight_at_the_demotion_are_not_probes(in_flight: int) -> None:
    # README: restored once its probes since the demotion score above restore_above over at least min_calls probes.
    clock = Clock()
    board = Scoreboard(ShiftSettings(), clock=clock)  # the defaults: min_calls 20
    board.verdicts([_at(999.0) for _ in range(100)])
    # One drain: the 41st failure demotes it; the failures of calls sent before it follow in the same drain.
    board.verdicts([_at(999.0, "fail") for _ in range(41 + in_flight)])
    assert ("a", TOOLS) in board.state.demoted
    board.verdicts([_at(999.5, "fail") for _ in range(in_flight)])  # queued for the writer: a later drain
    assert board.route_state(board.state, "a", TOOLS) == "demoted"
    for probe in range(1, 21):  # it healed: every real probe passes
        assert ("a", TOOLS) in board.state.demoted, probe
        board.verdict(_at(1000.0 + probe))
    assert board.state.demoted == {} and board.events[-1].calls == 20


def test_a_probe_picked_after_the_demotion_counts_though_its_request_arrived_before() -> None:
    clock = Clock()
    board = Scoreboard(SETTINGS, clock=clock)
    feed(board, 5, verdict="fail")
    probe = f"probe: a (demoted for {TOOLS}, score 0.00 over 5 calls)"
    board.verdicts([_at(999.0, loop_events=(probe,)) for _ in range(4)])
    board.verdicts([_at(999.0, loop_events=("probe: ab (demoted for x)", "avoided: a (demoted)"))])
    assert ("a", TOOLS) in board.state.demoted
    board.verdict(_at(999.0, loop_events=(probe,)))
    assert board.state.demoted == {}


SHIFT_OFF = ShiftSettings(enabled=False, window=10, min_calls=5, variant_min_calls=4)


def test_with_shifting_off_nothing_is_demoted_logged_or_counted(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    board = Scoreboard(SHIFT_OFF, clock=Clock(), on_event=lambda e: seen.append(e.kind))
    board.configure(SHIFT_OFF, {"a": ("plain", "cc")}, frozenset({"a", "b"}))
    with caplog.at_level("WARNING", logger="dragoman.loop"):
        feed(board, 10, verdict="fail")
        feed(board, 4, variant="plain")
        feed(board, 4, variant="cc", verdict="fail")
        rows = board.rows()
    assert board.state == S.ShiftState() and board.events == () and seen == [] and caplog.records == []
    assert {row["state"] for row in rows} == {"active"}
    assert rows[0]["calls"] == 10 and rows[0]["score"] == 0.0  # scores are kept all the same


def test_with_shifting_off_a_late_signal_decides_nothing() -> None:
    board = Scoreboard(SHIFT_OFF, clock=Clock())
    passed = feed(board, 5)
    for rec in passed:
        board.late_signal(LateSignal(request_id=rec.request_id, kind=CLIENT_REFUSED, time=1.0))
    assert board.state.demoted == {} and board.rows()[0]["score"] == 0.0


def test_a_demotion_from_before_shifting_was_switched_off_is_reported_active() -> None:
    board = Scoreboard(SETTINGS, clock=Clock())
    feed(board, 5, verdict="fail")
    board.configure(ShiftSettings(enabled=False, window=10, min_calls=5), {})
    assert board.route_state(board.state, "a", TOOLS) == "active"
