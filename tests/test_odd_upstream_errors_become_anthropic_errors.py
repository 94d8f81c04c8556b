"""Upstream errors in shapes the gateway did not expect still reach the client as Anthropic errors, over real sockets,
never as a 500 or a lost answer, and never with a traceback in the log:
- an error body nested deeper than the decoder follows (its text is the message; the fallback is tried);
- a 429 whose Retry-After is not ASCII (aiohttp hands such bytes over as surrogates, which the client's answer
  cannot carry: it is left out);
- a redirect whose Location is not UTF-8 (its host, quoted in the message, is escaped: before, the message held
  surrogates and the answer was a plain-text 500), and any error message holding a lone surrogate;
- a Responses `error` event whose message or code is an object or a number, before the first byte and after it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import pytest

from dragoman import errors as E
from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, config_yaml, post_stream_then, route
from tests.upstreams import ChatReply, RawStream, ScriptedChatUpstream
from tests.upstreams.openai_chat import RawBody
from tests.upstreams.openai_responses import ResponsesReply, ScriptedResponsesUpstream, render_events, sse_events

pytestmark = pytest.mark.timeout(60)


def _no_traceback(gateway: Gateway) -> None:
    log = gateway.stderr_text()
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]


def _post(gateway: Gateway, model: str, stream: bool = False) -> tuple[int, bytes, dict[str, str]]:
    conn = gateway.connection()
    body = {"model": model, "max_tokens": 50, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    conn.request("POST", "/v1/messages", json.dumps(body), {"content-type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}


def _deep_error(levels: int) -> bytes:
    return b'{"error":{"message":"x","param":' + b"[" * levels + b"]" * levels + b"}}"


@pytest.mark.parametrize("levels", [1_200, 100_000])
def test_an_error_body_nested_too_deep_is_an_overloaded_error_and_the_fallback_answers(levels: int) -> None:
    with ScriptedChatUpstream() as primary, ScriptedChatUpstream() as backup:
        primary.script(RawBody(_deep_error(levels), "application/json", status=500))
        backup.script(ChatReply(text="from the backup"))
        routes = [route("main", primary.base_url, fallbacks=["spare"], retry={"attempts": 1}),
                  route("spare", backup.base_url), route("alone", primary.base_url, retry={"attempts": 1})]
        with run_gateway(config_yaml(routes), env=KEYS_ENV) as gateway:
            status, body, _ = _post(gateway, "main")
            assert status == 200 and json.loads(body)["content"][0]["text"] == "from the backup"
            status, body, _ = _post(gateway, "alone")
            error = json.loads(body)
            assert status == 529 and error["type"] == "error" and error["error"]["type"] == "overloaded_error"
            _no_traceback(gateway)


class RawUpstream:
    """An HTTP/1.1 server on 127.0.0.1 that answers every request with the same bytes, as written: for headers no
    HTTP library would let a test send."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        self.requests += 1
        writer.write(self.answer)
        await writer.drain()
        writer.close()

    def __enter__(self) -> RawUpstream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def test_a_rate_limit_with_a_retry_after_that_is_not_ascii_reaches_the_client() -> None:
    body = json.dumps({"error": {"message": "Rate limit reached", "type": "tokens", "code": "rate_limit_exceeded"}})
    answer = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: \xff7\r\n"
              b"Retry-After-Ms: 7000\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body.encode()))
    with RawUpstream(answer) as upstream:
        config = config_yaml([route("gpt", f"http://127.0.0.1:{upstream.port}/v1", retry={"attempts": 1})])
        with run_gateway(config, env=KEYS_ENV) as gateway:
            for stream in (False, True):
                status, raw, headers = _post(gateway, "gpt", stream)
                error = json.loads(raw)
                assert status == 429 and error["error"]["type"] == "rate_limit_error", raw
                assert "retry-after" not in headers and headers["retry-after-ms"] == "7000"
            assert upstream.requests == 2
            _no_traceback(gateway)


def test_a_redirect_to_a_host_that_is_not_utf8_is_an_overloaded_error() -> None:
    answer = b"HTTP/1.1 302 Found\r\nLocation: http://\xff\xfe.example/x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with RawUpstream(answer) as upstream:
        config = config_yaml([route("gpt", f"http://127.0.0.1:{upstream.port}/v1", retry={"attempts": 1})])
        with run_gateway(config, env=KEYS_ENV) as gateway:
            for stream in (False, True):
                status, raw, headers = _post(gateway, "gpt", stream)
                assert status == 529 and headers["content-type"] == "application/json", raw
                error = json.loads(raw)
                assert error["type"] == "error" and error["error"]["type"] == "overloaded_error", raw
                assert "redirected the request to \\udcff\\udcfe.example (HTTP 302)" in error["error"]["message"]
            assert upstream.requests == 2
            _no_traceback(gateway)


def test_an_error_message_with_a_lone_surrogate_is_still_an_anthropic_error_body() -> None:
    body = json.loads(E.error_body("overloaded_error", "upstream said \udcff\udcfe"))
    assert body == {"type": "error", "error": {"type": "overloaded_error", "message": "upstream said \\udcff\\udcfe"}}


ODD_ERRORS = [  # messages and codes other servers have sent in a Responses `error` event
    {"type": "error", "error": {"message": {"detail": "sk-ant-api03-" + "x" * 40}}},
    {"type": "error", "error": {"message": 42}},
    {"type": "error", "error": {"message": ["a", "b"], "code": {"n": [[1]]}}},
    {"type": "error", "code": {"nested": [[[1]]]}, "message": "the upstream broke"},
]


@pytest.fixture(scope="module")
def responses_env() -> Iterator[tuple[Gateway, ScriptedResponsesUpstream]]:
    with ScriptedResponsesUpstream() as upstream:
        entry = route("resp", upstream.base_url, retry={"attempts": 1})
        entry["upstream"]["api"] = "responses"
        with run_gateway(config_yaml([entry]), env=KEYS_ENV) as gateway:
            yield gateway, upstream
            _no_traceback(gateway)


@pytest.mark.parametrize("odd", ODD_ERRORS)
def test_a_responses_error_event_with_an_odd_message_ends_the_answer_cleanly(responses_env, odd: dict) -> None:  # noqa: ANN001
    gateway, upstream = responses_env
    opening = render_events(ResponsesReply(text="partial"))[:-1]  # all but response.completed
    upstream.reset(RawStream(sse_events([odd]), done=False))
    status, raw, _ = _post(gateway, "resp", stream=True)  # the first event: before the first byte, an error answer
    error = json.loads(raw)
    assert status == 529 and error["error"]["type"] == "overloaded_error", raw
    assert "sk-ant-api03" not in raw.decode()

    upstream.reset(RawStream(sse_events([*opening, odd]), done=False, hold_after=len(opening)))
    body = {"model": "resp", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    answer = post_stream_then(gateway, body, upstream.release)  # after it: the stream ends with an `error` event
    events = [json.loads(line[6:]) for line in answer.body.split(b"\n") if line.startswith(b"data: ")]
    assert answer.status == 200 and events[-1]["type"] == "error", answer.body
    assert "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta") == "partial"
    assert "sk-ant-api03" not in answer.body.decode()
