"""Claude Code's own request bodies, as captured, sent with its headers to a route on the OpenAI Responses API:
the client gets a well-formed answer with thinking and usage, and the upstream a valid Responses request
(instructions from the system blocks, function tools, no cache_control, mid-conversation system messages in
place, every function_call answered by its function_call_output after it)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.responses_helpers import walk_keys
from tests.sdk_helpers import json_and_stream, received_message
from tests.shared_fixtures import CLAUDE_CODE_FIXTURE_FILES, CLAUDE_CODE_FIXTURES, claude_code_headers
from tests.upstreams.openai_responses import ResponsesReply

pytestmark = pytest.mark.timeout(30)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(part.get("text", "") for part in content)


def test_claude_code_fixtures_are_present():
    assert len(CLAUDE_CODE_FIXTURE_FILES) == 10, CLAUDE_CODE_FIXTURE_FILES


@json_and_stream
@pytest.mark.parametrize("fixture", CLAUDE_CODE_FIXTURE_FILES)
def test_claude_code_request_as_captured(fixture, stream, responses_gateway, responses_upstream):
    body = json.loads((CLAUDE_CODE_FIXTURES / fixture).read_text())
    body["stream"] = stream
    responses_upstream.script(ResponsesReply(reasoning="Looking at the task.", text="Done: hi!",
                                             usage=(900, 12, 512, 8)))
    response = responses_gateway.request("POST", "/v1/messages?beta=true", body, claude_code_headers(body))
    message = received_message(response, stream)
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert message["content"][1]["text"] == "Done: hi!"
    assert message["stop_reason"] == "end_turn" and message["model"] == body["model"]
    assert message["usage"]["cache_read_input_tokens"] == 512 and message["usage"]["input_tokens"] == 388

    sent = responses_upstream.last_body
    assert sent["model"] == "gpt-5" and bool(sent.get("stream")) is stream
    assert "cache_control" not in walk_keys(sent)
    assert sent["store"] is False and sent["include"] == ["reasoning.encrypted_content"]
    assert 16 <= sent["max_output_tokens"] <= body["max_tokens"]
    assert sent["prompt_cache_key"] == json.loads(body["metadata"]["user_id"])["session_id"]
    assert sent["instructions"] == "\n\n".join(b["text"] for b in body["system"])
    for tool in sent["tools"]:
        assert tool["type"] == "function" and tool["strict"] is False and "function" not in tool
        assert isinstance(tool["parameters"], dict) and tool["name"]
    offered = {t["name"] for t in body["tools"] if not t.get("defer_loading")}
    assert offered <= {t["name"] for t in sent["tools"]}
    # The mid-conversation system messages keep their place among the input items.
    mid_system = [_text(m["content"]) for m in body["messages"] if m["role"] == "system"]
    sent_system = [_text(i["content"]) for i in sent["input"]
                   if i.get("type", "message") == "message" and i["role"] in ("system", "developer")]
    assert sent_system == mid_system
    # Every tool_use goes up as a function_call, each answered by its function_call_output, in pairs by call_id.
    used = [b["id"] for m in body["messages"] if isinstance(m["content"], list)
            for b in m["content"] if b["type"] == "tool_use"]
    calls = [i for i in sent["input"] if i.get("type") == "function_call"]
    outputs = [i for i in sent["input"] if i.get("type") == "function_call_output"]
    assert [c["call_id"] for c in calls] == used
    assert sorted(o["call_id"] for o in outputs) == sorted(used)
    position = {id(item): n for n, item in enumerate(sent["input"])}
    for call in calls:
        answer = next(o for o in outputs if o["call_id"] == call["call_id"])
        assert position[id(call)] < position[id(answer)]
        assert isinstance(answer["output"], str) and answer["output"].strip()
        assert isinstance(json.loads(call["arguments"]), dict)
    if "after_toolsearch" in fixture:
        assert any("CronList" in o["output"] for o in outputs), outputs

