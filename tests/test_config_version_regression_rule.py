"""The rule that rolls a config version back, on injected numbers: enough calls on both sides, a failure rate at
least `min_increase` higher, and a one-sided two-proportion z-test at least `z`; never a rollback of a rollback,
once per version; the baseline read from the store when this process saw too few of the previous version."""

from __future__ import annotations

import math

import pytest

from dragoman.config.loop import RollbackSettings
from dragoman.loop.judge import JUDGE_CALL
from dragoman.loop.rollback import Tally, VersionScores, regression, z_score
from dragoman.loop.verdict import CLIENT_REFUSED, FAIL, PASS, LateSignal
from dragoman.observe.record import AuditRecord

DEFAULTS = RollbackSettings()


def test_z_score_matches_the_pooled_two_proportion_test() -> None:
    # 30/100 failed against 10/100: pooled 0.2, se = sqrt(0.2*0.8*(2/100)) = 0.05657, z = 0.2/0.05657 = 3.5355
    assert z_score(Tally(100, 70), Tally(100, 90)) == pytest.approx(0.2 / math.sqrt(0.2 * 0.8 * 0.02))
    assert z_score(Tally(50, 50), Tally(50, 50)) == 0.0  # nothing failed on either side: no difference
    assert z_score(Tally(0, 0), Tally(50, 50)) == 0.0


@pytest.mark.parametrize(("new", "old", "rolled"), [
    (Tally(50, 35), Tally(50, 50), True),  # 30% against 0%: +30 points, z = 4.1
    (Tally(49, 30), Tally(50, 50), False),  # one call short of min_calls
    (Tally(50, 20), Tally(49, 49), False),  # the previous version has one call too few
    (Tally(200, 152), Tally(200, 180), False),  # 24% against 10%: z = 3.7 but only +14 points
    (Tally(200, 138), Tally(200, 170), True),  # 31% against 15%: +16 points, z = 3.8
    (Tally(60, 48), Tally(60, 57), False),  # 20% against 5%: +15 points but z = 2.5 < 3
    (Tally(100, 80), Tally(100, 90), False),  # 20% against 10%: only +10 points
    (Tally(501, 0), Tally(100, 100), False),  # past watch_calls: no longer a new version
])
def test_the_rule_needs_calls_an_increase_and_significance(new: Tally, old: Tally, rolled: bool) -> None:
    assert (regression(new, old, DEFAULTS) is not None) is rolled


def test_the_reason_names_both_scores() -> None:
    why = regression(Tally(50, 35), Tally(50, 50), DEFAULTS)
    assert why is not None and "35/50 passed (30.0% failed)" in why and "50/50 passed (0.0% failed)" in why


def test_thresholds_are_settings() -> None:
    strict = RollbackSettings(min_calls=10, baseline_calls=10, min_increase=0.5, z=1.0)
    assert regression(Tally(10, 6), Tally(10, 10), strict) is None  # +40 points < 50
    assert regression(Tally(10, 4), Tally(10, 10), strict) is not None


def _record(version: str, verdict: str, **fields) -> AuditRecord:
    return AuditRecord(time=0.0, request_id="req_x", config_version=version, verdict=verdict, **fields)


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, bad: str, previous: str, why: str) -> None:
        self.calls.append((bad, previous, why))


SMALL = RollbackSettings(min_calls=10, baseline_calls=10, watch_calls=100)


def _feed(scores: VersionScores, version: str, passed: int, failed: int) -> None:
    for _ in range(passed):
        scores.verdict(_record(version, PASS))
    for _ in range(failed):
        scores.verdict(_record(version, FAIL))


def test_a_regressed_version_is_reported_once_with_the_previous_version() -> None:
    asked = _Recorder()
    scores = VersionScores(SMALL, asked)
    scores.live("aaa", None)
    _feed(scores, "aaa", 10, 0)
    scores.live("bbb", "aaa")
    _feed(scores, "bbb", 0, 9)
    assert asked.calls == []  # nine calls: not yet
    _feed(scores, "bbb", 0, 5)
    assert [(bad, previous) for bad, previous, _ in asked.calls] == [("bbb", "aaa")]


def test_a_rollback_is_never_rolled_back_automatically() -> None:
    asked = _Recorder()
    scores = VersionScores(SMALL, asked)
    scores.live("aaa", None)
    _feed(scores, "aaa", 10, 0)
    scores.live("bbb", "aaa", protected=True)
    _feed(scores, "bbb", 0, 20)
    assert asked.calls == []


def test_nothing_is_rolled_back_with_rollback_disabled_or_without_a_previous_version() -> None:
    asked = _Recorder()
    off = VersionScores(RollbackSettings(enabled=False, min_calls=10, baseline_calls=10), asked)
    off.live("aaa", None)
    _feed(off, "aaa", 10, 0)
    off.live("bbb", "aaa")
    _feed(off, "bbb", 0, 20)
    first = VersionScores(SMALL, asked)
    first.live("aaa", None)
    _feed(first, "aaa", 0, 20)
    assert asked.calls == []


def test_calls_of_an_older_version_finishing_late_count_for_it_not_for_the_live_one() -> None:
    asked = _Recorder()
    scores = VersionScores(SMALL, asked)
    scores.live("aaa", None)
    scores.live("bbb", "aaa")
    _feed(scores, "aaa", 10, 0)  # requests that started under aaa
    _feed(scores, "bbb", 10, 0)
    assert scores.tally("aaa") == Tally(10, 10) and scores.tally("bbb") == Tally(10, 10)
    assert asked.calls == []


def test_the_judges_own_calls_and_unassessed_calls_are_not_scored() -> None:
    scores = VersionScores(SMALL, _Recorder())
    scores.verdict(_record("aaa", FAIL, loop_events=[JUDGE_CALL]))
    scores.verdict(AuditRecord(time=0.0, request_id="r", config_version="aaa"))
    assert scores.tally("aaa") == Tally()


def _calls(scores: VersionScores, version: str, verdicts: list[str]) -> list[str]:
    """One record per verdict, each its own request id; the ids."""
    ids = [f"req_{version}_{i}" for i in range(len(verdicts))]
    scores.verdicts([AuditRecord(time=0.0, request_id=rid, config_version=version, verdict=v)
                     for rid, v in zip(ids, verdicts, strict=True)])
    return ids


def _refused(scores: VersionScores, request_id: str, version: str = "bbb") -> None:
    scores.late_signal(LateSignal(request_id=request_id, kind=CLIENT_REFUSED, time=0.0, config_version=version))


def _watching_bbb(asked: _Recorder) -> VersionScores:
    scores = VersionScores(SMALL, asked)
    scores.live("aaa", None)
    _feed(scores, "aaa", 10, 0)
    scores.live("bbb", "aaa")
    return scores


def test_a_client_refusal_learned_later_turns_a_pass_into_a_failure() -> None:
    asked = _Recorder()
    scores = _watching_bbb(asked)
    for request_id in _calls(scores, "bbb", [PASS] * 10):
        _refused(scores, request_id)
    assert scores.tally("bbb") == Tally(10, 0)
    assert [bad for bad, _, _ in asked.calls] == ["bbb"]


def test_a_refusal_of_a_call_that_failed_its_checks_already_takes_no_pass() -> None:
    # A schema_violation the client then refuses (InputValidationError) is one failed call, not two.
    asked = _Recorder()
    scores = _watching_bbb(asked)
    ids = _calls(scores, "bbb", [FAIL] * 2 + [PASS] * 18)
    for request_id in ids[:2]:
        _refused(scores, request_id)
    assert scores.tally("bbb") == Tally(20, 18) and asked.calls == []


def test_an_answer_with_many_refused_results_takes_one_pass_once() -> None:
    # k refused tool_results of one answer (or a retried next turn) are one call that failed, whatever k is.
    asked = _Recorder()
    scores = _watching_bbb(asked)
    ids = _calls(scores, "bbb", [PASS] * 20)
    for _ in range(200):
        _refused(scores, ids[0])
    assert scores.tally("bbb") == Tally(20, 19) and asked.calls == []


def test_a_refusal_of_a_call_this_process_did_not_count_takes_no_pass() -> None:
    # Another worker's call (joined through the store), or a request id nobody made: nothing of bbb's to take.
    asked = _Recorder()
    scores = _watching_bbb(asked)
    _calls(scores, "bbb", [PASS] * 20)
    for i in range(20):
        _refused(scores, f"req_elsewhere_{i}")
    assert scores.tally("bbb") == Tally(20, 20) and asked.calls == []


def test_a_version_live_before_this_process_continues_its_watch_from_the_stored_count() -> None:
    asked = _Recorder()
    scores = VersionScores(SMALL, asked, lambda version: Tally(50, 50))
    scores.live("bbb", "aaa", seen=Tally(SMALL.watch_calls + 1, SMALL.watch_calls))  # live for long: not new
    _feed(scores, "bbb", 0, 50)
    assert asked.calls == []
    fresh = VersionScores(SMALL, asked, lambda version: Tally(50, 50))
    fresh.live("bbb", "aaa", seen=Tally(5, 5))  # restarted five calls into its watch: still watched
    _feed(fresh, "bbb", 0, 10)
    assert [bad for bad, _, _ in asked.calls] == ["bbb"] and fresh.tally("bbb") == Tally(15, 5)


def test_the_baseline_comes_from_the_store_when_this_process_saw_too_few() -> None:
    asked = _Recorder()
    looked: list[str] = []

    def stored(version: str) -> Tally:
        looked.append(version)
        return Tally(40, 40)

    scores = VersionScores(SMALL, asked, stored)
    scores.live("bbb", "aaa")  # started on bbb: this process never served aaa
    _feed(scores, "bbb", 0, 10)
    assert looked == ["aaa"]
    assert [(bad, previous) for bad, previous, _ in asked.calls] == [("bbb", "aaa")]
