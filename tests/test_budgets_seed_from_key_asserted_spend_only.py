"""A budget counter that does not exist yet is seeded from the audit with exactly the spend its live counter would
have counted: requests whose key asserted that developer or team. A developer or team a client only claims in
`x-dragoman-developer` / `x-dragoman-team` attributes the request in reports, never charges a budget: neither live
nor when seeded. On SQLite and on a real PostgreSQL (tests/observe_pg.py)."""

from __future__ import annotations

import asyncio

import pytest

from dragoman import errors as E
from dragoman.config.governance import BudgetRule, GovernanceSettings
from dragoman.exchange.lifecycle import Exchange
from dragoman.govern.governor import Governor
from dragoman.govern.grant import Grant
from dragoman.observe import migrations
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, StoreError, open_store
from tests.observe_pg import store, store_url  # noqa: F401 (fixtures)

NOW = 2_143_665_600.0  # 2037-12-05T22:40:00Z; the day began at 2037-12-05T00:00:00Z
TODAY = 2_143_584_000.0
ANA = Grant(key_id="k-ana", developer="ana", team="platform")
MALLORY = Grant(key_id="k-shared")  # a key with no developer or team of its own
CLAIMS_ANA = [(b"x-dragoman-developer", b"ana"), (b"x-dragoman-team", b"platform")]
BUDGETS = (BudgetRule(scope="developer:*", limit=30.0, period="day"),
           BudgetRule(scope="team:platform", limit=30.0, period="day"))



def _spent(store: AuditStore, grant: Grant, cost: float, headers=(), n: int = 1) -> None:
    """A request of `grant`'s (with `headers`) that cost `cost`, in the store as the exchange records it."""
    exchange = Exchange(f"req_{n:024d}", list(headers))
    exchange.authenticated(grant)
    record = exchange.finish(200, None, None)  # type: ignore[arg-type]  # no span: the pricer is not asked
    record.time, record.cost_usd = TODAY + n, cost
    store.write([record])


def _budgets_after_restart(store: AuditStore, grant: Grant) -> tuple[str | None, dict[str, float]]:
    """A fresh Governor (no counters) admits `grant`: its refusal, if any, and every budget's seeded spend."""
    gov = Governor(GovernanceSettings(budgets=BUDGETS), lambda: store, clock=lambda: NOW)

    async def scenario() -> tuple[str | None, dict[str, float]]:
        refusal = None
        try:
            await gov.admit(grant, "gpt-5", 10, False)
        except E.BillingError as err:
            refusal = err.message
        rows = await gov.budgets()
        await gov.close()
        return refusal, {row["scope"]: row["spent_usd"] for row in rows}

    return asyncio.run(scenario())


def test_a_header_claimed_developers_spend_does_not_count_toward_that_developers_budget_when_seeded(store):
    _spent(store, MALLORY, 40.0, CLAIMS_ANA)
    refusal, spent = _budgets_after_restart(store, ANA)
    assert refusal is None
    assert spent == {"developer:ana": 0.0, "team:platform": 0.0}


def test_a_key_asserted_developers_spend_counts_toward_its_budgets_when_seeded(store):
    _spent(store, ANA, 12.5, n=1)
    _spent(store, ANA, 20.0, [(b"x-dragoman-developer", b"bob")], n=2)  # the key's identity wins over a header
    _spent(store, MALLORY, 40.0, CLAIMS_ANA, n=3)
    refusal, spent = _budgets_after_restart(store, ANA)
    assert refusal == ("budget developer:ana is exhausted: $32.50 spent of its $30.00 per day; "
                       "it resets at 2037-12-06T00:00:00Z")
    assert spent == {"developer:ana": 32.5, "team:platform": 32.5}


def test_costs_by_developer_still_attribute_by_identity_headers_included(store):
    _spent(store, ANA, 12.5, n=1)
    _spent(store, MALLORY, 40.0, CLAIMS_ANA, n=2)
    [ana] = store.query_costs("developer", TODAY)
    assert (ana["developer"], ana["requests"], ana["cost_usd"]) == ("ana", 2, 52.5)
    [team] = store.query_costs("team", TODAY)
    assert (team["team"], team["cost_usd"]) == ("platform", 52.5)
    [row] = store.query_requests({"key_id": "k-shared"})
    assert (row["developer"], row["budget_developer"], row["budget_team"]) == ("ana", None, None)


def test_records_from_before_the_budget_columns_count_toward_key_and_global_budgets_only(store_url):
    old = open_store(store_url, migrate=False)
    assert old.migrate(target=8) == 8
    ph = "?" if old.dialect == migrations.SQLITE else "%s"
    old.run(lambda conn: conn.execute(  # type: ignore[attr-defined]  # as schema 8 wrote it: no budget columns
        f"INSERT INTO requests (time, time_iso, request_id, key_id, developer, team, status, cost_usd)"
        f" VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph})",
        (TODAY + 1, "2037-12-05T00:00:01.000+00:00", "req_old", "k-ana", "ana", "platform", 200, 40.0),
    ))
    old.close()
    upgraded = open_store(store_url)
    try:
        gov = Governor(GovernanceSettings(budgets=BUDGETS), lambda: upgraded, clock=lambda: NOW)
        assert gov.audit_spend("developer:ana", TODAY, NOW) == 0.0
        assert gov.audit_spend("team:platform", TODAY, NOW) == 0.0
        assert gov.audit_spend("key:k-ana", TODAY, NOW) == 40.0
        assert gov.audit_spend("global", TODAY, NOW) == 40.0
    finally:
        upgraded.close()


def test_spend_is_summed_only_over_the_budget_columns(store):
    with pytest.raises(StoreError, match="spend by 'developer'"):
        store.query_spend("developer", "ana", TODAY, NOW)

