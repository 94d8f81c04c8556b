"""End to end: the real Claude Code CLI edits six files through the gateway against a scripted OpenAI Chat upstream.

The upstream plays a three-turn task: six parallel `Read` calls in one assistant message, then (once all six
results are back) six parallel `Edit` calls replacing OLD with NEW, then a final text. It decides by looking at
each request, so side requests the CLI may send (titles, summaries) just get a short text.

Needs the CLI installed by `bash tests/cli/install.sh` (scripts/test runs it first); without it the test fails
(it skips only as tests/prerequisites.py says).
`DRAGOMAN_CLAUDE_BIN` points the test at another `claude` executable.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.gateway import UPSTREAM_KEY
from tests.upstreams import ChatReply, ScriptedChatUpstream

from tests.cli_scenario import (  # shared with the Responses CLI test
    FILES,
    FINAL_TEXT,
    INBOUND_KEY,
    SIDE_TEXT,
    assert_cli_succeeded,
    claude_executable,
    run_cli,
)

pytestmark = pytest.mark.cli  # `-m cli` runs the real-CLI tests alone (README: the newest CLI)


class ThreeTurnScript:
    """Read x6 -> Edit x6 -> final text, chosen by which tool results a request carries."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.read_ids = {name: f"call_{uuid.uuid4().hex[:24]}" for name in FILES}
        self.edit_ids = {name: f"call_{uuid.uuid4().hex[:24]}" for name in FILES}
        self.unexpected: list[str] = []

    def __call__(self, body: dict) -> ChatReply:
        offered = {t.get("function", {}).get("name") for t in body.get("tools") or []}
        if not offered:
            return ChatReply(text=SIDE_TEXT)  # a side request (title, summary, ...), not the agent loop
        if not {"Read", "Edit"} <= offered:
            self.unexpected.append(f"the CLI offered {sorted(offered)}: no Read/Edit (deferred in this release?)")
            return ChatReply(text="Read and Edit are not offered; stopping.")
        answered = {m.get("tool_call_id") for m in body.get("messages", []) if m.get("role") == "tool"}
        reads, edits = set(self.read_ids.values()), set(self.edit_ids.values())
        if not answered & (reads | edits):
            return ChatReply(text="I'll read the six files in parallel.", tool_calls=[
                (self.read_ids[name], "Read", json.dumps({"file_path": str(self.project / name)}))
                for name in FILES
            ])
        if reads <= answered and not answered & edits:
            return ChatReply(text="Now I'll edit them in parallel.", tool_calls=[
                (self.edit_ids[name], "Edit", json.dumps(
                    {"file_path": str(self.project / name), "old_string": "OLD", "new_string": "NEW"}))
                for name in FILES
            ])
        if reads | edits <= answered:
            return ChatReply(text=FINAL_TEXT)
        self.unexpected.append(f"tool results for {sorted(answered)}")
        return ChatReply(text="Unexpected conversation state; stopping.")


def upstream_summary(upstream: ScriptedChatUpstream) -> str:
    lines = []
    for body in upstream.bodies:
        roles = [m.get("role") + ("+calls" if m.get("tool_calls") else "") for m in body.get("messages", [])]
        lines.append(f"  model={body.get('model')} stream={body.get('stream')} tools={len(body.get('tools') or [])} "
                     f"messages={roles}")
    return "\n".join(lines) or "  (none)"


def assert_tool_messages_follow_calls(messages: list[dict]) -> None:
    """OpenAI rejects a conversation unless each assistant `tool_calls` message is followed by one tool message per call."""
    for i, message in enumerate(messages):
        calls = message.get("tool_calls") or []
        if message.get("role") != "assistant" or not calls:
            continue
        following = messages[i + 1 : i + 1 + len(calls)]
        assert all(m.get("role") == "tool" for m in following), f"message {i}: tool calls not followed by tool messages"
        assert {m.get("tool_call_id") for m in following} == {c["id"] for c in calls}, f"message {i}: ids differ"


def test_claude_code_edits_six_files_through_gateway(tmp_path: Path, chat_upstream: ScriptedChatUpstream,
                                                      gateway_for) -> None:
    exe = claude_executable()
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    for name in FILES:
        (project / name).write_text("value = OLD\n")
    script = ThreeTurnScript(project)
    chat_upstream.reset(script)
    gateway = gateway_for(chat_upstream, auth_keys=[INBOUND_KEY])

    code, out, err, seconds = run_cli(exe, project, home, gateway.base_url,
                                      "In each of a.txt, b.txt, c.txt, d.txt, e.txt and f.txt replace OLD with NEW.")

    context = (f"claude exited {code} after {seconds:.1f}s\nstderr:\n{err[-4000:]}\nstdout tail:\n{out[-4000:]}\n"
               f"upstream requests:\n{upstream_summary(chat_upstream)}\n"
               f"gateway stderr tail:\n{gateway.stderr_text()[-4000:]}")
    assert not script.unexpected, f"{script.unexpected}\n{context}"
    # Exit 0, the files really edited by the CLI's own Edit tool, a successful result, the calls as issued.
    assert_cli_succeeded(code, out, project, context)

    # The upstream saw three agent-loop requests, with all six results each time, under the ids it issued.
    agent_bodies = [b for b in chat_upstream.bodies
                    if {"Read", "Edit"} <= {t.get("function", {}).get("name") for t in b.get("tools") or []}]
    assert len(agent_bodies) == 3, context
    for body in agent_bodies:
        assert body["model"] == "gpt-5", body["model"]
        assert_tool_messages_follow_calls(body["messages"])
    read_ids, edit_ids = set(script.read_ids.values()), set(script.edit_ids.values())
    for body, expected in zip(agent_bodies, [set(), read_ids, read_ids | edit_ids]):
        tool_messages = [m for m in body["messages"] if m.get("role") == "tool"]
        assert len(tool_messages) == len(expected), upstream_summary(chat_upstream)
        assert {m["tool_call_id"] for m in tool_messages} == expected
    final_messages = agent_bodies[-1]["messages"]
    by_id = {m["tool_call_id"]: m for m in final_messages if m.get("role") == "tool"}

    def text_of(message: dict) -> str:
        content = message.get("content")
        return content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [])

    for name in FILES:
        assert "value = OLD" in text_of(by_id[script.read_ids[name]]), by_id[script.read_ids[name]]
        assert name in text_of(by_id[script.edit_ids[name]]), by_id[script.edit_ids[name]]
    issued = [c for m in final_messages if m.get("role") == "assistant" for c in m.get("tool_calls") or []]
    assert [(c["id"], c["function"]["name"]) for c in issued] == (
        [(script.read_ids[n], "Read") for n in FILES] + [(script.edit_ids[n], "Edit") for n in FILES])
    assert [json.loads(c["function"]["arguments"])["file_path"] for c in issued] == [str(project / n) for n in FILES] * 2
    for request in chat_upstream.requests:
        assert request.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}", request.headers
