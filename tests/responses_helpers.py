"""For the end-to-end tests of routes on the OpenAI Responses API (design §4): Claude-Code-like tools and metadata,
replies under a fixed response id, what the upstream was sent, and the two-turn reasoning round trip (turn 2's
upstream request carries turn 1's reasoning item unchanged, or not at all when the signature does not open).

The gateway and upstream fixtures (`responses_gateway`, `responses_upstream`, `responses_client`) are in
conftest.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic

from tests.gateway import UPSTREAM_ENV
from tests.sdk_helpers import ask
from tests.upstreams.openai_responses import (
    ErrorReply,
    RawStream,
    ResponsesReply,
    ScriptedResponsesUpstream,
    render_events,
    render_response,
)
from tests.upstreams.openai_responses import sse_events as responses_sse

ENCRYPTED = "enc-XYZ"
READ_TOOL = {"name": "Read", "description": "Read a file from the local filesystem.",
             "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                              "required": ["file_path"], "additionalProperties": False}}
EDIT_TOOL = {"name": "Edit", "description": "Replace text in a file.",
             "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"},
                                                               "old_string": {"type": "string"},
                                                               "new_string": {"type": "string"}},
                              "required": ["file_path", "old_string", "new_string"]}}
TOOLS = [READ_TOOL, EDIT_TOOL]
SESSION = "7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b"
METADATA = {"user_id": json.dumps({"device_id": "d" * 64, "account_uuid": "acct-1234", "session_id": SESSION})}


def signing_env(key_file: Path) -> dict[str, str]:
    """A gateway's environment with its reasoning signing key in `key_file`."""
    # DRAGOMAN_SIGNING_KEY would win over the file: blank it, whatever the developer's shell has.
    return {**UPSTREAM_ENV, "DRAGOMAN_SIGNING_KEY": "", "DRAGOMAN_SIGNING_KEY_FILE": str(key_file)}


def exactly(reply: ResponsesReply, response_id: str):
    """A script answering `reply` under a fixed response id, so the test knows the exact output items."""
    def answer(body: dict) -> Any:
        if body.get("stream"):
            return RawStream(responses_sse(render_events(reply, response_id)), done=False)
        return ErrorReply(200, render_response(reply, response_id))  # a 200 "error" is a verbatim JSON body
    return answer


def walk_keys(value: Any) -> list[str]:
    """Every key of every object nested in `value`."""
    if isinstance(value, dict):
        return list(value) + [k for v in value.values() for k in walk_keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in walk_keys(v)]
    return []


def kinds(body: dict) -> list[str]:
    """The types of a Responses request's input items."""
    return [item.get("type", "message") for item in body["input"]]


# ---- the reasoning round trip -----------------------------------------------------------------------------


TURN_1 = ResponsesReply(reasoning=["**Reading both files**", "I need a.txt and b.txt before editing."],
                        encrypted_content=ENCRYPTED,
                        function_calls=[("call_rt_A_Qm7tRz4kLp2Vw8Nf", "Read", json.dumps({"file_path": "/p/a.txt"})),
                                        ("call_rt_B_Qm7tRz4kLp2Vw8Nf", "Read", json.dumps({"file_path": "/p/b.txt"}))],
                        usage=(300, 120, 0, 96))
TURN_1_ID = "resp_turn1"
TURN_1_REASONING = render_response(TURN_1, TURN_1_ID)["output"][0]


def turn_1(sdk: anthropic.Anthropic, upstream: ScriptedResponsesUpstream, stream: bool) -> anthropic.types.Message:
    """Turn 1: the upstream reasons, then calls Read twice; the client gets thinking and two tool_use blocks."""
    upstream.script(exactly(TURN_1, TURN_1_ID))
    message = ask(sdk, stream, tools=TOOLS, metadata=METADATA, messages=[{"role": "user", "content": "edit a and b"}])
    assert [b.type for b in message.content] == ["thinking", "tool_use", "tool_use"], message.content
    assert message.stop_reason == "tool_use"
    return message


def turn_2(sdk: anthropic.Anthropic, upstream: ScriptedResponsesUpstream, assistant_content: list,
           stream: bool) -> dict:
    """Send turn 2 with the assistant content as given; return the upstream request it caused."""
    upstream.script(ResponsesReply(text="Both files read.", reasoning="Now summarise.", encrypted_content="enc-turn2"))
    before = len(upstream.bodies)
    message = ask(sdk, stream, tools=TOOLS, metadata=METADATA, messages=[
        {"role": "user", "content": "edit a and b"},
        {"role": "assistant", "content": assistant_content},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_rt_B_Qm7tRz4kLp2Vw8Nf", "content": "b = OLD"},
            {"type": "tool_result", "tool_use_id": "call_rt_A_Qm7tRz4kLp2Vw8Nf", "content": "a = OLD"},
        ]},
    ])
    assert message.stop_reason == "end_turn" and message.content[-1].text == "Both files read."
    assert len(upstream.bodies) == before + 1
    return upstream.last_body


def assert_replayed_in_place(sent: dict) -> None:
    """Turn 1's reasoning item went back upstream unchanged, before the calls it led to."""
    assert kinds(sent) == ["message", "reasoning", "function_call", "function_call",
                           "function_call_output", "function_call_output"], sent["input"]
    reasoning = sent["input"][1]
    assert reasoning == TURN_1_REASONING, "turn 1's reasoning item must go back upstream unchanged"
    assert reasoning["id"] == TURN_1_REASONING["id"] and reasoning["encrypted_content"] == ENCRYPTED
    assert [i["call_id"] for i in sent["input"][2:4]] == ["call_rt_A_Qm7tRz4kLp2Vw8Nf", "call_rt_B_Qm7tRz4kLp2Vw8Nf"]
    assert [i["call_id"] for i in sent["input"][4:]] == ["call_rt_A_Qm7tRz4kLp2Vw8Nf", "call_rt_B_Qm7tRz4kLp2Vw8Nf"]
    assert sent["include"] == ["reasoning.encrypted_content"] and sent["store"] is False


def assert_not_replayed(sent: dict) -> None:
    """No reasoning item went upstream: the turn went on without it."""
    assert "reasoning" not in kinds(sent), sent["input"]
    assert ENCRYPTED not in json.dumps(sent)
    assert kinds(sent) == ["message", "function_call", "function_call", "function_call_output", "function_call_output"]
