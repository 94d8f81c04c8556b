"""The optional judge over real sockets: with `loop.judge` naming a route, sampled calls are sent to that route's
scripted upstream after the client has its answer; its FAIL lands in the judged call's `judge` column; the
calls-per-hour budget holds exactly (no more judge calls than allowed, the rest counted as dropped); the judge's
own calls are audited as such and never judged. A judge route that is not a route is refused at its line."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from dragoman.config.load import parse_config
from dragoman.errors import ConfigError
from tests.gateway import UPSTREAM_ENV, run_gateway
from tests.routing_helpers import route, wait_until
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.versions_helpers import OFFERED_TOOL, ask, cli, config

pytestmark = pytest.mark.timeout(60)

ALLOWED = 2
ASKED = 5


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[ScriptedChatUpstream, ScriptedChatUpstream]]:
    with ScriptedChatUpstream() as main, ScriptedChatUpstream() as judge:
        main.reset(ChatReply(tool_calls=[("call_1", OFFERED_TOOL, '{"path": "README.md"}')]))
        judge.reset(ChatReply(text="FAIL\nit read a file but never answered the question", model="judge-model"))
        yield main, judge


def test_the_judge_scores_sampled_calls_within_its_budget(upstreams) -> None:  # noqa: ANN001
    main, judge = upstreams
    text = config(main.chat_url, extra_routes=[route("judge", judge.chat_url)],
                  judge={"route": "judge", "sample": 1.0, "max_calls_per_hour": ALLOWED, "concurrency": 1})
    with run_gateway(text, env=UPSTREAM_ENV) as gateway:
        assert [ask(gateway) for _ in range(ASKED)] == [200] * ASKED
        wait_until(lambda: _metric(gateway, 'dragoman_judge_dropped_total{reason="calls_per_hour"}') == ASKED - ALLOWED,
                   15, "the calls over budget counted as dropped")
        wait_until(lambda: len(_rows(gateway, judge="fail")) == ALLOWED, 15, "the judge column set")

        assert len(judge.requests) == ALLOWED  # the budget held: no more judge calls than allowed
        sent = json.dumps(judge.bodies[0])
        assert "PASS or FAIL" in sent and "read README.md" in sent and f"[tool call] {OFFERED_TOOL}" in sent
        assert _metric(gateway, 'dragoman_judge_verdicts_total{verdict="fail"}') == ALLOWED
        wait_until(lambda: len(_own(gateway)) == ALLOWED, 10, "the judge's own calls audited")
        own = _own(gateway)
        assert {row["route"] for row in own} == {"judge"}
        assert all(row["judge"] is None for row in own)  # the judge's own calls are never judged


def _rows(gateway, **filters) -> list[dict]:  # noqa: ANN001
    done = cli(gateway, "logs", "--format", "json", "--limit", "100")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    return [row for row in rows if all(row.get(k) == v for k, v in filters.items())]


def _own(gateway) -> list[dict]:  # noqa: ANN001
    return [row for row in _rows(gateway) if "judge_call" in row["loop_events"]]


def _metric(gateway, name: str) -> float:  # noqa: ANN001
    for line in gateway.request("GET", "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_a_judge_route_that_is_not_a_route_is_refused_at_its_line() -> None:
    text = config("http://127.0.0.1:9/v1", judge={"route": "nope"})
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "route: nope" in row)
    with pytest.raises(ConfigError, match=rf"dragoman.yaml:{line}: .*no route named \"nope\""):
        parse_config(text, "dragoman.yaml", UPSTREAM_ENV)


def test_rollback_thresholds_that_could_never_act_are_refused() -> None:
    text = config("http://127.0.0.1:9/v1").replace("min_calls: 10", "min_calls: 900")
    with pytest.raises(ConfigError, match=r"dragoman.yaml:\d+: .*exceeds watch_calls"):
        parse_config(text, "dragoman.yaml", UPSTREAM_ENV)
    with pytest.raises(ConfigError, match=r"sample"):
        parse_config(config("http://127.0.0.1:9/v1", judge={"route": "gpt-5-via-gateway", "sample": 2}),
                     "dragoman.yaml", UPSTREAM_ENV)
