"""The judge judges streamed answers too, over real sockets: Claude Code streams every turn, so a judge that read
JSON answers only never judged the CLI. With `loop.judge` sampling every call, a stream the gateway translated from
Chat and a stream it relayed from an Anthropic upstream are each shown to the judge route as the client got them
(their text and tool calls put back together from the SSE bytes), and the judge's verdict lands in the streamed
call's `judge` column. A stream that ended in an error is not judged. `stream_content` gives a streamed answer's
blocks as the JSON answer's are, whatever the text, inputs and delta sizes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragoman.config.loop import JudgeSettings
from dragoman.exchange.lifecycle import Exchange
from dragoman.loop.answer import StreamFacts, stream_content
from dragoman.loop.judge import Judge
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, config_yaml, route, sdk, wait_until
from tests.upstreams import ChatReply, RawStream, ScriptedChatUpstream
from tests.upstreams.openai_chat import Gate
from tests.upstreams.anthropic_messages import (
    MessageReply, ScriptedAnthropicUpstream, render_message, render_message_sse,
)
from tests.versions_helpers import cli
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

TRANSLATED, RELAYED, JUDGE = "gpt-5-via-gateway", "claude-relayed", "judge"
TOOLS = [{"name": "Read", "description": "read a file",
          "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[Gateway, ScriptedChatUpstream, ScriptedAnthropicUpstream, ScriptedChatUpstream]]:
    with ScriptedChatUpstream() as chat, ScriptedAnthropicUpstream() as claude, ScriptedChatUpstream() as judge:
        judge.reset(ChatReply(text="PASS\nit reads the file it was asked about", model="judge-model"))
        one_try = {"attempts": 1}
        text = config_yaml([
            route(TRANSLATED, chat.base_url, retry=one_try),
            route(RELAYED, claude.base_url, provider="anthropic", api_key_ref="anthropic_prod", model="claude-x",
                  translation={"passthrough": True}, retry=one_try),
            route(JUDGE, judge.base_url, retry=one_try),
        ])
        text += f"loop:\n  judge:\n    route: {JUDGE}\n    sample: 1.0\n    concurrency: 1\n"
        with run_gateway(text, env=KEYS_ENV) as gateway:
            yield gateway, chat, claude, judge


def _stream(gateway: Gateway, model: str, question: str) -> str:
    """One streamed turn through the official SDK; the answer's id as the client got it."""
    with sdk(gateway).messages.stream(model=model, max_tokens=200, tools=TOOLS,
                                      messages=[{"role": "user", "content": question}]) as stream:
        return stream.get_final_message().id


def _answer_shown(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    text = content if isinstance(content, str) else "".join(part.get("text", "") for part in content)
    return text.split("<answer>", 1)[1]


def _rows(gateway: Gateway) -> list[dict[str, Any]]:
    done = cli(gateway, "logs", "--format", "json", "--limit", "50")
    assert done.returncode == 0, done.stderr
    return [row for row in json.loads(done.stdout) if "judge_call" not in row["loop_events"]]


def _judge_column(gateway: Gateway) -> dict[str, Any]:
    return {row["route"]: row["judge"] for row in _rows(gateway)}


def test_a_translated_and_a_relayed_stream_are_shown_to_the_judge_as_the_client_got_them(env) -> None:  # noqa: ANN001
    gateway, chat, claude, judge = env
    chat.reset(ChatReply(text="I will read the readme first.", tool_calls=[("call_7", "Read", '{"path": "README.md"}')],
                         pieces=5))
    claude.reset(MessageReply(text="Reading setup.py now.", tool_uses=[("toolu_9", "Read", {"path": "setup.py"})],
                              pieces=4))
    judge.requests.clear()
    _stream(gateway, TRANSLATED, "what does the readme say?")
    _stream(gateway, RELAYED, "what does setup.py install?")

    wait_until(lambda: len(judge.bodies) == 2, 15, "both streamed calls sent to the judge")
    translated, relayed = (_answer_shown(body) for body in judge.bodies)
    assert "I will read the readme first." in translated
    assert '[tool call] Read({"path":"README.md"})' in translated
    assert "Reading setup.py now." in relayed
    assert '[tool call] Read({"path":"setup.py"})' in relayed
    wait_until(lambda: _judge_column(gateway) == {TRANSLATED: "pass", RELAYED: "pass"}, 15,
               "the judge's verdict in both streamed calls' records")


def test_a_stream_that_ended_in_an_error_is_not_judged(env) -> None:  # noqa: ANN001
    gateway, chat, _, judge = env
    cut = RawStream([{"id": "c1", "object": "chat.completion.chunk", "model": "gpt-x",
                      "choices": [{"index": 0, "delta": {"role": "assistant", "content": "half an ans"}}]}],
                    disconnect_after=1)
    chat.reset([cut, ChatReply(text="A whole answer.", pieces=2)])
    judge.requests.clear()
    with pytest.raises(anthropic.APIStatusError, match="mid-stream"):  # the stream's `error` event, as the SDK says it
        with sdk(gateway).messages.stream(model=TRANSLATED, max_tokens=200,
                                          messages=[{"role": "user", "content": "first"}]) as stream:
            stream.get_final_message()
    _stream(gateway, TRANSLATED, "second")
    # The judge takes its calls in order, one at a time: had the failed stream been offered, it would come first.
    wait_until(lambda: len(judge.bodies) >= 1, 15, "the whole answer judged")
    assert len(judge.bodies) == 1 and "A whole answer." in _answer_shown(judge.bodies[0])


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_INPUT = st.dictionaries(st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=6),
                         st.one_of(st.integers(), _TEXT, st.booleans(), st.none()), max_size=4)


@settings(max_examples=60, deadline=None)
@given(text=st.one_of(st.none(), _TEXT), inputs=st.lists(_INPUT, max_size=3), pieces=st.integers(1, 7),
       thinking=st.one_of(st.none(), _TEXT))
def test_a_streamed_answer_reads_back_as_its_json_content(text: str | None, inputs: list[dict], pieces: int,
                                                          thinking: str | None) -> None:
    reply = MessageReply(text=text, tool_uses=[(f"toolu_{i}", "Read", given_input) for i, given_input in
                                               enumerate(inputs)], thinking=thinking, pieces=pieces)
    expected = [block for block in render_message(reply)["content"] if block["type"] in ("text", "tool_use")]
    assert stream_content(render_message_sse(reply)) == expected


def test_a_stream_the_client_stopped_reading_is_not_judged(env) -> None:  # noqa: ANN001
    gateway, chat, _, judge = env
    gate = Gate()
    # Paced: the gateway sees the client gone well before the answer's end (it looks after each chunk it sends).
    chat.reset([ChatReply(text="The first half of the answer, then the second half.", pieces=6, gate=gate,
                          gate_before=3, chunk_delay=0.05),
                ChatReply(text="A whole answer.", pieces=2)])
    judge.requests.clear()
    body = {"model": TRANSLATED, "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "tell me"}]}
    abandoned = gateway.leave_mid_stream(body)  # Esc in Claude Code: the client walks away with part of the answer
    gate.open()
    # Its record is written after it was offered to the judge, or not (CorrectnessLoop.finished).
    row = wait_for(lambda: next((row for row in _rows(gateway) if row["request_id"] == abandoned), None), 15,
                   "the abandoned call's record")
    assert row["verdict"] is None  # the gateway saw the client leave: nothing to judge the upstream by
    _stream(gateway, TRANSLATED, "second")
    # The judge takes its calls in order, one at a time: had the abandoned stream been offered, it would come first.
    wait_until(lambda: len(judge.bodies) >= 1, 15, "the whole answer judged")
    assert len(judge.bodies) == 1 and "A whole answer." in _answer_shown(judge.bodies[0])


def test_a_call_is_drawn_for_the_judge_at_its_share() -> None:
    draws = iter([0.05, 0.5, 0.2499, 0.25, 0.99])
    judge = Judge(JudgeSettings(route="j", sample=0.25), _never_sent, lambda signal: None, draw=lambda: next(draws))
    assert [judge.sampled() for _ in range(5)] == [True, False, True, False, False]


async def _never_sent(request: Any) -> tuple[bytes, float | None]:
    raise AssertionError("no judge call in this test")


@pytest.mark.parametrize("sampled", [False, True])
def test_a_translated_stream_keeps_its_bytes_only_when_sampled(sampled: bool) -> None:
    ctx = RequestContext(message_id="msg_k", requested_model="claude", tool_names=ToolNameMap(64))
    ctx.stream_facts = StreamFacts()
    exchange = Exchange("req_k", capture=True, keep_answer=sampled)
    exchange.ctx, exchange._opened = ctx, object()  # type: ignore[assignment]
    exchange.stream()  # (not iterated: what it keeps is decided when it is made)
    assert exchange.kept_facts is ctx.stream_facts  # the verdict reads the bridge's facts either way
    assert exchange.kept == ([] if sampled else None)
