"""Claude Code's own request bodies, as captured, sent with its headers to a route on OpenAI Chat: the client gets
a well-formed answer, and the upstream a valid Chat request (no cache_control, the tools Claude Code offered,
system prompt first, every tool call answered by a tool message right after it)."""

from __future__ import annotations

import json

import pytest

from tests.sdk_helpers import blocks, received_message, text_of
from tests.shared_fixtures import CLAUDE_CODE_FIXTURE_FILES, CLAUDE_CODE_FIXTURES, claude_code_headers
from tests.upstreams import ChatReply

pytestmark = pytest.mark.timeout(60)


def _expected_tool_names(body: dict) -> set[str]:
    referenced = {ref["tool_name"] for m in body["messages"] if isinstance(m["content"], list)
                  for block in m["content"] if block.get("type") == "tool_result" and isinstance(block.get("content"), list)
                  for ref in block["content"] if ref.get("type") == "tool_reference"}
    return {t["name"] for t in body["tools"] if not t.get("defer_loading") or t["name"] in referenced}


def test_claude_code_fixtures_are_present():
    assert len(CLAUDE_CODE_FIXTURE_FILES) == 10, CLAUDE_CODE_FIXTURE_FILES


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fixture", CLAUDE_CODE_FIXTURE_FILES)
def test_claude_code_request_as_captured(fixture, stream, gateway, chat_upstream):
    body = json.loads((CLAUDE_CODE_FIXTURES / fixture).read_text())
    body["stream"] = stream
    chat_upstream.script(ChatReply(text="Done: hi!", usage=(900, 12, 512)))
    response = gateway.request("POST", "/v1/messages?beta=true", body, claude_code_headers(body))
    message = received_message(response, stream)
    assert blocks(message["content"]) == [("text", "Done: hi!")]
    assert message["stop_reason"] == "end_turn" and message["model"] == body["model"]

    sent = chat_upstream.last_body
    assert "cache_control" not in json.dumps(sent)
    assert sent["model"] == "gpt-5"
    assert 0 < sent["max_completion_tokens"] <= body["max_tokens"] and "max_tokens" not in sent
    assert {t["function"]["name"] for t in sent["tools"]} == _expected_tool_names(body)
    _assert_message_order(body, sent["messages"])
    if "after_toolsearch" in fixture:
        tool_texts = [text_of(m["content"]) for m in sent["messages"] if m["role"] == "tool"]
        assert any("CronList" in text for text in tool_texts), tool_texts


def _assert_message_order(anthropic_body: dict, messages: list[dict]) -> None:
    assert messages[0]["role"] in {"system", "developer"}, "the system prompt comes first"
    assert anthropic_body["system"][1]["text"] in text_of(messages[0]["content"])
    mid_system = sum(m["role"] == "system" for m in anthropic_body["messages"])
    assert sum(m["role"] in {"system", "developer"} for m in messages[1:]) == mid_system
    for i, message in enumerate(messages):
        if message["role"] == "tool":
            assert text_of(message["content"]).strip(), f"empty tool message at {i}"
        if message.get("tool_calls"):
            ids = [c["id"] for c in message["tool_calls"]]
            following = messages[i + 1: i + 1 + len(ids)]
            assert [m["role"] for m in following] == ["tool"] * len(ids), f"tool messages must follow message {i}"
            assert sorted(m["tool_call_id"] for m in following) == sorted(ids)
    called = [c["id"] for m in messages for c in m.get("tool_calls") or []]
    answered = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert sorted(called) == sorted(answered)
    used = [b["id"] for m in anthropic_body["messages"] if isinstance(m["content"], list)
            for b in m["content"] if b["type"] == "tool_use"]
    assert called == used
