"""Parallel function calls from a route on the OpenAI Responses API become tool_use blocks with the upstream's call
ids, in order, their arguments bridged fragment by fragment as they arrive."""

from __future__ import annotations

import json

import pytest

from tests.anthropic_events import check_sse_grammar, reassemble
from tests.gateway import ROUTE_NAME
from tests.responses_helpers import TOOLS
from tests.routing_helpers import USER_HI
from tests.sdk_helpers import ask, blocks, json_and_stream, stream_raw
from tests.upstreams.openai_responses import ResponsesReply

pytestmark = pytest.mark.timeout(30)


@json_and_stream
def test_six_parallel_function_calls_with_fragmented_arguments(stream, responses_client, responses_upstream):
    calls = [(f"call_{'abcdef'[n]}{n}x7QpRz4kLp2Vw8Nf5", "Read", json.dumps({"file_path": f"/home/dev/project/{'abcdef'[n]}.txt",
                                                                  "limit": 100 + n}))
             for n in range(6)]
    responses_upstream.script(ResponsesReply(text="Reading all six.", function_calls=calls, pieces=9))
    message = ask(responses_client, stream, tools=TOOLS)
    assert blocks(message.content) == [("text", "Reading all six.")] + [
        ("tool_use", call_id, name, json.loads(args)) for call_id, name, args in calls]
    assert message.stop_reason == "tool_use"


def test_streamed_parallel_calls_are_well_formed_events(responses_gateway, responses_upstream):
    calls = [(f"call_{n}_Qm7tRz4kLp2Vw8Nf5", "Read", json.dumps({"file_path": f"/tmp/{n}.py"})) for n in range(6)]
    responses_upstream.script(ResponsesReply(reasoning="Read them all.", function_calls=calls, pieces=6))
    status, events = stream_raw(responses_gateway, model=ROUTE_NAME, max_tokens=2000, messages=USER_HI, tools=TOOLS)
    assert status == 200
    assert check_sse_grammar(events) == "message_stop"
    message = reassemble([data for _, data in events])
    assert [b["type"] for b in message["content"]] == ["thinking"] + ["tool_use"] * 6
    assert [b["id"] for b in message["content"][1:]] == [c[0] for c in calls]
    assert message["stop_reason"] == "tool_use"
    fragments = [d for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
    assert len(fragments) > 6, "arguments are bridged as they arrive, not buffered whole"

