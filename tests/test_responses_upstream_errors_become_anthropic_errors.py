"""A Responses upstream that fails before its first byte (a `failed` JSON response, an HTTP 429 or 500) gives the
client an Anthropic error of the matching type and status, with the upstream's retry-after kept."""

from __future__ import annotations

import anthropic
import pytest

from tests.sdk_helpers import ask, json_and_stream
from tests.upstreams.openai_responses import ErrorReply, ResponsesReply, openai_error

pytestmark = pytest.mark.timeout(30)


def test_failed_json_response_is_an_http_error(responses_client, responses_upstream):
    responses_upstream.script(ResponsesReply(status="failed", error=("server_error", "boom")))
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(responses_client, False)
    assert caught.value.status_code == 529 and caught.value.body["error"]["type"] == "overloaded_error"


@json_and_stream
def test_http_429_before_the_first_byte_is_a_rate_limit_error(stream, responses_client, responses_upstream):
    responses_upstream.script(ErrorReply(429, openai_error("Rate limit reached for gpt-5 on tokens per min (TPM).",
                                                           "tokens", "rate_limit_exceeded"), {"retry-after": "1"}))
    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(responses_client, stream)
    assert caught.value.status_code == 429
    assert caught.value.body == {"type": "error", "error": caught.value.body["error"]}
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert caught.value.response.headers.get("retry-after") == "1"


@json_and_stream
def test_http_500_before_the_first_byte_is_overloaded(stream, responses_client, responses_upstream):
    responses_upstream.script(ErrorReply(500, openai_error("The server had an error while processing your request.",
                                                           "server_error")))
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(responses_client, stream)
    assert caught.value.status_code == 529
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "overloaded_error"

