"""A request the upstream refuses as its own fault — an input over the context window, a bad image — is the client's
400 invalid_request_error however the Responses upstream says so: an HTTP 400, a streamed `response.failed` or
`error` event, or a `failed` JSON answer. It is never retried, fallen back from or taken for an overload (529),
which Claude Code would retry instead of telling the user to compact. And a failure right after the stream's
opening events (response.created, response.in_progress) is an HTTP error whether or not those came in a read of
their own: the client's stream does not begin before the answer does."""

from __future__ import annotations

import anthropic
import pytest

from tests.gateway import ROUTE_NAME
from tests.routing_helpers import USER_HI
from tests.sdk_helpers import ask, stream_raw
from tests.upstreams.openai_responses import ErrorReply, RawStream, ResponsesReply, openai_error, render_events, sse_events

pytestmark = pytest.mark.timeout(30)

TOO_LONG = "Your input exceeds the context window of this model. Please adjust your input and try again."


def _paced(events: list[dict]) -> RawStream:
    """The events one write apart, as OpenAI sends them while it works (each usually a read of its own)."""
    return RawStream(sse_events(events), delay=0.05, done=False)


def _opening() -> list[dict]:
    return render_events(ResponsesReply(text="never"))[:2]  # response.created, response.in_progress


def _failed(code: str, message: str) -> list[dict]:
    return [*_opening(), render_events(ResponsesReply(status="failed", error=(code, message)))[-1]]


def _error_event(code: str, message: str) -> list[dict]:
    return [*_opening(), {"type": "error", "code": code, "message": message, "param": "input"}]


@pytest.mark.parametrize(("events", "said"), [
    pytest.param(_failed("context_length_exceeded", TOO_LONG), "context window", id="failed-context-length"),
    pytest.param(_error_event("context_length_exceeded", TOO_LONG), "context window", id="error-event-context-length"),
    pytest.param(_failed("image_too_large", "Image too large"), "Image too large", id="failed-image-too-large"),
    pytest.param(_failed("invalid_image_url", "Could not fetch the image"), "fetch the image", id="failed-image-url"),
])
def test_a_streamed_request_fault_is_a_400_never_retried(events, said, responses_client, responses_gateway,
                                                         responses_upstream):
    responses_upstream.script(_paced(events))
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(responses_client, True)
    assert caught.value.body["error"]["type"] == "invalid_request_error" and said in caught.value.body["error"]["message"]
    assert len(responses_upstream.requests) == 1, "a request's own fault is not retried"
    status, answer = stream_raw(responses_gateway, model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert status == 400 and answer[0][1]["error"]["type"] == "invalid_request_error", answer


def test_a_failed_json_answer_over_the_context_window_is_a_400(responses_client, responses_upstream):
    responses_upstream.script(ResponsesReply(status="failed", error=("context_length_exceeded", TOO_LONG)))
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(responses_client, False)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert len(responses_upstream.requests) == 1


def test_the_same_refusal_as_an_http_400_is_the_same_error(responses_client, responses_upstream):
    responses_upstream.script(ErrorReply(400, openai_error(TOO_LONG, "invalid_request_error", "context_length_exceeded")))
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(responses_client, True)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert len(responses_upstream.requests) == 1


def test_an_overload_right_after_the_opening_events_is_retried_as_an_http_error(responses_gateway,
                                                                                responses_upstream):
    # response.created came in a read of its own: were message_start sent on it, the client would have a 200 whose
    # stream ends in an error event, and the gateway could no longer retry or fall back.
    responses_upstream.script(_paced(_failed("server_error", "The model failed to generate a response.")))
    status, answer = stream_raw(responses_gateway, model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert status == 529 and answer[0][1]["error"]["type"] == "overloaded_error", answer
    assert len(responses_upstream.requests) == 2, "an overload before the answer began is retried"
