"""A text answer from a route on the OpenAI Responses API (design §4), through the `anthropic` SDK as JSON and
streamed: the text, end_turn or max_tokens when the response is incomplete, and the usage with cached input
tokens counted as cache reads."""

from __future__ import annotations

import pytest

from tests.gateway import ROUTE_NAME
from tests.sdk_helpers import ask, blocks, json_and_stream
from tests.upstreams.openai_responses import ResponsesReply

pytestmark = pytest.mark.timeout(30)


@json_and_stream
def test_text_answer_with_end_turn_and_usage(stream, responses_client, responses_upstream):
    responses_upstream.script(ResponsesReply(text="Hello from the Responses API.", usage=(120, 9, 0, 0)))
    message = ask(responses_client, stream)
    assert blocks(message.content) == [("text", "Hello from the Responses API.")]
    assert message.stop_reason == "end_turn"
    assert message.model == ROUTE_NAME and message.role == "assistant"
    assert message.usage.input_tokens == 120 and message.usage.output_tokens == 9
    assert len(responses_upstream.bodies) == 1 and bool(responses_upstream.last_body.get("stream")) is stream


@json_and_stream
def test_usage_reports_cached_tokens_as_cache_reads(stream, responses_client, responses_upstream):
    responses_upstream.script(ResponsesReply(text="ok", usage=(1000, 42, 768, 30)))
    usage = ask(responses_client, stream).usage
    assert usage.cache_read_input_tokens == 768
    assert usage.input_tokens == 1000 - 768
    assert usage.output_tokens == 42


@json_and_stream
def test_incomplete_is_max_tokens(stream, responses_client, responses_upstream):
    responses_upstream.script(ResponsesReply(text="The story begins", status="incomplete",
                                             incomplete_reason="max_output_tokens"))
    message = ask(responses_client, stream)
    assert blocks(message.content) == [("text", "The story begins")]
    assert message.stop_reason == "max_tokens"

