"""GET /metrics, open to anyone who reaches the port by default, never names a key id or a developer: budgets a
wildcard (`key:*`, `developer:*`) or a virtual key's own `--budget` gives each caller are summed up under the
wildcard (the highest share of the cap any member spent, and how many are at or past it), while the scopes the
config names (`team:web`, `global`) keep their own spend and cap. It used to list `scope="key:team-web-alice"`
and `scope="developer:alice"` with their spend and caps to a caller with no key, though /api/budgets refuses
that caller with 401 (review 6, finding 5). Past MAX_LABEL_VALUES named scopes the rest are summed up under
"other" the same way, instead of each one overwriting the last one's value."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from dragoman.observe.metrics import MAX_LABEL_VALUES, Metrics
from tests.audit_helpers import ADMIN_KEY, ENV, headers, messages_body, parse_metrics, route, sample_value
from tests.gateway import Gateway, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.virtual_keys_helpers import create, wait_status

pytestmark = pytest.mark.timeout(60)

ALICE_KEY = "sk-gw-alice-metrics-51d0"
BOB_KEY = "sk-gw-bob-metrics-7e22"
ALICE = {"id": "web-alice-laptop", "key": ALICE_KEY, "developer": "alice", "team": "web"}
BOB = {"id": "web-bob-laptop", "key": BOB_KEY, "developer": "bob", "team": "web"}
# $10,000 / $20,000 per million tokens: the upstream's usage (10 in, 5 out) costs exactly $0.20 a request.
PRICE = {"input": 10_000.0, "cached_input": 10_000.0, "output": 20_000.0}
BUDGETS = [
    {"scope": "key:*", "limit": 100, "period": "month"},
    {"scope": "developer:*", "limit": 0.3, "period": "week"},  # alice's second call takes her past it
    {"scope": "team:web", "limit": 500, "period": "month"},
    {"scope": "global", "limit": 10, "period": "month"},
]


@dataclass
class Scraped:
    text: str  # GET /metrics, no key
    status: int
    budgets: list[dict]  # GET /api/budgets with the admin key: every per-caller scope the gateway counts
    carol_id: str  # a virtual key with a budget of its own


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    store = f"sqlite:///{tmp_path_factory.mktemp('metrics-budgets')}/audit.db"
    with ScriptedChatUpstream(lambda _: ChatReply(text="ok", usage=(10, 5, 0))) as upstream:
        text = yaml.safe_dump({
            "default_route": "priced", "auth": {"keys": [ALICE, BOB]}, "admin": {"keys": [ADMIN_KEY]},
            "audit": {"flush_interval": 0.05, "store": store}, "governance": {"budgets": BUDGETS},
            "routes": [route("priced", upstream.chat_url, pricing=PRICE)],
        }, sort_keys=False)
        with run_gateway(text, env={**ENV, "DRAGOMAN_AUDIT_STORE": ""}) as gateway:
            carol = create(store, "--developer", "carol", "--budget", "1/month")
            wait_status(gateway, carol["key"], 200, "carol's virtual key served")  # carol: $0.20 of her $1
            for key in (ALICE_KEY, ALICE_KEY, BOB_KEY):
                assert _call(gateway, key) == 200
            assert _call(gateway, ALICE_KEY) == 402  # developer:alice is past its cap: the aggregate counts it
            metrics = gateway.request("GET", "/metrics")
            budgets = gateway.request("GET", "/api/budgets", headers={"x-api-key": ADMIN_KEY}).json()["data"]
            yield Scraped(metrics.text, metrics.status, budgets, carol["id"])


def _call(gateway: Gateway, key: str) -> int:
    return gateway.request("POST", "/v1/messages", messages_body("priced"), headers(key)).status


def test_metrics_name_no_key_id_or_developer_a_wildcard_budget_counts(scraped: Scraped) -> None:
    assert scraped.status == 200  # metrics.auth defaults to none: Prometheus scrapes without a key
    per_caller = {row["scope"] for row in scraped.budgets} - {b["scope"] for b in BUDGETS}
    assert per_caller == {"key:web-alice-laptop", "key:web-bob-laptop", f"key:{scraped.carol_id}",
                          "developer:alice", "developer:bob", "developer:carol"}, scraped.budgets
    for name in ("web-alice-laptop", "web-bob-laptop", scraped.carol_id, "alice", "bob", "carol"):
        assert name not in scraped.text, f"{name!r} on /metrics"
    families = parse_metrics(scraped.text)
    scopes = {s.labels["scope"] for samples in families.values() for s in samples if "scope" in s.labels}
    assert scopes <= {"key:*", "developer:*", "team:web", "global", "key", "developer", "team"}, scopes


def test_a_wildcard_reads_its_highest_share_and_how_many_are_exhausted(scraped: Scraped) -> None:
    families = parse_metrics(scraped.text)

    def value(name: str, scope: str, period: str) -> float:
        return sample_value(families, name, scope=scope, period=period)

    # developer:* ($0.30/week): alice $0.40, bob and carol $0.20 each
    assert value("dragoman_budget_used_ratio", "developer:*", "week") == pytest.approx(0.4 / 0.3)
    assert value("dragoman_budget_exhausted", "developer:*", "week") == 1
    # key:*: the rule's $100/month for alice's and bob's keys, carol's own $1/month ($0.20 of it: the highest)
    assert value("dragoman_budget_used_ratio", "key:*", "month") == pytest.approx(0.2)
    assert value("dragoman_budget_exhausted", "key:*", "month") == 0
    for wildcard in ("key:*", "developer:*"):  # a cap or spend of one member would stand for none of the others
        assert not [s for s in families.get("dragoman_budget_spent_usd", []) if s.labels["scope"] == wildcard]


def test_a_scope_the_config_names_keeps_its_spend_and_cap(scraped: Scraped) -> None:
    families = parse_metrics(scraped.text)
    assert sample_value(families, "dragoman_budget_spent_usd", scope="team:web", period="month") == pytest.approx(0.6)
    assert sample_value(families, "dragoman_budget_limit_usd", scope="team:web", period="month") == 500
    assert sample_value(families, "dragoman_budget_spent_usd", scope="global", period="month") == pytest.approx(0.8)
    assert sample_value(families, "dragoman_budget_used_ratio", scope="global", period="month") == pytest.approx(0.08)
    assert sample_value(families, "dragoman_budget_exhausted", scope="global", period="month") == 0


def test_named_scopes_past_the_label_bound_are_summed_up_under_other() -> None:
    extra = 5
    names = [f"developer:dev{i:03d}" for i in range(MAX_LABEL_VALUES + extra)]
    configured = [(name, "month") for name in names]
    # dev200, the first past the bound, spent its whole cap; every other one a tenth
    rows = [{"scope": name, "period": "month", "limit_usd": 10.0, "spent_usd": 1.0} for name in names]
    rows[MAX_LABEL_VALUES]["spent_usd"] = 10.0
    metrics = Metrics()
    metrics.budgets(rows, configured)
    families = parse_metrics(metrics.render()[0].decode())
    assert sample_value(families, "dragoman_budget_used_ratio", scope="other", period="month") == 1.0
    assert sample_value(families, "dragoman_budget_exhausted", scope="other", period="month") == 1
    assert not [s for s in families["dragoman_budget_spent_usd"] if s.labels["scope"] == "other"]
    assert sample_value(families, "dragoman_budget_spent_usd", scope="developer:dev000", period="month") == 1.0
    spent_scopes = {s.labels["scope"] for s in families["dragoman_budget_spent_usd"]}
    assert len(spent_scopes) == MAX_LABEL_VALUES
