"""Tool use across turns on an OpenAI Chat route: Claude Code's parallel tool uses and their results, answered in
any order, become one assistant message with its tool calls followed by one tool message per call; tool names
longer than OpenAI allows go up shortened and come back as the client named them."""

from __future__ import annotations

import json
import random

import pytest

from tests.gateway import ROUTE_NAME
from tests.sdk_helpers import SIX_CALLS, SIX_TOOLS, ask, blocks, text_of, tool
from tests.upstreams import ChatReply

pytestmark = pytest.mark.timeout(60)

LONG_NAME = "mcp__some_very_long_server_name__" + "a_tool_with_an_exceedingly_descriptive_name_" * 2


def test_six_tool_uses_and_shuffled_results_become_one_assistant_and_six_tool_messages(client, chat_upstream):
    chat_upstream.script(ChatReply(text="All six done."))
    results = [{"type": "tool_result", "tool_use_id": cid, "content": f"result of {name}"} for cid, name, _ in SIX_CALLS]
    random.Random(7).shuffle(results)
    assert [r["tool_use_id"] for r in results] != [c[0] for c in SIX_CALLS]
    assistant = [{"type": "text", "text": "Running six tools."},
                 *({"type": "tool_use", "id": cid, "name": name, "input": args} for cid, name, args in SIX_CALLS)]
    message = client.messages.create(
        model=ROUTE_NAME, max_tokens=200, tools=SIX_TOOLS,
        messages=[{"role": "user", "content": "do six things"},
                  {"role": "assistant", "content": assistant},
                  {"role": "user", "content": results}])
    assert blocks(message.content) == [("text", "All six done.")]
    sent = chat_upstream.last_body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant"] + ["tool"] * 6
    call_message = sent[1]
    assert text_of(call_message.get("content")) == "Running six tools."
    calls = call_message["tool_calls"]
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == SIX_CALLS
    assert all(c["type"] == "function" for c in calls)
    answered = {m["tool_call_id"]: text_of(m["content"]) for m in sent[2:]}
    assert answered == {cid: f"result of {name}" for cid, name, _ in SIX_CALLS}
    tools = chat_upstream.last_body["tools"]
    assert [t["function"]["name"] for t in tools] == [name for _, name, _ in SIX_CALLS]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_names_longer_than_openai_allows_round_trip(stream, client, chat_upstream):
    offered: list[str] = []

    def answer(body: dict) -> ChatReply:
        offered.extend(t["function"]["name"] for t in body["tools"])
        return ChatReply(tool_calls=[("call_long_Qm7tRz4kLp2Vw8Nf", offered[0], '{"q": 1}'), ("call_bash_Qm7tRz4kLp2Vw8Nf", "Bash", '{"command": "ls"}')])

    chat_upstream.script(answer)
    message = ask(client, stream, max_tokens=100, tools=[tool(LONG_NAME, {"q": {}}), tool("Bash", {"command": {}})])
    assert len(offered[0]) <= 64 and offered[1] == "Bash"
    assert blocks(message.content) == [("tool_use", "call_long_Qm7tRz4kLp2Vw8Nf", LONG_NAME, {"q": 1}),
                                       ("tool_use", "call_bash_Qm7tRz4kLp2Vw8Nf", "Bash", {"command": "ls"})]
