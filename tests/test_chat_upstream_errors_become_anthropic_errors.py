"""An OpenAI Chat upstream that fails before its first byte (an HTTP error, a dropped connection, no server, no
answer in time) gives the client an Anthropic error of the matching type and status, streamed or not, with the
upstream's key never in it."""

from __future__ import annotations

import anthropic
import pytest

from tests.gateway import ROUTE_NAME, UPSTREAM_KEY, Gateway, free_port
from tests.routing_helpers import USER_HI, sdk
from tests.sdk_helpers import ask
from tests.upstreams import Disconnect, ErrorReply, Hang

pytestmark = pytest.mark.timeout(60)


def _rate_limited() -> ErrorReply:
    return ErrorReply(429, {"error": {"message": "Rate limit reached for gpt-5 on tokens per min (TPM).",
                                      "type": "tokens", "code": "rate_limit_exceeded"}}, {"retry-after": "3"})


def _assert_anthropic_error(gateway: Gateway, stream: bool, status: int, error_type: str) -> None:
    with sdk(gateway, api_key="anything", timeout=30) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            ask(client, stream, max_tokens=100)
    assert caught.value.status_code == status, caught.value.response.text
    assert caught.value.body["error"]["type"] == error_type
    assert set(caught.value.body) == {"type", "error"} and caught.value.body["type"] == "error"


def test_upstream_429_is_a_rate_limit_error_keeping_retry_after(client, chat_upstream):
    chat_upstream.script(_rate_limited())
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert caught.value.response.headers.get("retry-after") == "3"
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_upstream_429_before_the_first_byte_of_a_stream_is_an_http_error(client, chat_upstream):
    chat_upstream.script(_rate_limited())
    with pytest.raises(anthropic.RateLimitError) as caught:
        with client.messages.stream(model=ROUTE_NAME, max_tokens=100, messages=USER_HI) as stream:
            stream.get_final_message()
    assert caught.value.response.headers.get("retry-after") == "3"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_500_is_overloaded(stream, gateway, chat_upstream):
    chat_upstream.script(ErrorReply(500, {"error": {"message": "The server had an error", "type": "server_error"}}))
    _assert_anthropic_error(gateway, stream, 529, "overloaded_error")


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_disconnect_before_answering_is_overloaded(stream, gateway, chat_upstream):
    chat_upstream.script(Disconnect())
    _assert_anthropic_error(gateway, stream, 529, "overloaded_error")


def test_upstream_401_is_an_api_error_that_does_not_leak_the_upstream_key(client, chat_upstream):
    chat_upstream.script(ErrorReply(401, {"error": {
        "message": f"Incorrect API key provided: {UPSTREAM_KEY}. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error", "code": "invalid_api_key"}}))
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert caught.value.status_code == 502  # the gateway's upstream refused its credential: never a 500
    assert caught.value.body["error"]["type"] == "api_error"
    assert "gateway's own upstream credential" in caught.value.body["error"]["message"]
    assert UPSTREAM_KEY not in caught.value.response.text


def test_upstream_400_is_an_invalid_request_naming_the_upstream_reason(client, chat_upstream):
    chat_upstream.script(ErrorReply(400, {"error": {
        "message": "Invalid 'messages[2].tool_call_id': no matching tool call.",
        "type": "invalid_request_error", "code": "invalid_value"}}))
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "tool_call_id" in caught.value.body["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_unreachable_upstream_is_overloaded(stream, gateway_for):
    closed = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    _assert_anthropic_error(gateway_for(closed), stream, 529, "overloaded_error")


def test_upstream_silent_past_first_byte_timeout_is_overloaded(gateway_for, chat_upstream):
    slow = gateway_for(chat_upstream, timeout={"connect": 2, "first_byte": 1, "idle": 1})
    chat_upstream.script(Hang(20))
    _assert_anthropic_error(slow, False, 529, "overloaded_error")
