"""An upstream failure means the same whether it arrives as an HTTP error answer, a failed Responses answer or a
stream's first event, over real sockets through a gateway:

- the request's own fault (invalid_request_error, Responses invalid_prompt) is the client's 400 however it came:
  never retried, never sent to a fallback, never counted by the breaker;
- the upstream refusing the gateway itself (its credential or account: 401, 402, 403; the route's model missing
  there: 404) is the route's fault: the next candidate is tried at once (a retry would be refused the same way),
  the breaker counts it, and a client left with it gets a 502 naming the gateway's upstream key, never a 500 and
  never the upstream's text;
- 408 and 409 are transient: retried and fallen back from like a 5xx, a 529 when nothing answers;
- a 503's or 529's retry-after is honoured as a 429's: beyond max_backoff the fallback is asked at once;
- a keep-alive comment is not the first byte: an overload or a dropped connection after it still falls back."""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from tests.gateway import Gateway, run_gateway
from tests.responses_helpers import signing_env
from tests.routing_helpers import (
    BACKUP_TEXT,
    KEYS_ENV,
    PRIMARY_TEXT,
    USER_HI,
    config_yaml,
    post_messages,
    route,
)
from tests.upstreams import ChatReply, ErrorReply
from tests.upstreams.anthropic_messages import (
    AnthropicError, MessageReply, RawSSE, ScriptedAnthropicUpstream, render_message_events,
)
from tests.upstreams.openai_responses import ResponsesReply, ScriptedResponsesUpstream

pytestmark = pytest.mark.timeout(30)

RETRY = {"attempts": 2, "backoff": 0.01, "max_backoff": 1}
NEVER_OPENS = {"failures": 1000, "cooldown": 86_400}
OPENS_AFTER_2 = {"failures": 2, "cooldown": 86_400}
PASSTHROUGH = dict(provider="anthropic", model="claude-opus-4-8", api_key_ref="anthropic_prod",
                   translation={"passthrough": True})
OPENAI_KEY = KEYS_ENV["OPENAI_PROD"]

TOO_LONG = "prompt is too long: 250000 tokens > 200000 maximum"


def _event(error_type: str, message: str) -> bytes:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return b"event: error\ndata: " + json.dumps(body).encode() + b"\n\n"


def _openai_error(status: int, message: str = "upstream says no", headers: dict[str, str] | None = None) -> ErrorReply:
    return ErrorReply(status, {"error": {"message": message, "type": "invalid_request_error", "code": None}},
                      headers or {})


def _wrong_key() -> ErrorReply:
    return _openai_error(401, f"Incorrect API key provided: {OPENAI_KEY}.")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ScriptedAnthropicUpstream, ScriptedResponsesUpstream]]:
    with ScriptedAnthropicUpstream() as claude, ScriptedResponsesUpstream() as responses:
        yield claude, responses


@pytest.fixture
def claude(servers) -> Iterator[ScriptedAnthropicUpstream]:
    servers[0].reset(MessageReply(text=PRIMARY_TEXT))
    yield servers[0]
    servers[0].reset()


@pytest.fixture
def responses(servers) -> Iterator[ScriptedResponsesUpstream]:
    servers[1].reset()
    yield servers[1]
    servers[1].reset()


@pytest.fixture(scope="module")
def gateway(upstreams, servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    primary, backup = upstreams
    claude, responses = servers
    chat = dict(retry=RETRY, breaker=NEVER_OPENS)
    text = config_yaml([
        route("chat", primary.base_url, fallbacks=["backup"], **chat),
        route("chat_alone", primary.base_url, **chat),
        route("chat_breaker", primary.base_url, fallbacks=["backup"], retry=RETRY, breaker=OPENS_AFTER_2),
        route("claude", claude.base_url, fallbacks=["backup"], retry=RETRY, breaker=NEVER_OPENS, **PASSTHROUGH),
        route("claude_alone", claude.base_url, retry=RETRY, breaker=NEVER_OPENS, **PASSTHROUGH),
        route("claude_breaker", claude.base_url, fallbacks=["backup"], retry=RETRY, breaker=OPENS_AFTER_2,
              **PASSTHROUGH),
        route("responses", responses.responses_url, fallbacks=["backup"], **chat),
        route("backup", backup.base_url, retry={"attempts": 1}, breaker=NEVER_OPENS),
    ])
    env = {**KEYS_ENV, **signing_env(tmp_path_factory.mktemp("signing") / "signing.key")}
    with run_gateway(text, env=env) as gw:
        yield gw


def _post(gateway: Gateway, model: str, stream: bool):
    return post_messages(gateway, {"model": model, "max_tokens": 64, "messages": USER_HI, "stream": stream})


def _answer_text(resp) -> str:
    """The text of a 200 answer, JSON or streamed."""
    assert resp.status == 200, resp.text[:500]
    if resp.headers["content-type"].startswith("application/json"):
        return "".join(block["text"] for block in resp.json()["content"] if block["type"] == "text")
    text = []
    for line in resp.body.decode().splitlines():
        if line.startswith("data: "):
            data = json.loads(line[6:])
            if data.get("type") == "content_block_delta":
                text.append(data["delta"].get("text", ""))
    return "".join(text)


def _error(resp) -> tuple[int, str, str]:
    body = resp.json()
    assert body["type"] == "error", resp.text
    return resp.status, body["error"]["type"], body["error"]["message"]


# ---- the request's own fault, in a stream's first event: the client's 400, as for a JSON answer --------------


@pytest.mark.parametrize("model", ["claude", "claude_alone"])
@pytest.mark.parametrize("stream", [False, True], ids=["json_answer_400", "stream_first_event"])
def test_invalid_request_is_the_clients_400_however_it_arrives(model, stream, gateway, claude, backup):
    claude.script(RawSSE([_event("invalid_request_error", TOO_LONG)]) if stream
                  else AnthropicError(400, "invalid_request_error", TOO_LONG))
    status, error_type, message = _error(_post(gateway, model, stream))
    assert (status, error_type) == (400, "invalid_request_error") and TOO_LONG in message, message
    assert len(claude.requests) == 1, "the request's own fault is not retried"
    assert not backup.requests, "nor sent to a fallback"


def test_invalid_request_in_a_streams_first_event_never_opens_the_breaker(gateway, claude):
    claude.script(RawSSE([_event("invalid_request_error", TOO_LONG)]))
    for _ in range(OPENS_AFTER_2["failures"] + 1):
        assert _error(_post(gateway, "claude_breaker", True))[0] == 400
    claude.script(MessageReply(text=PRIMARY_TEXT))
    assert _answer_text(_post(gateway, "claude_breaker", True)) == PRIMARY_TEXT  # not skipped
    assert len(claude.requests) == OPENS_AFTER_2["failures"] + 2


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_responses_invalid_prompt_is_the_clients_400_and_never_reaches_the_fallback(stream, gateway, responses,
                                                                                     backup):
    responses.script(ResponsesReply(status="failed", error=("invalid_prompt", "Invalid prompt: flagged")))
    status, error_type, message = _error(_post(gateway, "responses", stream))
    assert (status, error_type) == (400, "invalid_request_error") and "flagged" in message, message
    assert len(responses.requests) == 1 and not backup.requests


# ---- the upstream refusing the gateway itself: the next candidate at once, a breaker failure, else a 502 -----


@pytest.mark.parametrize("status", [401, 402, 403, 404])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_refusing_the_gateway_falls_back_without_a_retry(status, stream, gateway, primary, backup):
    primary.script(_openai_error(status))
    assert _answer_text(_post(gateway, "chat", stream)) == BACKUP_TEXT
    assert len(primary.requests) == 1, "the same upstream would refuse a retry the same way"
    assert len(backup.requests) == 1


def test_stream_first_event_refusing_the_gateway_credential_falls_back_like_a_401(gateway, claude, backup):
    claude.script(RawSSE([_event("authentication_error", "invalid x-api-key")]))
    assert _answer_text(_post(gateway, "claude", True)) == BACKUP_TEXT
    assert len(claude.requests) == 1 and len(backup.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_credential_refused_with_no_fallback_is_a_502_naming_the_gateways_upstream_key(status, gateway, primary):
    primary.script(_wrong_key() if status == 401 else _openai_error(403, f"key {OPENAI_KEY} may not"))
    resp = _post(gateway, "chat_alone", False)
    status_, error_type, message = _error(resp)
    assert (status_, error_type) == (502, "api_error"), message
    assert "gateway's own upstream credential" in message and "api_key_ref" in message, message
    assert OPENAI_KEY not in resp.text and "Incorrect API key" not in resp.text
    assert len(primary.requests) == 1


def test_model_missing_upstream_with_no_fallback_is_a_502(gateway, primary):
    primary.script(_openai_error(404, "The model `gpt-5` does not exist"))
    status, error_type, message = _error(_post(gateway, "chat_alone", False))
    assert (status, error_type) == (502, "api_error") and "does not exist" in message, message


def test_credential_refusals_open_the_breaker(gateway, primary, backup):
    primary.script(_wrong_key())
    for _ in range(OPENS_AFTER_2["failures"]):
        assert _answer_text(_post(gateway, "chat_breaker", False)) == BACKUP_TEXT
    primary.script(ChatReply(text=PRIMARY_TEXT))
    assert _answer_text(_post(gateway, "chat_breaker", False)) == BACKUP_TEXT  # the open breaker skips it
    assert len(primary.requests) == OPENS_AFTER_2["failures"]


# ---- 408 and 409: transient ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409])
def test_408_and_409_are_retried_then_fall_back(status, gateway, primary, backup):
    primary.script(_openai_error(status))
    assert _answer_text(_post(gateway, "chat", False)) == BACKUP_TEXT
    assert len(primary.requests) == RETRY["attempts"] and len(backup.requests) == 1


@pytest.mark.parametrize("status", [408, 409])
def test_408_and_409_with_no_fallback_are_a_529_claude_code_retries(status, gateway, primary):
    primary.script(_openai_error(status))
    resp_status, error_type, message = _error(_post(gateway, "chat_alone", False))
    assert (resp_status, error_type) == (529, "overloaded_error") and f"HTTP {status}" in message, message


# ---- retry-after on any retryable status -------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 529])
def test_5xx_retry_after_beyond_max_backoff_goes_to_the_fallback_at_once(status, gateway, primary, backup):
    primary.script(_openai_error(status, "overloaded", {"retry-after": "60"}))
    assert _answer_text(_post(gateway, "chat", False)) == BACKUP_TEXT
    assert len(primary.requests) == 1, "a retry-after over max_backoff must not be waited for on this route"
    assert len(backup.requests) == 1


# ---- a keep-alive comment is not the first byte --------------------------------------------------------------

KEEP_ALIVE = b": keep-alive\n\n"


@pytest.mark.parametrize("then", ["overloaded_event", "dropped_connection"])
def test_a_keep_alive_comment_before_the_first_event_still_falls_back(then, gateway, claude, backup):
    # The comment is its own write, a moment before what follows, so the gateway reads it on its own.
    if then == "overloaded_event":
        claude.script(RawSSE([KEEP_ALIVE, _event("overloaded_error", "Overloaded")], delay=0.2))
    else:
        claude.script(RawSSE([KEEP_ALIVE, b"event: message_start\n"], delay=0.2, disconnect_after=1))
    assert _answer_text(_post(gateway, "claude", True)) == BACKUP_TEXT
    assert len(claude.requests) == RETRY["attempts"] and len(backup.requests) == 1


def test_an_answer_after_a_keep_alive_comment_is_relayed_whole(gateway, claude):
    events = render_message_events(MessageReply(text=PRIMARY_TEXT))
    claude.script(RawSSE([KEEP_ALIVE, *events], delay=0.05))
    resp = _post(gateway, "claude", True)
    assert resp.status == 200
    # dropped when read on its own (before any event); one read with the first event would carry it along
    assert resp.body.removeprefix(KEEP_ALIVE) == b"".join(events)
    assert _answer_text(resp) == PRIMARY_TEXT


def test_404_for_a_model_name_the_client_sent_through_is_the_clients_404(primary, tmp_path_factory):
    # The zero-config `openai` route sends any other model name verbatim: a 404 then names the client's model,
    # not the route's, so it is returned as is and counted against no upstream.
    primary.script(_openai_error(404, "The model `gpt-nonexistent` does not exist"))
    env = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": primary.base_url, "DRAGOMAN_AUDIT_STORE": ""}
    with run_gateway(None, env=env) as gw:
        status, error_type, message = _error(_post(gw, "gpt-nonexistent", False))
    assert (status, error_type) == (404, "not_found_error") and "does not exist" in message, message
    assert len(primary.requests) == 1
