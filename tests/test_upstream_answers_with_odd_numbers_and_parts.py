"""An OpenAI-compatible upstream's answer may say anything in fields the gateway reads, and none of it stops the
gateway, over real sockets:
- token counts past 64 bits or below zero: the client gets counts of at least 0, and the audit record keeps 0 to a
  billion, so the writer goes on writing (a count past SQLite's integers stopped it at that record's batch, retried
  until 10,000 newer records pushed it out) and a cost is never negative (a refund to budgets);
- a list of content parts whose `text` is null or not a string, in a JSON answer or a stream: the string parts are
  the text (a join of anything else was a TypeError: a 500, or a stream cut without its error event)."""

from __future__ import annotations

import json

import anthropic

from dragoman.exchange.audit import MAX_TOKEN_COUNT
from tests.audit_helpers import wait_record
from tests.gateway import Gateway
from tests.upstreams import RawStream, ScriptedChatUpstream
from tests.upstreams.chat_chunks import chat_chunk
from tests.upstreams.openai_chat import RawBody

MODEL = "gpt-5-via-gateway"  # the conftest gateway's route


def _completion(content: object, usage: dict) -> bytes:
    return json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-5", "usage": usage,
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": content}}]}).encode()


def _sdk(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key="sk-client", max_retries=0, timeout=20)


def test_token_counts_past_64_bits_or_below_zero_are_bounded_and_records_keep_being_written(
        gateway: Gateway, chat_upstream: ScriptedChatUpstream) -> None:
    chat_upstream.script(RawBody(_completion("odd counts", {"prompt_tokens": 10**25, "completion_tokens": -7,
                                                            "total_tokens": 1}), "application/json"))
    raw = _sdk(gateway).messages.with_raw_response.create(model=MODEL, max_tokens=20,
                                                          messages=[{"role": "user", "content": "hi"}])
    message = raw.parse()
    assert message.content[0].text == "odd counts" and message.usage.output_tokens == 0
    record = wait_record(gateway.audit_store, raw.headers["request-id"])
    assert record["input_tokens"] == MAX_TOKEN_COUNT and record["output_tokens"] == 0
    assert record["cost_usd"] is None or record["cost_usd"] >= 0

    chat_upstream.script(RawBody(_completion("plain", {"prompt_tokens": 5, "completion_tokens": 2,
                                                       "total_tokens": 7}), "application/json"))
    raw = _sdk(gateway).messages.with_raw_response.create(model=MODEL, max_tokens=20,
                                                          messages=[{"role": "user", "content": "hi"}])
    assert wait_record(gateway.audit_store, raw.headers["request-id"])["output_tokens"] == 2  # the writer goes on


PARTS = [{"type": "text", "text": None}, {"type": "text", "text": "kept"}, {"type": "text", "text": 5},
         {"type": "text"}, {"type": "text", "text": " too"}]


def test_content_parts_whose_text_is_not_a_string_are_left_out(gateway: Gateway,
                                                                chat_upstream: ScriptedChatUpstream) -> None:
    chat_upstream.script(RawBody(_completion(PARTS, {"prompt_tokens": 5, "completion_tokens": 2,
                                                     "total_tokens": 7}), "application/json"))
    message = _sdk(gateway).messages.create(model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "kept too"

    chat_upstream.script(RawStream([chat_chunk({"role": "assistant", "content": PARTS[:2]}),
                                    chat_chunk({"content": PARTS[2:]}), chat_chunk({}, "stop")]))
    with _sdk(gateway).messages.stream(model=MODEL, max_tokens=20,
                                       messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "kept too" and final.stop_reason == "end_turn"
    assert "Traceback" not in gateway.stderr_text()
