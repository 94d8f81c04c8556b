"""A turn's tool_results are paired with the calls of the assistant turn before them by id in a constant number of
comparisons each: a scan of the calls per result made an ordinary-looking request of N parallel calls and their N
results cost N² comparisons on the event loop (8,000: 0.3 s; the 32 MiB body limit allows ~300,000). The pairing
is unchanged: results in the calls' order, a missing one filled in, an orphan sent as text. Over real sockets, a
conversation of 8,000 parallel calls reaches the Chat upstream whole and in order."""

from __future__ import annotations

import json

from dragoman.protocols import anthropic as A
from dragoman.translate.conversation import Results, conversation
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from tests.gateway import Gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream

CALLS = 2_000


class CountedId(str):
    """A tool_use id that counts the equality checks made with it (the work of pairing results with calls)."""

    checks = 0

    def __eq__(self, other: object) -> bool:
        CountedId.checks += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def _turns(calls: int, answered: list[int], orphan: bool = False) -> A.MessagesRequest:
    uses = [A.ContentBlock(type="tool_use", id=CountedId(f"toolu_{i}"), name="Read", input={"i": i})
            for i in range(calls)]
    results = [A.ContentBlock(type="tool_result", tool_use_id=CountedId(f"toolu_{i}"), content=f"r{i}")
               for i in answered]
    if orphan:
        results.append(A.ContentBlock(type="tool_result", tool_use_id=CountedId("toolu_gone"), content="late"))
    return A.MessagesRequest(model="m", max_tokens=10, messages=[
        A.Message(role="user", content="go"), A.Message(role="assistant", content=uses),
        A.Message(role="user", content=results)])


def _results(req: A.MessagesRequest) -> tuple[Results, RequestContext]:
    ctx = RequestContext(message_id="msg_1", requested_model="m", tool_names=ToolNameMap(64))
    turns = list(conversation(req, ctx, set()))
    return next(turn for turn in turns if isinstance(turn, Results)), ctx


def test_results_answering_thousands_of_calls_take_a_few_comparisons_each() -> None:
    req = _turns(CALLS, list(reversed(range(CALLS))))  # answered in the opposite order: a scan's worst case
    CountedId.checks = 0
    results, _ = _results(req)
    assert CountedId.checks < 10 * CALLS  # a scan of the calls per result: ~CALLS² / 2
    assert results.results == [(f"toolu_{i}", f"r{i}") for i in range(CALLS)]  # the calls' order


def test_a_missing_result_is_filled_in_and_an_orphan_is_sent_as_text() -> None:
    results, ctx = _results(_turns(3, [2, 0], orphan=True))
    assert [call_id for call_id, _ in results.results] == ["toolu_0", "toolu_1", "toolu_2"]
    assert results.results[0][1] == "r0" and results.results[2][1] == "r2" and results.results[1][1] != "r1"
    assert "missing tool_result filled in" in ctx.notes and "orphan tool_result sent as text" in ctx.notes


def test_a_turn_of_thousands_of_parallel_calls_reaches_the_upstream_whole(
        gateway: Gateway, chat_upstream: ScriptedChatUpstream) -> None:
    chat_upstream.script(ChatReply(text="done"))
    calls = 8_000
    body = {"model": "gpt-5-via-gateway", "max_tokens": 50, "messages": [
        {"role": "user", "content": "read them all"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": f"toolu_{i}", "name": "Read", "input": {}}
                                          for i in range(calls)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": f"r{i}"}
                                     for i in reversed(range(calls))]},
    ]}
    response = gateway.request("POST", "/v1/messages", body)
    assert response.status == 200 and response.json()["content"][0]["text"] == "done"
    sent = chat_upstream.requests[-1].body["messages"]
    tool_messages = [m for m in sent if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [f"toolu_{i}" for i in range(calls)]
    assert json.dumps(tool_messages[-1]).count(f"r{calls - 1}") == 1
