"""A config push that regresses is rolled back by the gateway itself, over real sockets: the gateway starts on a
route whose scripted upstream answers with the tool the request offered; the file is replaced with a version
whose route's upstream answers with a tool nobody offered; after that version's first `min_calls` assessed calls
the gateway writes the earlier text back to the file (inline admin key restored), the store has the rollback
entry, `dragoman versions` shows it, /metrics counts it, and not one client request failed. With one process and
with --workers 2 (each worker scores its share; the file write reaches both)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dragoman.loop.versions import content_version
from tests.gateway import UPSTREAM_ENV, run_gateway
from tests.routing_helpers import wait_until
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.versions_helpers import OFFERED_TOOL, admin, ask, config, config_path, replace_atomically, versions_json

pytestmark = pytest.mark.timeout(90)

MIN_CALLS = 10


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[ScriptedChatUpstream, ScriptedChatUpstream]]:
    with ScriptedChatUpstream() as good, ScriptedChatUpstream() as bad:
        good.reset(ChatReply(tool_calls=[("call_1", OFFERED_TOOL, '{"path": "README.md"}')]))
        bad.reset(ChatReply(tool_calls=[("call_1", "Bash", '{"command": "ls"}')]))  # not offered
        yield good, bad


@pytest.mark.parametrize("workers", [1, 2])
def test_a_regressing_config_push_is_rolled_back_by_the_gateway(upstreams, workers: int) -> None:  # noqa: ANN001
    good, bad = upstreams
    old = config(good.chat_url, min_calls=MIN_CALLS)
    new = config(bad.chat_url, min_calls=MIN_CALLS, note="the push that regresses")
    with run_gateway(old, env=UPSTREAM_ENV, workers=workers) as gateway:
        path = config_path(gateway)
        statuses = [ask(gateway) for _ in range(2 * MIN_CALLS)]  # the baseline: every call passes
        wait_until(lambda: _scored(gateway, content_version(old)) >= 2 * MIN_CALLS, 10, "the old version's calls")

        replace_atomically(path, new)
        reached = len(bad.requests)

        def new_config_serving() -> bool:
            statuses.append(ask(gateway))
            return len(bad.requests) > reached

        wait_until(new_config_serving, 15, "the new config serving")
        for _ in range(20 * MIN_CALLS):  # bounded: each worker needs MIN_CALLS of its own
            statuses.append(ask(gateway))
            if path.read_text() == old:
                break
        wait_until(lambda: path.read_text() == old, 10, "the file rolled back to the old version")

        assert set(statuses) == {200}  # no client request failed because of the loop
        newest = versions_json(gateway)["data"][0]
        assert newest["version"] == content_version(old) and newest["live"]
        assert newest["applied_by"] == "rollback:auto" and newest["rolled_back_from"] == content_version(new)
        listed = admin(gateway, "GET", "/api/versions")
        assert listed["data"][0]["applied_by"] == "rollback:auto"
        shown = admin(gateway, "GET", f"/api/versions/{content_version(old)}")
        assert "adm-versions-test-key" not in shown["content"] and "<masked key_" in shown["content"]
        stderr = gateway.stderr_text()
        assert "regressed" in stderr and "passed (100.0% failed)" in stderr and "passed (0.0% failed)" in stderr

        before = len(good.requests)
        wait_until(lambda: ask(gateway) == 200 and len(good.requests) > before, 10, "the old route serving again")
        metrics = gateway.request("GET", "/metrics").text
        assert 'dragoman_config_rollbacks_total{reason="auto"} 1.0' in metrics


def _scored(gateway, version: str) -> int:  # noqa: ANN001
    rows = {row["version"]: row for row in versions_json(gateway)["data"]}
    return rows[version]["calls"] if version in rows else 0
