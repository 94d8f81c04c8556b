"""The rate-limit algorithm (GCRA, govern/limits.py): burst, exact retry times, no window edges, post-counted
output tokens, corrected input estimates, and the anthropic-ratelimit-* headers it yields."""

from __future__ import annotations

from datetime import datetime

from dragoman.govern.limits import (
    INPUT,
    OUTPUT,
    RPM,
    RateItem,
    gcra_admit,
    gcra_remaining,
    gcra_settle,
    ratelimit_headers,
    retry_headers,
)

W = 60.0


def _req(limit: int, cost: float = 1.0, dim: str = RPM) -> RateItem:
    return RateItem(f"rl:{dim}:developer:ana", "developer:ana", dim, limit, cost)


def _run(limit: int, times: list[float], cost: float = 1.0) -> list[bool]:
    tat = None
    admitted = []
    for now in times:
        new, wait = gcra_admit(tat, _req(limit, cost), W, now)
        admitted.append(wait == 0)
        if wait == 0:
            tat = new
    return admitted


def test_a_full_bucket_admits_a_whole_window_at_once_then_refuses():
    assert _run(3, [100.0, 100.0, 100.0, 100.0]) == [True, True, True, False]


def test_after_a_burst_one_request_is_admitted_per_emission_interval():
    # limit 3 per 60 s: one unit back every 20 s; the refusal says exactly when
    tat = None
    for _ in range(3):
        tat, _wait = gcra_admit(tat, _req(3), W, 100.0)
    _, wait = gcra_admit(tat, _req(3), W, 100.0)
    assert abs(wait - 20.0) < 1e-9
    assert gcra_admit(tat, _req(3), W, 119.999)[1] > 0
    assert gcra_admit(tat, _req(3), W, 120.0)[1] == 0


def test_no_window_edge_lets_twice_the_limit_through():
    # A fixed window would admit 3 at 59.9 s and 3 more at 60.1 s; the bucket admits 3 + what refilled (0.2 s: none).
    assert _run(3, [59.9, 59.9, 59.9, 60.1, 60.1, 60.1]) == [True, True, True, False, False, False]


def test_over_any_interval_admissions_never_exceed_the_burst_plus_the_refill():
    times = [i * 0.5 for i in range(600)]  # one attempt every half second for five minutes
    admitted = [t for t, ok in zip(times, _run(10, times)) if ok]
    for start in admitted:
        for length in (1.0, 10.0, 30.0, W, 2 * W):
            inside = [t for t in admitted if start <= t < start + length]
            assert len(inside) <= 10 + length * 10 / W + 1e-9  # burst L, then L per window
    sustained = [t for t in admitted if t >= W]
    assert len(sustained) == 40  # four windows after the first: exactly the limit per window


def test_a_bucket_left_alone_for_a_window_is_full_again():
    tat = None
    for _ in range(5):
        tat, _ = gcra_admit(tat, _req(5), W, 0.0)
    assert gcra_remaining(tat, 5, W, 0.0) == 0
    assert gcra_remaining(tat, 5, W, 30.0) == 2
    assert gcra_remaining(tat, 5, W, 60.0) == 5


def test_token_costs_use_the_units_asked_for():
    item = _req(1000, cost=600, dim=INPUT)
    tat, wait = gcra_admit(None, item, W, 0.0)
    assert wait == 0
    _, wait = gcra_admit(tat, item, W, 0.0)
    assert abs(wait - 12.0) < 1e-9  # 200 units still missing at 1000/60 s


def test_a_request_larger_than_the_limit_passes_only_on_a_full_bucket_and_leaves_a_debt():
    item = _req(1000, cost=3000, dim=INPUT)
    tat, wait = gcra_admit(None, item, W, 0.0)
    assert wait == 0 and tat == 180.0  # three windows of debt
    assert gcra_admit(tat, item, W, 100.0)[1] == 80.0
    assert gcra_admit(tat, item, W, 180.0)[1] == 0


def test_output_tokens_admit_while_under_and_are_charged_after_the_answer():
    item = _req(100, cost=0.0, dim=OUTPUT)
    tat, wait = gcra_admit(None, item, W, 0.0)
    assert wait == 0 and tat == 0.0  # nothing charged at admission
    tat = gcra_settle(tat, 100, 150.0, W, 0.0)  # the answer used 150 of 100: over until the debt is paid
    _, wait = gcra_admit(tat, item, W, 0.0)
    assert abs(wait - (90.0 - 60.0 + 0.6)) < 1e-9  # one unit of room again at 30.6 s


def test_input_estimate_corrected_by_the_real_count():
    item = _req(100, cost=80.0, dim=INPUT)
    tat, _ = gcra_admit(None, item, W, 0.0)
    assert gcra_remaining(tat, 100, W, 0.0) == 20
    tat = gcra_settle(tat, 100, 10.0 - 80.0, W, 0.0)  # it really used 10
    assert gcra_remaining(tat, 100, W, 0.0) == 90


def test_a_refund_never_fills_past_a_full_bucket():
    assert gcra_settle(None, 100, -500.0, W, 50.0) == 50.0
    assert gcra_remaining(gcra_settle(None, 100, -500.0, W, 50.0), 100, W, 50.0) == 100


def test_headers_name_the_most_restrictive_scope_per_dimension_in_rfc3339():
    now = 1_780_000_000.0
    rates = [
        RateItem("a", "key:k1", RPM, 100, 1.0),
        RateItem("b", "team:platform", RPM, 10, 1.0),
        RateItem("c", "key:k1", INPUT, 1000, 100.0),
        RateItem("d", "key:k1", OUTPUT, 500, 0.0),
    ]
    tats = [now + 0.6, now + 12.0, now + 6.0, now + 6.0]  # team:platform has 8 of 10 left; output 450 of 500
    h = ratelimit_headers(rates, tats, W, now)
    assert h["anthropic-ratelimit-requests-limit"] == "10"
    assert h["anthropic-ratelimit-requests-remaining"] == "8"
    assert datetime.fromisoformat(h["anthropic-ratelimit-requests-reset"].replace("Z", "+00:00")).timestamp() == now + 12
    assert (h["anthropic-ratelimit-input-tokens-limit"], h["anthropic-ratelimit-input-tokens-remaining"]) == ("1000", "900")
    assert (h["anthropic-ratelimit-output-tokens-limit"], h["anthropic-ratelimit-output-tokens-remaining"]) == ("500", "450")
    assert (h["anthropic-ratelimit-tokens-limit"], h["anthropic-ratelimit-tokens-remaining"]) == ("500", "450")


def test_retry_after_rounds_up_and_retry_after_ms_is_precise():
    assert retry_headers(0.25) == {"retry-after": "1", "retry-after-ms": "250"}
    assert retry_headers(20.0001) == {"retry-after": "21", "retry-after-ms": "20001"}
