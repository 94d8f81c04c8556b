"""Malformed input to the dashboard and the admin API is the client's error, answered as such, never a 500 with a
traceback in the gateway's log:

- a session cookie holding a non-ASCII byte is no session (hmac.compare_digest raised TypeError comparing it);
- a JSON sign-in nested deeper than the decoder follows is a 400, as any unreadable sign-in body (it raised
  RecursionError), and so is a key setting of 400 digits (read as inf, then int(inf) raised OverflowError);
- /api/stats' bucket and every report's times are finite and bounded, refused with a 400 naming the parameter
  (`bucket=1` followed by 400 zeros and `d` was inf seconds, and `since - since % inf` put nan into
  math.ceil; a time of 1e300 seconds passed every check)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dashboard_gateway import ADMIN_KEY, DashboardEnv, raw_http, run_dashboard_gateway

HUGE = "1" + "0" * 400  # float() reads it as inf


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardEnv]:
    with run_dashboard_gateway(tmp_path_factory.mktemp("dash")) as running:
        yield running


@pytest.fixture(scope="module")
def viewer_key(env: DashboardEnv) -> str:
    made = env.gateway.request("POST", "/api/keys", {"developer": "vee", "role": "viewer"}, {"x-api-key": ADMIN_KEY})
    assert made.status == 200, made.text
    return made.json()["key"]


def _log_end(env: DashboardEnv) -> int:
    return len(env.gateway.stderr_text())


def _assert_no_traceback(env: DashboardEnv, since: int) -> None:
    """Nothing the gateway logged after `since` (a `_log_end`) is a traceback: it logs one before it answers 500."""
    log = env.gateway.stderr_text()[since:]
    assert "Traceback" not in log, log[-3000:]


def _short(query: str) -> str:
    return query if len(query) <= 40 else query.replace(HUGE, "1e400")


def _assert_refused(answer, status: int, named: str) -> None:
    assert answer.status == status, answer.text
    error = answer.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error", error
    assert named in error["error"]["message"], error


# ---- the session cookie ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cookie", ["a.\xe9", "\xe9.a", "\xe9"], ids=["in-mac", "in-payload", "alone"])
@pytest.mark.parametrize("path, status", [("/ui/login", 200), ("/ui/", 303), ("/ui/session", 401),
                                          ("/api/requests", 401), ("/api/stats", 401)])
def test_a_cookie_with_a_non_ascii_byte_is_no_session(env: DashboardEnv, cookie: str, path: str, status: int) -> None:
    # http.client sends a str header value as latin-1: "\xe9" reaches the gateway as the raw byte 0xE9
    mark = _log_end(env)
    answer = env.get(path, cookie)
    assert answer.status == status, answer.text
    if status == 303:
        assert answer.headers["location"] == "/ui/login"
    _assert_no_traceback(env, mark)


# ---- sign-in bodies -------------------------------------------------------------------------------------------


def test_a_json_sign_in_nested_too_deep_is_a_400(env: DashboardEnv) -> None:
    body = b"[" * 2040 + b"]" * 2040  # under the sign-in body's 4096 bytes
    mark = _log_end(env)
    answer = raw_http(env.gateway, "POST", "/ui/login", body, {"content-type": "application/json"})
    _assert_refused(answer, 400, "levels deep")
    assert "set-cookie" not in answer.headers
    _assert_no_traceback(env, mark)


def test_an_unreadable_json_sign_in_is_a_400(env: DashboardEnv) -> None:
    answer = raw_http(env.gateway, "POST", "/ui/login", b'{"key": ', {"content-type": "application/json"})
    _assert_refused(answer, 400, "not valid JSON")
    assert "set-cookie" not in answer.headers


def test_a_readable_json_sign_in_without_a_key_is_refused_like_a_wrong_key(env: DashboardEnv) -> None:
    for body in (b"[]", b'{"key": 5}', b'{"other": "x"}'):
        answer = raw_http(env.gateway, "POST", "/ui/login", body, {"content-type": "application/json"})
        assert answer.status == 303 and answer.headers["location"] == "/ui/login?failed=1", body


@pytest.mark.parametrize("field", ["rpm", "tpm", "output_tpm", "concurrent"])
def test_a_key_limit_too_large_for_a_float_is_a_400_naming_it(env: DashboardEnv, field: str) -> None:
    mark = _log_end(env)
    answer = env.gateway.request("POST", "/api/keys", {"developer": "x", field: HUGE}, {"x-api-key": ADMIN_KEY})
    _assert_refused(answer, 400, field)
    _assert_no_traceback(env, mark)


# ---- durations and times in queries ---------------------------------------------------------------------------


STATS_REFUSED = [
    (f"since=-5&bucket={HUGE}d", "bucket"),  # the review's case: inf seconds a bucket
    (f"bucket={HUGE}s", "bucket"),
    ("bucket=1" + "0" * 20 + "w", "bucket"),  # finite, but longer than any time range
    ("bucket=-1h", "bucket"),
    ("bucket=0h", "bucket"),
    ("bucket=inf", "bucket"),
    ("bucket=-inf", "bucket"),
    ("bucket=nan", "bucket"),
    ("bucket=1", "bucket"),
    ("since=nan", "since"),
    ("since=inf", "since"),
    (f"since={HUGE}", "since"),
    (f"since={HUGE}d", "since"),
    ("since=-1e300&until=-9e299&bucket=1h", "since"),  # finite, before year 1
    ("since=1000000w", "since"),  # 19,000 years ago
    ("until=1e300", "until"),
    ("until=-inf", "until"),
    ("until=0", "until"),  # 1970: before the default since, not "now"
]


@pytest.mark.parametrize("query, named", STATS_REFUSED, ids=[_short(q) for q, _ in STATS_REFUSED])
def test_stats_refuse_a_duration_or_time_out_of_bounds(env: DashboardEnv, viewer_key: str, query: str,
                                                       named: str) -> None:
    mark = _log_end(env)
    answer = env.get(f"/api/stats?{query}", **{"x-api-key": viewer_key})
    _assert_refused(answer, 400, named)
    _assert_no_traceback(env, mark)


@pytest.mark.parametrize("path", ["/api/requests", "/api/costs", "/api/costs.csv"])
@pytest.mark.parametrize("query, named", [("since=nan", "since"), (f"since={HUGE}d", "since"),
                                          ("until=1e300", "until"), ("since=-1e300", "since")],
                         ids=["nan", "1e400d", "until-1e300", "-1e300"])
def test_every_report_refuses_a_time_out_of_bounds(env: DashboardEnv, viewer_key: str, path: str, query: str,
                                                   named: str) -> None:
    answer = env.get(f"{path}?{query}", **{"x-api-key": viewer_key})
    _assert_refused(answer, 400, named)


@pytest.mark.parametrize("query", ["since=100000d&bucket=100w", "since=0&until=4102444800&bucket=5000w",
                                   "since=24h&bucket=1h"])
def test_stats_answer_long_ranges_within_bounds(env: DashboardEnv, viewer_key: str, query: str) -> None:
    answer = env.get(f"/api/stats?{query}", **{"x-api-key": viewer_key})
    assert answer.status == 200, answer.text
    assert answer.json()["data"]
