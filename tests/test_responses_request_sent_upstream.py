"""What a Messages request becomes on a route on the OpenAI Responses API: instructions, input items, tools,
store off with encrypted reasoning asked for, reasoning effort from the thinking settings, the session as the
prompt cache key, an opaque safety identifier, mid-conversation system messages in place, and tool uses and
results as paired items."""

from __future__ import annotations

import json

import pytest

from tests.gateway import ROUTE_NAME, UPSTREAM_KEY
from tests.responses_helpers import METADATA, SESSION, TOOLS, kinds, walk_keys
from tests.routing_helpers import USER_HI
from tests.upstreams.openai_responses import ResponsesReply

pytestmark = pytest.mark.timeout(30)


def test_upstream_request_shape(responses_client, responses_upstream):
    responses_upstream.script(ResponsesReply(text="ok"))
    responses_client.messages.create(
        model=ROUTE_NAME, max_tokens=4096, tools=TOOLS, metadata=METADATA,
        system=[{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.328"},
                {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        thinking={"type": "enabled", "budget_tokens": 20000},
        messages=[{"role": "user", "content": [{"type": "text", "text": "fix it", "cache_control": {"type": "ephemeral"}}]}],
    )
    sent = responses_upstream.last_body
    assert sent["model"] == "gpt-5"
    assert sent["instructions"] == "x-anthropic-billing-header: cc_version=2.1.328\n\nYou are Claude Code."
    assert sent["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix it"}]}]
    assert sent["store"] is False
    assert sent["include"] == ["reasoning.encrypted_content"]
    assert sent["max_output_tokens"] == 4096 and "max_tokens" not in sent and "max_completion_tokens" not in sent
    assert sent["reasoning"]["effort"] == "high"
    assert sent["prompt_cache_key"] == SESSION
    assert sent.get("safety_identifier") and "acct-1234" not in json.dumps(sent)
    assert sent["tools"] == [
        {"type": "function", "name": t["name"], "description": t["description"], "parameters": t["input_schema"],
         "strict": False} for t in TOOLS]
    assert "cache_control" not in walk_keys(sent)
    assert "messages" not in sent and "stream_options" not in sent
    assert responses_upstream.requests[-1].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_reasoning_effort_from_output_config(effort, responses_client, responses_upstream):
    responses_upstream.script(ResponsesReply(text="ok"))
    responses_client.messages.create(model=ROUTE_NAME, max_tokens=2000, messages=USER_HI,
                                     thinking={"type": "adaptive"}, extra_body={"output_config": {"effort": effort}})
    assert responses_upstream.last_body["reasoning"]["effort"] == effort


@pytest.mark.parametrize("budget, effort", [(2048, "low"), (8000, "medium"), (31999, "high")])
def test_reasoning_effort_from_thinking_budget(budget, effort, responses_client, responses_upstream):
    responses_upstream.script(ResponsesReply(text="ok"))
    responses_client.messages.create(model=ROUTE_NAME, max_tokens=32000, messages=USER_HI,
                                     thinking={"type": "enabled", "budget_tokens": budget})
    assert responses_upstream.last_body["reasoning"]["effort"] == effort


def test_mid_conversation_system_message_keeps_its_place(responses_gateway, responses_upstream):
    responses_upstream.script(ResponsesReply(text="ok"))
    response = responses_gateway.request("POST", "/v1/messages", {
        "model": ROUTE_NAME, "max_tokens": 1000, "system": "You are Claude Code.",
        "messages": [{"role": "user", "content": "first"},
                     {"role": "system", "content": "<system-reminder>cwd is /home/dev</system-reminder>"},
                     {"role": "assistant", "content": "noted"},
                     {"role": "user", "content": "second"}]}, {"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert response.status == 200, response.text
    sent = responses_upstream.last_body
    assert sent["instructions"] == "You are Claude Code."
    roles = [(item["role"], item["content"][0].get("text")) for item in sent["input"]]
    assert roles[0] == ("user", "first")
    assert roles[1][0] in ("system", "developer") and "cwd is /home/dev" in roles[1][1]
    assert roles[2:] == [("assistant", "noted"), ("user", "second")]


def test_tool_uses_and_results_become_paired_items(responses_client, responses_upstream):
    responses_upstream.script(ResponsesReply(text="done"))
    uses = [{"type": "tool_use", "id": f"call_{n}", "name": "Read", "input": {"file_path": f"/p/{n}.txt"}}
            for n in range(6)]
    results = [{"type": "tool_result", "tool_use_id": f"call_{n}", "content": f"contents of {n}"}
               for n in (3, 0, 5, 1, 4, 2)]  # Claude Code answers in completion order
    responses_client.messages.create(model=ROUTE_NAME, max_tokens=2000, tools=TOOLS, messages=[
        {"role": "user", "content": "read six files"},
        {"role": "assistant", "content": [{"type": "text", "text": "Reading."}, *uses]},
        {"role": "user", "content": results},
    ])
    sent = responses_upstream.last_body
    items = sent["input"]
    assert kinds(sent) == ["message", "message"] + ["function_call"] * 6 + ["function_call_output"] * 6
    assert items[1] == {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Reading."}]}
    calls, outputs = items[2:8], items[8:]
    assert [(c["call_id"], c["name"], json.loads(c["arguments"])) for c in calls] == [
        (u["id"], "Read", u["input"]) for u in uses]
    assert sorted(o["call_id"] for o in outputs) == sorted(c["call_id"] for c in calls)
    assert {o["call_id"]: o["output"] for o in outputs} == {f"call_{n}": f"contents of {n}" for n in range(6)}

