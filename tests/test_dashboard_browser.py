"""The dashboard in a real browser (Debian's chromium through Playwright) against a real gateway process with
seeded audit records and a scripted upstream: sign in, every page renders the seeded data, the live feed shows a
request made during the test, the costs chart's numbers equal `dragoman costs`, and no page breaks its CSP.

Also: a key created in the UI serves a real request (and one with a budget has it), a viewer sees no admin action, a
rollback from the UI changes the live config; a broken stream shows as an error on every page, and a request the
client cancelled as neither an error nor a success; failure-cluster examples open their request; a late page load
never replaces the page navigated to next (nor leaves its feed open); charts read UTC in any time zone; the live
feed sends to sign-in once refused; the Requests filter survives a visit to a request, and the Overview's period a
reload; a cut failure-cluster report says so; a rotated key shows as retiring, not revoked. No page logs a console
error. Screenshots: test-artifacts/screenshots/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import open_store
from tests.waiting import wait_for
from tests.audit_helpers import headers, messages_body
from tests.browser import chromium, screenshot
from tests.dashboard_gateway import ADMIN_KEY, ROUTE, USER_KEY, DashboardEnv, run_dashboard_gateway

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("overview", "costs", "requests", "routes", "config", "keys")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardEnv]:
    with run_dashboard_gateway(tmp_path_factory.mktemp("dash")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as context:
        yield context


def watch_console(tab: Any, allowed: str | None = None) -> list[str]:
    """The script errors and console errors `tab` logs (CSP violations, failed loads such as a 404 favicon), but
    for those containing `allowed`."""
    problems: list[str] = []
    tab.on("pageerror", lambda err: problems.append(f"script error: {err}"))
    tab.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text}")
           if (msg.type == "error" or "Content Security Policy" in msg.text) and not (allowed and allowed in msg.text)
           else None)
    return problems


@pytest.fixture
def page(browser: Any, env: DashboardEnv) -> Iterator[Any]:
    """A signed-in page; fails the test on any script error, console error or CSP violation it logs."""
    browser.clear_cookies()
    tab = browser.new_page()
    problems = watch_console(tab)
    sign_in(tab, env)
    yield tab
    tab.close()
    assert problems == []


def sign_in(tab: Any, env: DashboardEnv, key: str = ADMIN_KEY) -> None:
    tab.goto(env.gateway.base_url + "/ui")
    tab.wait_for_url("**/ui/login**")
    tab.fill("#key", key)
    tab.click("#sign-in")
    tab.wait_for_selector("main[data-page=overview]")


def open_page(tab: Any, env: DashboardEnv, route: str) -> None:
    name = route.split("/")[0]
    tab.goto(f"{env.gateway.base_url}/ui/#/{route}")
    tab.wait_for_selector(f"main[data-page={name}]")


def api_status(env: DashboardEnv, path: str) -> int:
    return env.gateway.request("GET", path, None, {"x-api-key": ADMIN_KEY}).status


def wait_until(condition: Any, what: str, timeout: float = 15.0) -> None:
    """Until `condition` holds: the hot reload happens in the gateway's own time (tests/waiting.py)."""
    wait_for(condition, timeout, what)


def require(env: DashboardEnv, path: str) -> None:
    """The endpoint a page needs answers (a 404 here is a regression, never a reason to skip)."""
    assert api_status(env, path) != 404, f"{path} answers 404"


# ---- sign-in -----------------------------------------------------------------------------------------------


def test_without_a_session_every_page_sends_to_sign_in(browser: Any, env: DashboardEnv) -> None:
    browser.clear_cookies()
    tab = browser.new_page()
    try:
        tab.goto(env.gateway.base_url + "/ui/#/costs")
        tab.wait_for_url("**/ui/login**")
        tab.fill("#key", "not-a-key")
        tab.click("#sign-in")
        tab.wait_for_selector("#failed", state="visible")
        assert "/ui/login?failed=1" in tab.url and ADMIN_KEY not in tab.url
        screenshot(tab, "sign-in-failed")
    finally:
        tab.close()


def test_both_pages_declare_their_icon_so_the_browser_asks_for_no_favicon(browser: Any, env: DashboardEnv) -> None:
    """Without one, chromium asks for /favicon.ico after every load: a 404 in the console of every page. The icon
    is a data: URL (the CSP's img-src allows data:), so nothing is fetched."""
    browser.clear_cookies()
    tab = browser.new_page()
    problems = watch_console(tab)
    try:
        tab.goto(env.gateway.base_url + "/ui/login")
        assert tab.get_attribute("link[rel=icon]", "href") == "data:,"
        sign_in(tab, env)
        assert tab.get_attribute("link[rel=icon]", "href") == "data:,"
        assert problems == []
    finally:
        tab.close()


def test_signing_out_ends_the_session(page: Any, env: DashboardEnv) -> None:
    page.click("#logout")
    page.wait_for_url("**/ui/login**")
    page.goto(env.gateway.base_url + "/ui/")
    page.wait_for_url("**/ui/login**")


# ---- pages ---------------------------------------------------------------------------------------------------


def test_every_page_renders_the_seeded_records(page: Any, env: DashboardEnv) -> None:
    assert int(page.text_content("#tile-requests .value").replace(",", "")) >= 30
    page.wait_for_selector("#chart-requests canvas")
    page.click("#chart-requests .numbers-toggle")
    assert page.locator("#chart-requests-numbers tbody tr").count() >= 24
    screenshot(page, "overview")

    open_page(page, env, "costs")
    page.wait_for_selector("#costs-chart canvas")
    assert set(page.locator("#costs-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.key)")) >= {"ana", "bo", "cy"}
    assert page.get_attribute("#costs-csv", "href") == "/api/costs.csv?by=developer&since=7d"
    screenshot(page, "costs")

    open_page(page, env, "requests")
    page.wait_for_selector("#requests-table tr[data-key=req_seed0006]")
    screenshot(page, "requests")
    page.click("#requests-table tr[data-key=req_seed0006]")
    page.wait_for_selector("main[data-page=request] [data-field=verdict_detail]")
    assert page.text_content("[data-field=verdict_detail]") == "tool 'Edti' is not in the request's tools"
    assert page.text_content("[data-field=developer]") == "ana"
    assert page.locator("#candidates-table tbody tr").count() == 1
    screenshot(page, "request-detail")

    open_page(page, env, "routes")
    assert set(page.locator("#routes-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.key)")) == {"main", "backup"}
    assert "closed" in page.text_content("#routes-table tr[data-key=main]")
    screenshot(page, "routes")

    for name in ("config", "keys"):
        open_page(page, env, name)
        screenshot(page, name)


def test_the_overview_is_readable_on_a_phone(browser: Any, env: DashboardEnv) -> None:
    browser.clear_cookies()
    tab = browser.new_page()
    tab.set_viewport_size({"width": 390, "height": 844})
    try:
        sign_in(tab, env)
        tab.wait_for_selector("#chart-requests canvas")
        overflow = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0  # nothing wider than the phone's screen: tables scroll inside their panels
        screenshot(tab, "overview-phone")
    finally:
        tab.close()


def test_the_live_feed_shows_a_request_made_during_the_test(page: Any, env: DashboardEnv) -> None:
    page.wait_for_selector("#feed-waiting", state="visible")
    answer = env.gateway.request("POST", "/v1/messages", messages_body("main", "live"), headers(USER_KEY))
    assert answer.status == 200
    row = page.wait_for_selector(f"#feed tr[data-request-id={answer.headers['request-id']}]")
    assert "dee" in row.text_content() and "live" in row.text_content()
    screenshot(page, "overview-live-feed")
    row.click()
    page.wait_for_selector("main[data-page=request] [data-field=request_id]")
    assert page.text_content("[data-field=request_id]") == answer.headers["request-id"]


def test_the_costs_chart_numbers_equal_dragoman_costs(page: Any, env: DashboardEnv) -> None:
    cli = subprocess.run([sys.executable, "-m", "dragoman", "costs", "--by", "repo", "--since", "30d", "--format", "json",
                          "--store", env.store], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    expected = {row["repo"]: row["cost_usd"] for row in json.loads(cli.stdout)}
    open_page(page, env, "costs/repo/30d")
    page.wait_for_selector("#costs-chart canvas")
    page.click("#costs-chart .numbers-toggle")
    cells = page.locator("#costs-chart-numbers tbody tr").evaluate_all(
        "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])")
    assert {group: float(value) for group, value in cells} == expected


# ---- keys, roles and rollback --------------------------------------


def test_a_key_created_in_the_ui_works_for_a_real_request(page: Any, env: DashboardEnv) -> None:
    require(env, "/api/keys")
    open_page(page, env, "keys")
    page.fill("#create-key input[name=developer]", "ui-made")
    page.click("#create-key button[type=submit]")
    key = page.wait_for_selector("#new-key-value").text_content()
    answer = env.gateway.request("POST", "/v1/messages", messages_body("main", "from a new key"), headers(key))
    assert answer.status == 200
    screenshot(page, "keys-created")


def test_rollback_from_the_ui_changes_the_live_config(page: Any, env: DashboardEnv) -> None:
    require(env, "/api/versions")
    first = env.gateway.request("GET", "/api/versions", None, {"x-api-key": ADMIN_KEY}).json()["live"]
    config_file = env.gateway.stderr_path.parent / "dragoman.yaml"
    config_file.write_text(config_file.read_text() + "# a second version, applied by hot reload\nserver:\n  max_body_bytes: 30000000\n")
    wait_until(lambda: env.gateway.request("GET", "/api/versions", None, {"x-api-key": ADMIN_KEY}).json()["live"] != first,
               "the edited config to become the live version")
    older = [first]
    open_page(page, env, "config")
    page.click(f"button.rollback[data-version='{older[0]}']")
    page.click("#rollback-confirm")
    from playwright.sync_api import expect  # here: tests/browser.py skips cleanly without playwright

    # Waited for through the DOM, not a page-side function: the page's CSP forbids evaluating strings.
    expect(page.locator("#live-version")).to_have_text(older[0])
    live = env.gateway.request("GET", "/api/versions", None, {"x-api-key": ADMIN_KEY}).json()["live"]
    assert live == older[0]


def test_a_viewer_cannot_reach_admin_actions(browser: Any, env: DashboardEnv) -> None:
    require(env, "/api/keys")
    created = env.gateway.request("POST", "/api/keys", {"developer": "watcher", "role": "viewer"}, {"x-api-key": ADMIN_KEY})
    assert created.status in (200, 201), created.text
    browser.clear_cookies()
    tab = browser.new_page()
    try:
        sign_in(tab, env, created.json()["key"])
        assert not tab.is_visible("#nav a[href='#/keys']")
        open_page(tab, env, "config")
        assert tab.locator("button.rollback").count() == 0
        status = tab.evaluate("""async () => {
            const s = await (await fetch('/ui/session')).json();
            const r = await fetch('/api/rollback', {method: 'POST', headers: {'content-type': 'application/json',
              'x-csrf-token': s.csrf}, body: '{"version": null}'});
            return r.status; }""")
        assert status == 403
    finally:
        tab.close()


def test_a_key_created_with_a_budget_in_the_ui_has_that_budget(page: Any, env: DashboardEnv) -> None:
    require(env, "/api/keys")
    open_page(page, env, "keys")
    assert page.get_attribute("#create-key input[name=budget]", "placeholder") == "50/month"
    page.fill("#create-key input[name=developer]", "budgeted")
    page.fill("#create-key input[name=budget]", "50/month")
    page.click("#create-key button[type=submit]")
    page.wait_for_selector("#new-key-value")
    keys = env.gateway.request("GET", "/api/keys", None, {"x-api-key": ADMIN_KEY}).json()["data"]
    assert [(k["budget"]["limit_usd"], k["budget"]["period"]) for k in keys if k["developer"] == "budgeted"] == [(50.0, "month")]


# ---- what the pages show ----------------------------------------------------------------------------------


def _tile(tab: Any, name: str) -> int:
    return int(tab.text_content(f"#tile-{name} .value").replace(",", ""))


def _route_errors(tab: Any, env: DashboardEnv) -> int:
    open_page(tab, env, "routes")
    return int(tab.text_content(f"#routes-table tr[data-key={ROUTE}] td[data-col=errors]").replace(",", ""))


def _in_the_feed(tab: Any, env: DashboardEnv, record: AuditRecord) -> Any:
    """`record` written to the gateway's audit store (as its writer would) while the Overview's live feed is open:
    its row in the feed."""
    open_page(tab, env, "overview")
    tab.wait_for_selector("#feed-waiting", state="visible")
    store = open_store(env.store)
    try:
        store.write([record])
    finally:
        store.close()
    return tab.wait_for_selector(f"#feed tr[data-request-id={record.request_id}]")


def test_a_stream_that_broke_mid_way_shows_as_an_error_on_every_page(page: Any, env: DashboardEnv) -> None:
    """Recorded 200 with error_type stream_error: the client's answer broke after its first byte."""
    errors_before, route_errors_before = _tile(page, "errors"), _route_errors(page, env)
    row = _in_the_feed(page, env, AuditRecord(time=time.time(), request_id="req_broken_stream", developer="ana",
                                              repo="shop", route=ROUTE, status=200, error_type="stream_error",
                                              stream=True))
    assert row.query_selector("[data-col=status] .status-bad") is not None
    assert row.query_selector("[data-col=error_type]").text_content() == "stream_error"

    assert _route_errors(page, env) == route_errors_before + 1
    open_page(page, env, "overview")
    assert _tile(page, "errors") == errors_before + 1
    open_page(page, env, "requests/status%3Derror")
    listed = page.wait_for_selector("#requests-table tr[data-key=req_broken_stream]")
    assert listed.query_selector("[data-col=status] .status-bad") is not None
    assert listed.query_selector("[data-col=error_type]").text_content() == "stream_error"
    screenshot(page, "requests-errors")


def _route_cancelled(tab: Any, env: DashboardEnv) -> int:
    open_page(tab, env, "routes")
    return int(tab.text_content(f"#routes-table tr[data-key={ROUTE}] td[data-col=cancelled]").replace(",", ""))


def test_a_request_the_client_cancelled_is_counted_apart_from_the_errors(page: Any, env: DashboardEnv) -> None:
    """Recorded 499 client_disconnected (Esc in Claude Code): no error of the gateway's or its upstreams', nor a
    success; its own count, its own filter, and marked apart from both in the lists and the detail."""
    open_page(page, env, "overview")
    errors_before, cancelled_before = _tile(page, "errors"), _tile(page, "cancelled")
    route_errors_before, route_cancelled_before = _route_errors(page, env), _route_cancelled(page, env)
    row = _in_the_feed(page, env, AuditRecord(time=time.time(), request_id="req_cancelled", developer="ana",
                                              repo="shop", route=ROUTE, status=499, error_type="client_disconnected",
                                              stream=True))
    assert row.query_selector("[data-col=status] .status-cancelled") is not None
    assert row.query_selector("[data-col=status] .status-bad") is None

    assert (_route_errors(page, env), _route_cancelled(page, env)) == (route_errors_before, route_cancelled_before + 1)
    open_page(page, env, "overview")
    assert (_tile(page, "errors"), _tile(page, "cancelled")) == (errors_before, cancelled_before + 1)
    open_page(page, env, "requests/status%3Dcancelled")
    listed = page.wait_for_selector("#requests-table tr[data-key=req_cancelled]")
    assert listed.query_selector("[data-col=status] .status-cancelled") is not None
    assert "cancelled" in listed.query_selector("[data-col=status]").text_content()
    screenshot(page, "requests-cancelled")
    listed.click()
    page.wait_for_selector("main[data-page=request] [data-field=status] .status-cancelled")
    open_page(page, env, "requests/status%3Derror")
    assert page.query_selector("#requests-table tr[data-key=req_cancelled]") is None


def test_a_failure_cluster_example_opens_its_request(page: Any, env: DashboardEnv) -> None:
    require(env, "/api/clusters")
    open_page(page, env, "routes")
    link = page.wait_for_selector("#clusters-table a[href^='#/request/']")
    request_id = link.text_content()
    link.click()
    page.wait_for_selector("main[data-page=request] [data-field=request_id]")
    assert page.text_content("[data-field=request_id]") == request_id


def test_back_to_the_list_from_a_request_keeps_the_requests_filter(page: Any, env: DashboardEnv) -> None:
    open_page(page, env, "requests/developer%3Dbo")
    page.wait_for_selector("#requests-table tbody tr")
    filtered = page.locator("#requests-table tbody tr").count()
    page.click("#requests-table tbody tr >> nth=0")
    page.wait_for_selector("main[data-page=request] [data-field=request_id]")
    page.click("#back-to-requests")
    page.wait_for_selector("main[data-page=requests] #requests-table")
    assert page.url.endswith("#/requests/developer%3Dbo")
    assert page.input_value("#requests-filter input[name=developer]") == "bo"
    developers = page.locator("#requests-table td[data-col=developer]").all_text_contents()
    assert len(developers) == filtered and set(developers) == {"bo"}


def test_a_page_that_loads_late_never_replaces_the_page_navigated_to_next(page: Any, env: DashboardEnv) -> None:
    """Overview's roll-up held in the browser (as a slow store would hold it) while the user goes on to Costs: the
    late answer is dropped, Costs stays, and no live feed is opened for the page that was left."""
    open_page(page, env, "costs")
    feeds: list[str] = []
    page.on("request", lambda request: feeds.append(request.url) if "/api/feed" in request.url else None)
    held: list[Any] = []
    page.route("**/api/stats**", lambda route: held.append(route))
    with page.expect_request("**/api/stats**"):
        page.click("#nav a[href='#/overview']")
    page.click("#nav a[href='#/costs']")
    page.wait_for_selector("main[data-page=costs] #costs-table")
    assert len(held) == 1  # the overview's roll-up is still unanswered
    held[0].continue_()
    page.unroute("**/api/stats**")
    # Either the late render was dropped (the fix) or it took over the page (the defect): wait for whichever.
    page.wait_for_selector("body[data-dropped-renders='1'], main[data-page=overview]")
    assert page.get_attribute("main", "data-page") == "costs" and page.text_content("main h1") == "Costs"
    assert page.url.endswith("#/costs") and page.text_content("#nav a.active") == "Costs"
    assert feeds == []


def test_the_charts_read_utc_in_any_time_zone(browser: Any, env: DashboardEnv) -> None:
    from playwright.sync_api import expect  # here: tests/browser.py skips cleanly without playwright

    browser.clear_cookies()
    tab = browser.new_page()
    # UTC+5:30, set before the page loads: local time would put the chart 5½ hours off its numbers table.
    browser.new_cdp_session(tab).send("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Kolkata"})
    problems = watch_console(tab)
    try:
        sign_in(tab, env)
        assert tab.evaluate("new Date().getTimezoneOffset()") == -330
        tab.wait_for_selector("#chart-requests canvas")
        tab.click("#chart-requests .numbers-toggle")
        last = tab.locator("#chart-requests-numbers tbody tr").last.locator("td").first.text_content()
        when = datetime.strptime(last, "%Y-%m-%d %H:%M:%S")
        expected = f"{when:%Y-%m-%d} {when.hour % 12 or 12}:{when:%M}{'am' if when.hour < 12 else 'pm'}"
        plot = tab.locator("#chart-requests .u-over").bounding_box()
        tab.mouse.move(plot["x"] + plot["width"] - 2, plot["y"] + plot["height"] / 2)  # the last bucket
        expect(tab.locator("#chart-requests .u-legend .u-series").first).to_have_text("time (UTC)" + expected)
        assert problems == []
    finally:
        tab.close()


def test_the_live_feed_sends_to_sign_in_once_the_gateway_refuses_it(browser: Any, env: DashboardEnv) -> None:
    """A wall screen's session whose key is revoked: the feed ends, its reconnect gets a 401, and the page goes to
    sign-in instead of looking live while it is dead."""
    require(env, "/api/keys")
    made = env.gateway.request("POST", "/api/keys", {"developer": "wall-screen", "role": "viewer"}, {"x-api-key": ADMIN_KEY})
    assert made.status == 200, made.text
    browser.clear_cookies()
    tab = browser.new_page()
    problems = watch_console(tab, allowed="401")  # the refused reconnect and session check are logged as such
    try:
        sign_in(tab, env, made.json()["key"])
        tab.wait_for_selector("#feed-waiting", state="visible")
        revoked = env.gateway.request("POST", f"/api/keys/{made.json()['id']}/revoke", {}, {"x-api-key": ADMIN_KEY})
        assert revoked.status == 200, revoked.text
        tab.wait_for_url("**/ui/login**", timeout=30_000)
        assert problems == []
    finally:
        tab.close()


def test_a_cut_failure_cluster_report_says_so_and_from_when(page: Any, env: DashboardEnv) -> None:
    """The API cuts a report past its read limit; the page's request asks for a limit of 2 here (the seeds hold
    more failing records than that), so a real cut report reaches the page without 200,000 records."""
    require(env, "/api/clusters")
    cut = env.gateway.request("GET", "/api/clusters?since=24h&limit=2", None, {"x-api-key": ADMIN_KEY}).json()
    assert cut["truncated"] is True
    page.route("**/api/clusters?since=24h", lambda route: route.continue_(url=route.request.url + "&limit=2"))
    open_page(page, env, "routes")
    notice = page.wait_for_selector("#clusters-truncated").text_content()
    since = datetime.fromtimestamp(cut["covered_since"], tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    assert since in notice and "newest" in notice
    page.unroute("**/api/clusters?since=24h")
    open_page(page, env, "overview")
    open_page(page, env, "routes")
    page.wait_for_selector("#clusters-table")
    assert page.query_selector("#clusters-truncated") is None


def test_the_overview_period_is_kept_in_the_address(page: Any, env: DashboardEnv) -> None:
    page.select_option("#overview-period", "7d")
    page.wait_for_url("**/ui/#/overview/7d")
    with page.expect_request("**/api/stats?since=7d*"):
        page.reload()
    page.wait_for_selector("main[data-page=overview]")
    assert page.input_value("#overview-period") == "7d"
    open_page(page, env, "overview/30d")
    assert page.input_value("#overview-period") == "30d"


def test_a_rotated_key_shows_as_retiring_until_its_grace_ends(page: Any, env: DashboardEnv) -> None:
    """Rotation leaves the old key working for its grace period (expires_at): it is not revoked."""
    require(env, "/api/keys")
    admin = {"x-api-key": ADMIN_KEY}
    created = env.gateway.request("POST", "/api/keys", json.dumps({"developer": "rotating"}), admin).json()
    rotated = env.gateway.request("POST", f"/api/keys/{created['id']}/rotate", "{}", admin).json()
    old = next(k for k in env.gateway.request("GET", "/api/keys", None, admin).json()["data"] if k["id"] == created["id"])
    assert env.gateway.request("POST", "/v1/messages", messages_body("main", "still works"), headers(created["key"])).status == 200
    open_page(page, env, "keys")
    row = page.wait_for_selector(f"#keys-table tr[data-key={created['id']}]")
    until = datetime.fromtimestamp(old["expires_at"], tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    assert row.query_selector("[data-col=status]").text_content() == f"retiring at {until} (rotated to {rotated['id']})"
    assert "revoked" not in row.text_content()
    assert row.query_selector("button.revoke") is not None and row.query_selector("button.rotate") is None
    new_row = page.wait_for_selector(f"#keys-table tr[data-key={rotated['id']}]")
    assert new_row.query_selector("[data-col=status]").text_content() == "active"
