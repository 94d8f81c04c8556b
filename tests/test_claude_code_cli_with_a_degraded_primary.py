"""End to end: the real Claude Code CLI completes its six-file task through a weighted route whose primary
candidate (weight 90) answers every agent turn with a broken tool call (a tool it was never offered). The loop
judges those calls (the verdicts branch's Assessor), demotes the primary for the agent's turn shape within
min_calls of its calls, and the task finishes on the healthy candidate; no request fails because of the loop.

Needs the CLI (tests/cli/install.sh, or DRAGOMAN_CLAUDE_BIN) and real verdicts (dragoman/loop/assess.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli_scenario import FILES, FINAL_TEXT, INBOUND_KEY, ROUTE, SIDE_TEXT, TASK, claude_executable, \
    make_project, run_cli, stream_events
from tests.gateway import UPSTREAM_ENV, run_gateway
from tests.routing_helpers import route
from tests.test_claude_code_cli import ThreeTurnScript
from tests.upstreams import ChatReply, ScriptedChatUpstream

pytestmark = pytest.mark.cli

MIN_CALLS = 2


def broken(body: dict) -> ChatReply:
    """The degraded primary: side requests answered, every agent turn a call to a tool that was not offered."""
    if not body.get("tools"):
        return ChatReply(text=SIDE_TEXT, model="gpt-5-broken")
    return ChatReply(text="Let me look.", tool_calls=[("call_broken", "Frobnicate", json.dumps({"path": "."}))],
                     model="gpt-5-broken")


def _config(primary: ScriptedChatUpstream, backup: ScriptedChatUpstream) -> str:
    timeout = {"connect": 5, "first_byte": 60, "idle": 60}
    return yaml.safe_dump({
        "default_route": ROUTE,
        "auth": {"keys": [INBOUND_KEY]},
        "admin": {"keys": ["adm-cli"]},
        # The writer scores a call when it drains; the CLI answers a broken call and sends its next turn within
        # ~20 ms on a fast host. A drain every 50 ms let all its remaining turns go before the demotion once
        # (2026-12-06): every 5 ms, the demotion is in place well before the CLI's next turn.
        "audit": {"flush_interval": 0.005},
        "loop": {"shift": {"window": 10, "min_calls": MIN_CALLS, "demote_below": 0.5, "restore_above": 0.9,
                           # one probe in 1,000 requests (an exact share, loop/shift.py): none in this task's turns
                           "probe_share": 0.001}},
        "routes": [
            route("primary", primary.chat_url, model="gpt-5-broken", api_key_ref="openai_prod", timeout=timeout),
            route("backup", backup.chat_url, model="gpt-5", api_key_ref="openai_prod", timeout=timeout),
            {"name": ROUTE, "candidates": [{"route": "primary", "weight": 90}, {"route": "backup", "weight": 10}]},
        ],
    }, sort_keys=False)


def test_claude_code_finishes_while_the_primary_is_degraded(tmp_path: Path) -> None:
    exe = claude_executable()
    project, home = make_project(tmp_path)
    script = ThreeTurnScript(project)
    with ScriptedChatUpstream(broken) as primary, ScriptedChatUpstream(script) as backup, \
            run_gateway(_config(primary, backup), env=UPSTREAM_ENV) as gateway:
        code, out, err, seconds = run_cli(exe, project, home, gateway.base_url, TASK)
        scores = gateway.request("GET", "/api/scores?since=1h", headers={"x-api-key": "adm-cli"}).json()
        records = gateway.request("GET", "/api/requests?since=1h&limit=1000", headers={"x-api-key": "adm-cli"}).json()
        context = (f"claude exited {code} after {seconds:.1f}s\nstderr:\n{err[-3000:]}\nstdout tail:\n{out[-3000:]}\n"
                   f"scores: {scores}\ngateway stderr tail:\n{gateway.stderr_text()[-3000:]}")

        assert not script.unexpected, f"{script.unexpected}\n{context}"
        assert code == 0, context
        for name in FILES:
            assert (project / name).read_text() == "value = NEW\n", context
        results = [e for e in stream_events(out) if e.get("type") == "result"]
        assert [(r.get("subtype"), r.get("result")) for r in results] == [("success", FINAL_TEXT)], context

        agent = [r for r in records["data"] if r["shape"] and r["shape"].startswith("tools|")]
        to_primary = [r for r in agent if r["route"] == "primary"]
        assert all(r["status"] == 200 for r in records["data"]), context
        assert all("unknown_tool" in r["verdict_kinds"] for r in to_primary), context
        demotions = [e for e in scores["events"] if e["kind"] == "demoted" and e["route"] == "primary"]
        assert demotions and all(e["calls"] == MIN_CALLS for e in demotions), context
        # Once demoted for a shape, the primary got none of that shape's agent turns (no probe before the 1,000th).
        demoted_shapes = {e["shape"] for e in demotions}
        avoided = [r for r in agent if any(ev.startswith("avoided: primary") for ev in r["loop_events"])]
        assert avoided and all(r["route"] == "backup" for r in avoided), context
        assert {r["shape"] for r in avoided} <= demoted_shapes, context
