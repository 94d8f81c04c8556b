"""End to end: the real Claude Code CLI edits six files through the gateway against a scripted OpenAI
*Responses* upstream (design §4), with reasoning in every turn.

The upstream plays the same three-turn task as tests/test_claude_code_cli.py (six parallel `Read`s, then six
parallel `Edit`s once all results are back, then a final text), but each agent-loop answer starts with a
reasoning item carrying its own encrypted content. The CLI gets them as thinking blocks and sends them back;
the upstream must see turn 1's encrypted reasoning echoed back, unchanged and before its calls, in turns 2 and 3.

Needs the CLI installed by `bash tests/cli/install.sh` (scripts/test runs it first); without it the test fails
(it skips only as tests/prerequisites.py says).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_scenario import (
    CLI_TIMEOUT,
    FILES,
    FINAL_TEXT,
    INBOUND_KEY,
    SIDE_TEXT,
    TASK,
    assert_cli_succeeded,
    claude_executable,
    make_project,
    run_cli,
)
from tests.gateway import (
    UPSTREAM_ENV,
    UPSTREAM_KEY,
    Gateway,
    gateway_config,
    run_gateway,
)
from tests.upstreams.openai_responses import ResponsesReply, ScriptedResponsesUpstream

pytestmark = [pytest.mark.cli, pytest.mark.timeout(CLI_TIMEOUT + 120)]


class ThreeTurnReasoningScript:
    """Read x6 -> Edit x6 -> final text, each agent-loop answer led by a reasoning item of its own."""

    def __init__(self, project: Path, summarized: bool = True) -> None:
        self.project = project
        self.summarized = summarized
        self.read_ids = {name: f"call_{uuid.uuid4().hex[:24]}" for name in FILES}
        self.edit_ids = {name: f"call_{uuid.uuid4().hex[:24]}" for name in FILES}
        tag = uuid.uuid4().hex[:12]
        self.encrypted = [f"gAAAAB-enc-turn{n}-{tag}" for n in (1, 2, 3)]
        self.summaries = ["**Reading the files**\n\nI will read all six at once.",
                          "**Editing**\n\nEach file says OLD; replace it in all six.",
                          "**Wrapping up**\n\nAll six edits succeeded."]
        self.unexpected: list[str] = []

    def _reply(self, turn: int, **kwargs: Any) -> ResponsesReply:
        # GPT-5 often sends reasoning with an empty summary: an empty thinking block must carry it just as well.
        summary = self.summaries[turn] if self.summarized else []
        return ResponsesReply(reasoning=summary, encrypted_content=self.encrypted[turn],
                              usage=(2000 + 500 * turn, 80, 1024 * turn, 48), **kwargs)

    def __call__(self, body: dict) -> ResponsesReply:
        offered = {t.get("name") for t in body.get("tools") or []}
        if not offered:
            return ResponsesReply(text=SIDE_TEXT)  # a side request (title, summary, ...), not the agent loop
        if not {"Read", "Edit"} <= offered:
            self.unexpected.append(f"the CLI offered {sorted(offered)}: no Read/Edit (deferred in this release?)")
            return ResponsesReply(text="Read and Edit are not offered; stopping.")
        answered = {i.get("call_id") for i in body.get("input", []) if i.get("type") == "function_call_output"}
        reads, edits = set(self.read_ids.values()), set(self.edit_ids.values())
        if not answered & (reads | edits):
            return self._reply(0, text="I'll read the six files in parallel.", function_calls=[
                (self.read_ids[name], "Read", json.dumps({"file_path": str(self.project / name)}))
                for name in FILES
            ])
        if reads <= answered and not answered & edits:
            return self._reply(1, text="Now I'll edit them in parallel.", function_calls=[
                (self.edit_ids[name], "Edit", json.dumps(
                    {"file_path": str(self.project / name), "old_string": "OLD", "new_string": "NEW"}))
                for name in FILES
            ])
        if reads | edits <= answered:
            return self._reply(2, text=FINAL_TEXT)
        self.unexpected.append(f"function_call_outputs for {sorted(answered)}")
        return ResponsesReply(text="Unexpected conversation state; stopping.")


@pytest.fixture
def responses_upstream() -> Iterator[ScriptedResponsesUpstream]:
    with ScriptedResponsesUpstream() as upstream:
        yield upstream


@pytest.fixture
def responses_gateway(responses_upstream: ScriptedResponsesUpstream, tmp_path: Path) -> Iterator[Gateway]:
    env = {**UPSTREAM_ENV, "DRAGOMAN_SIGNING_KEY": "", "DRAGOMAN_SIGNING_KEY_FILE": str(tmp_path / "signing.key")}
    config = gateway_config(responses_upstream.responses_url, auth_keys=[INBOUND_KEY])
    with run_gateway(config, env=env) as gateway:
        yield gateway


def upstream_summary(upstream: ScriptedResponsesUpstream) -> str:
    lines = []
    for body in upstream.bodies:
        items = [i.get("type", "message") + (f":{i['role']}" if "role" in i else "") for i in body.get("input", [])]
        lines.append(f"  model={body.get('model')} stream={body.get('stream')} tools={len(body.get('tools') or [])} "
                     f"reasoning={body.get('reasoning')} input={items}")
    return "\n".join(lines) or "  (none)"


def assert_outputs_follow_calls(items: list[dict]) -> None:
    """OpenAI rejects a function_call without its function_call_output; outputs come after their calls."""
    seen: dict[str, int] = {}
    for position, item in enumerate(items):
        if item.get("type") == "function_call":
            assert item["call_id"] not in seen, f"call {item['call_id']} twice"
            seen[item["call_id"]] = position
    answered = {}
    for position, item in enumerate(items):
        if item.get("type") == "function_call_output":
            assert item["call_id"] in seen and seen[item["call_id"]] < position, f"output {position} has no call before it"
            answered[item["call_id"]] = position
    assert set(answered) == set(seen), f"calls without outputs: {set(seen) - set(answered)}"


@pytest.mark.parametrize("summarized", [True, False], ids=["summary", "empty_summary"])
def test_claude_code_edits_six_files_through_a_responses_route(summarized: bool, tmp_path: Path, responses_upstream,
                                                               responses_gateway):
    exe = claude_executable()
    project, home = make_project(tmp_path)
    script = ThreeTurnReasoningScript(project, summarized)
    responses_upstream.reset(script)

    code, out, err, seconds = run_cli(exe, project, home, responses_gateway.base_url, TASK)

    context = (f"claude exited {code} after {seconds:.1f}s\nstderr:\n{err[-4000:]}\nstdout tail:\n{out[-4000:]}\n"
               f"upstream requests:\n{upstream_summary(responses_upstream)}\n"
               f"gateway stderr tail:\n{responses_gateway.stderr_text()[-4000:]}")
    assert not script.unexpected, f"{script.unexpected}\n{context}"
    events = assert_cli_succeeded(code, out, project, context)

    # The CLI got each turn's reasoning as a thinking block with the summary as its text.
    thinking = [block for e in events if e.get("type") == "assistant"
                for block in e["message"]["content"] if block.get("type") == "thinking"]
    expected_thinking = script.summaries if summarized else ["", "", ""]
    assert [b["thinking"] for b in thinking] == expected_thinking, context
    assert all(b.get("signature") and "enc-turn" not in b["signature"] for b in thinking), thinking

    # Three agent-loop requests through the Responses API, each well-formed for OpenAI.
    agent = [b for b in responses_upstream.bodies if {"Read", "Edit"} <= {t.get("name") for t in b.get("tools") or []}]
    assert len(agent) == 3, context
    read_ids, edit_ids = list(script.read_ids.values()), list(script.edit_ids.values())
    for body, issued in zip(agent, [[], read_ids, read_ids + edit_ids]):
        assert body["model"] == "gpt-5" and body["store"] is False, body
        assert body["include"] == ["reasoning.encrypted_content"]
        assert "cache_control" not in json.dumps(body)
        for tool in body["tools"]:
            assert tool["type"] == "function" and tool["strict"] is False and "function" not in tool, tool
        assert_outputs_follow_calls(body["input"])
        calls = [i for i in body["input"] if i.get("type") == "function_call"]
        assert [c["call_id"] for c in calls] == issued, upstream_summary(responses_upstream)
        assert [c["name"] for c in calls] == ["Read"] * min(len(issued), 6) + ["Edit"] * max(len(issued) - 6, 0)

    # Turn 1's encrypted reasoning came back in turns 2 and 3 (and turn 2's in turn 3): unchanged, each right
    # before the first function_call of its turn.
    def reasoning_items(body: dict) -> list[dict]:
        return [i for i in body["input"] if i.get("type") == "reasoning"]

    assert reasoning_items(agent[0]) == []
    for body, expected in ((agent[1], script.encrypted[:1]), (agent[2], script.encrypted[:2])):
        items = reasoning_items(body)
        assert [i.get("encrypted_content") for i in items] == expected, upstream_summary(responses_upstream)
        for item, summary in zip(items, script.summaries):
            assert item == {"type": "reasoning", "id": item["id"], "encrypted_content": item["encrypted_content"],
                            "summary": [{"type": "summary_text", "text": summary}] if summarized else []}, item
            assert item["id"].startswith("rs_")
            position = body["input"].index(item)
            following = body["input"][position + 1]
            assert following.get("type") == "function_call" or following.get("role") == "assistant", following

    assert reasoning_items(agent[2])[0] == reasoning_items(agent[1])[0], "turn 1's item must not change between turns"

    final_outputs = {i["call_id"]: i["output"] for i in agent[2]["input"] if i.get("type") == "function_call_output"}
    for name in FILES:
        assert "value = OLD" in final_outputs[script.read_ids[name]], final_outputs[script.read_ids[name]]
        assert name in final_outputs[script.edit_ids[name]], final_outputs[script.edit_ids[name]]
    for request in responses_upstream.requests:
        assert request.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}", request.headers
    assert FINAL_TEXT in out
