"""llama.cpp's server writes a failure mid-stream as an `error: {...}` SSE line, not `data:`, on every route it serves
(/v1/responses too). On a Responses route, over real sockets, asked with the official `anthropic` SDK, it is the
failure a Chat route makes of it (review 13): before the first byte the failure it reports (its code 400: the
request's fault, never retried; a 500 falls back), after it an `error` event carrying the server's message, never an
answer cut short with the server's word lost; the upstream's text redacted on the way (client, log)."""

from __future__ import annotations

from typing import Iterator

import anthropic
import pytest

from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, USER_HI, config_yaml, route, sdk
from tests.upstreams.openai_responses import ResponsesReply, RawStream, ScriptedResponsesUpstream, render_events, sse_events

pytestmark = pytest.mark.timeout(60)

BACKUP_TEXT = "from the backup"
CONTEXT_EXCEEDED = (b'error: {"code":400,"message":"the request exceeds the available context size, try increasing '
                    b'it","type":"exceed_context_size_error"}\n\n')
LEAKED_KEY = "sk-ant-api03-" + "x" * 40
# Newer builds: the same failure as a bare `data:` line, nested in `error`, with no type and no event name.
CONTEXT_EXCEEDED_DATA = (b'data: {"error":{"code":400,"message":"the request exceeds the available context size, try '
                         b'increasing it","type":"exceed_context_size_error"}}\n\n')
CRASHED = b'error: {"code":500,"message":"llama_decode failed, api_key=' + LEAKED_KEY.encode() + b'","type":"server_error"}\n\n'


def _responses(name: str, url: str, **fields) -> dict:
    entry = route(name, url, retry={"attempts": 1}, **fields)
    entry["upstream"]["api"] = "responses"
    return entry


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ScriptedResponsesUpstream, Gateway]]:
    with ScriptedResponsesUpstream() as primary, ScriptedResponsesUpstream(ResponsesReply(text=BACKUP_TEXT)) as backup:
        routes = [_responses("main", primary.base_url, fallbacks=["spare"]), _responses("spare", backup.base_url),
                  _responses("alone", primary.base_url)]
        with run_gateway(config_yaml(routes), env=KEYS_ENV) as gateway:
            yield primary, gateway


@pytest.fixture
def primary(servers) -> ScriptedResponsesUpstream:
    servers[0].reset()
    return servers[0]


@pytest.fixture
def client(servers) -> anthropic.Anthropic:
    return sdk(servers[1])


def _ask(client: anthropic.Anthropic, model: str) -> anthropic.types.Message:
    with client.messages.stream(model=model, max_tokens=500, messages=USER_HI) as events:
        return events.get_final_message()


def _opening() -> tuple[list[bytes], str]:
    """A Responses stream up to its first text delta, and that delta's text: the client's first bytes."""
    events = render_events(ResponsesReply(text="I will "))
    first = next(n for n, ev in enumerate(events) if ev["type"] == "response.output_text.delta")
    return sse_events(events[: first + 1]), events[first]["delta"]


@pytest.mark.parametrize("overflow", [CONTEXT_EXCEEDED, CONTEXT_EXCEEDED_DATA], ids=["error line", "data line"])
def test_an_error_line_before_the_first_byte_is_the_failure_it_reports(overflow: bytes, primary, client,
                                                                       servers) -> None:
    primary.script(RawStream([overflow, b"data: [DONE]\n\n"], done=False))
    with pytest.raises(anthropic.BadRequestError) as refused:  # the request's fault: the client hears it as a 400
        _ask(client, "alone")
    assert "exceeds the available context size" in str(refused.value)
    primary.script(RawStream([CRASHED], done=False))
    assert _ask(client, "main").content[0].text == BACKUP_TEXT  # a server error: the fallback answers
    primary.script(RawStream([CRASHED], done=False))
    with pytest.raises(anthropic.APIStatusError) as failed:
        _ask(client, "alone")
    assert failed.value.status_code >= 500 and "llama_decode failed" in str(failed.value)
    assert LEAKED_KEY not in str(failed.value.body) and LEAKED_KEY not in servers[1].stderr_text()


@pytest.mark.parametrize("line", [CONTEXT_EXCEEDED, CONTEXT_EXCEEDED_DATA, CRASHED],
                         ids=["context exceeded", "context exceeded, data line", "crashed"])
def test_an_error_line_after_the_first_byte_is_an_error_event(line: bytes, primary, client, servers) -> None:
    opening, said = _opening()
    primary.script(RawStream([*opening, line, b"data: [DONE]\n\n"], done=False, hold_after=len(opening)))
    text = ""
    with pytest.raises(anthropic.APIStatusError) as raised:
        with client.messages.stream(model="alone", max_tokens=500, messages=USER_HI) as events:
            for event in events:
                if event.type == "content_block_delta":
                    text += event.delta.text
                    primary.release()  # the client has the first bytes: the error line comes after them
    assert text == said
    message = str(raised.value)
    assert ("llama_decode failed" if line is CRASHED else "exceeds the available context size") in message
    assert LEAKED_KEY not in message and LEAKED_KEY not in servers[1].stderr_text()


@pytest.mark.parametrize("line", [b"error: llama_decode failed: out of memory\n\n",
                                  b"event: error\ndata: llama_decode failed: out of memory\n\n"],
                         ids=["error line", "error event"])
def test_an_error_whose_data_is_plain_text_keeps_its_message(line: bytes, primary, client) -> None:
    primary.script(RawStream([line], done=False))
    with pytest.raises(anthropic.APIStatusError) as failed:
        _ask(client, "alone")
    assert "llama_decode failed: out of memory" in str(failed.value)  # the server's words, not "not valid JSON"

