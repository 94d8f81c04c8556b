"""A Responses stream that fails after its first bytes (a `failed` response, an `error` event mid-text) ends the
client's stream with an Anthropic `error` event, which the SDK raises: never a clean end of a cut answer."""

from __future__ import annotations

import anthropic
import pytest

from tests.anthropic_events import check_sse_grammar
from tests.gateway import ROUTE_NAME
from tests.routing_helpers import USER_HI
from tests.sdk_helpers import ask, stream_raw
from tests.upstreams.openai_responses import RawStream, ResponsesReply, render_events, sse_events

pytestmark = pytest.mark.timeout(30)


def test_failed_response_mid_stream_raises_in_the_sdk(responses_client, responses_gateway, responses_upstream):
    # The answer has begun (its message item is out) and the gateway has sent the first bytes when the failure
    # arrives (paced: a failure in the very first read is still the gateway's to retry, an HTTP error). A failure
    # right after response.created is before any answer: an HTTP error (test_responses_failure_before_the_answer).
    opening = render_events(ResponsesReply(text="partial"))[:-1]  # all but response.completed
    failed = render_events(ResponsesReply(status="failed"))[-1]
    responses_upstream.script(RawStream(sse_events([*opening, failed]), delay=0.1, done=False))
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(responses_client, True)
    assert "failed to generate" in str(caught.value)
    status, events = stream_raw(responses_gateway, model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert status == 200
    assert check_sse_grammar(events) == "error" and events[-1][1]["error"]["type"] == "api_error"
    assert "message_stop" not in [name for name, _ in events]


def test_error_event_mid_stream_raises_in_the_sdk(responses_client, responses_gateway, responses_upstream):
    # The text is already flowing when the upstream gives up: an `error` event, never a clean end_turn.
    reply = ResponsesReply(text="a partial answer that never ends", error_after=7,
                           error=("rate_limit_exceeded", "Rate limit reached mid-stream."), chunk_delay=0.05)
    responses_upstream.script(reply)
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(responses_client, True)
    assert "Rate limit reached mid-stream." in str(caught.value)
    status, events = stream_raw(responses_gateway, model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert status == 200
    assert check_sse_grammar(events) == "error"
    names = [name for name, _ in events]
    assert "content_block_delta" in names, "the failure came after text had been bridged"
    assert names[-1] == "error" and events[-1][1]["error"]["type"] == "rate_limit_error"
    assert "message_delta" not in names and "message_stop" not in names

