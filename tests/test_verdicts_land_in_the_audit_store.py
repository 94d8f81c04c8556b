"""End to end over real sockets: the gateway judges every call and the verdict lands in its audit record, for JSON
and streamed answers; the client's next turn is attributed to the earlier call's record, also when another
gateway process on the same store answered the next turn; verdicts are counted in /metrics and shown by
`dragoman logs`; and the client never sees a difference: the answers are the same bytes with the loop on and off."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dragoman.loop import verdict as V
from dragoman.observe.stores import open_store
from tests.waiting import wait_for
from tests.anthropic_events import sse_events
from tests.audit_helpers import ENV, FAST, NO_BREAKER, NO_RETRY, cli, headers
from tests.gateway import Gateway, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.upstreams.anthropic_messages import MessageReply, ScriptedAnthropicUpstream

pytestmark = pytest.mark.timeout(60)

CHAT, PASS = "chat-route", "claude-passthrough"
ADMIN = "adm-verdicts-test-key"
READ = {"name": "Read", "description": "Read a file",
        "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                         "required": ["file_path"], "additionalProperties": False}}
REFUSED = ("<tool_use_error>InputValidationError: Read failed due to the following issue:\n"
           "The required parameter `file_path` is missing</tool_use_error>")


def _config(chat: ScriptedChatUpstream, anthropic_upstream: ScriptedAnthropicUpstream, store: str, *,
            loop: bool = True) -> str:
    chat_route = {"name": CHAT, "upstream": {"provider": "openai", "model": "gpt-5", "endpoint": chat.base_url,
                                             "api_key_ref": "openai_prod", "timeout": FAST},
                  "retry": NO_RETRY, "breaker": NO_BREAKER}
    passthrough = {"name": PASS, "upstream": {"provider": "anthropic", "model": PASS,
                                              "endpoint": anthropic_upstream.base_url, "api_key_ref": "openai_prod",
                                              "timeout": FAST},
                   "translation": {"passthrough": True}, "retry": NO_RETRY, "breaker": NO_BREAKER}
    data = {"audit": {"store": store, "flush_interval": 0.05}, "metrics": {"enabled": True},
            "admin": {"keys": [ADMIN]},
            "loop": {"enabled": loop, "verdicts": {"memory": 1000, "schema_cache": 16}},
            "routes": [chat_route, passthrough]}
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[ScriptedChatUpstream, ScriptedAnthropicUpstream]]:
    with ScriptedChatUpstream() as chat, ScriptedAnthropicUpstream() as anthropic_upstream:
        yield chat, anthropic_upstream


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('verdicts') / 'audit.db'}"


@pytest.fixture(scope="module")
def gateways(upstreams, store: str) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateways of two workers each on one SQLite store: a call's next turn may reach another process, so
    each writes its calls to the store (a lone worker on SQLite keeps them in memory only)."""
    text = _config(*upstreams, store)
    with run_gateway(text, env=ENV, workers=2) as first, run_gateway(text, env=ENV, workers=2) as second:
        yield first, second


def _post(gateway: Gateway, body: dict) -> tuple[str, bytes]:
    resp = gateway.request("POST", "/v1/messages", body, headers(None))
    assert resp.status == 200, resp.body
    return resp.headers["request-id"], resp.body


def _body(model: str, *, stream: bool = False, messages: list[dict] | None = None) -> dict:
    return {"model": model, "max_tokens": 256, "stream": stream, "tools": [READ],
            "messages": messages or [{"role": "user", "content": "read a.txt"}]}


def _wait(store: str, request_id: str, ready=lambda row: True, timeout: float = 10.0) -> dict:
    """Poll the store (bounded) until the record exists and `ready(row)` holds."""
    opened = open_store(store, migrate=False)

    def record() -> dict | None:
        rows = opened.query_requests({"request_id": request_id}, limit=2)
        return rows[0] if rows and ready(rows[0]) else None

    try:
        return wait_for(record, timeout, f"the record of {request_id}")
    finally:
        opened.close()


def _tool_use(answer: bytes, stream: bool) -> dict:
    if not stream:
        return next(b for b in json.loads(answer)["content"] if b["type"] == "tool_use")
    starts = [e["content_block"] for name, e in sse_events(answer) if name == "content_block_start"]
    return next(b for b in starts if b["type"] == "tool_use")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_verdicts_land_in_the_audit_record(gateways, upstreams, store: str, stream: bool) -> None:
    gateway, chat = gateways[0], upstreams[0]
    cases = [
        (ChatReply(text="Sure."), V.PASS, []),
        (ChatReply(tool_calls=[("call_1", "Read", '{"file_path": "/a.txt"}')]), V.PASS, []),
        (ChatReply(tool_calls=[("call_2", "Write", '{"file_path": "/a.txt"}')]), V.FAIL, [V.UNKNOWN_TOOL]),
        (ChatReply(tool_calls=[("call_3", "Read", '{"path": "/a.txt"}')]), V.FAIL, [V.SCHEMA_VIOLATION]),
        (ChatReply(text=""), V.FAIL, [V.EMPTY_ANSWER]),
    ]
    for reply, verdict, kinds in cases:
        chat.reset(reply)
        request_id, _ = _post(gateway, _body(CHAT, stream=stream))
        row = _wait(store, request_id)
        assert (row["verdict"], row["verdict_kinds"]) == (verdict, kinds), row
        assert row["tool_calls"] == len(reply.tool_calls)
        assert row["shape"].startswith("tools|8k|" + ("stream" if stream else "json"))
        assert (row["verdict_detail"] is None) == (verdict == V.PASS)


def test_a_stream_cut_short_is_unfinished(gateways, upstreams, store: str) -> None:
    from tests.upstreams.openai_chat import RawStream, render_chunks

    gateway, chat = gateways[0], upstreams[0]
    chunks = render_chunks(ChatReply(text="Hello there, this will be cut"))
    chat.reset(RawStream(chunks[:3], done=False))
    request_id, answer = _post(gateway, _body(CHAT, stream=True))
    assert b"event: error" in answer
    row = _wait(store, request_id)
    assert (row["verdict"], row["verdict_kinds"]) == (V.FAIL, [V.UNFINISHED_STREAM])


def test_an_error_answer_gets_no_verdict(gateways, upstreams, store: str) -> None:
    from tests.upstreams import ErrorReply

    gateway, chat = gateways[0], upstreams[0]
    chat.reset(ErrorReply(400, {"error": {"message": "bad", "type": "invalid_request_error"}}))
    resp = gateway.request("POST", "/v1/messages", _body(CHAT), headers(None))
    assert resp.status == 400
    row = _wait(store, resp.headers["request-id"])
    assert row["verdict"] is None and row["verdict_kinds"] == []


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_next_turn_is_attributed_to_the_earlier_call_across_processes(gateways, upstreams, store: str,
                                                                          stream: bool) -> None:
    first, second = gateways
    chat = upstreams[0]
    chat.reset(ChatReply(tool_calls=[(f"call_cross_{stream}", "Read", '{"file_path": "/a.txt"}')]))
    earlier_id, answer = _post(first, _body(CHAT, stream=stream))
    call = _tool_use(answer, stream)
    earlier = _wait(store, earlier_id)
    assert (earlier["verdict"], earlier["next_turn"]) == (V.PASS, None)
    chat.reset(ChatReply(text="Let me fix that."))
    conversation = [{"role": "user", "content": "read a.txt"},
                    {"role": "assistant", "content": [call]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                                                  "content": REFUSED, "is_error": True}]}]
    later_id, _ = _post(second, _body(CHAT, messages=conversation))  # another process answers the next turn
    row = _wait(store, earlier_id, lambda r: r["next_turn"] is not None)
    assert row["next_turn"] == V.CLIENT_REFUSED
    assert _wait(store, later_id)["next_turn"] is None
    metrics = second.request("GET", "/metrics").body.decode()
    assert re.search(r'dragoman_late_signals_total\{kind="client_refused",model="gpt-x",route="chat-route"\} [1-9]',
                     _sorted_labels(metrics)), metrics


def test_an_execution_failure_in_the_same_process_is_the_weaker_signal(gateways, upstreams, store: str) -> None:
    gateway, chat = gateways[0], upstreams[0]
    chat.reset(ChatReply(tool_calls=[("call_exec", "Read", '{"file_path": "/missing.txt"}')]))
    earlier_id, answer = _post(gateway, _body(CHAT))
    call = _tool_use(answer, False)
    chat.reset(ChatReply(text="It is missing."))
    conversation = [{"role": "user", "content": "read"}, {"role": "assistant", "content": [call]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "is_error": True,
                                                  "content": "File does not exist."}]}]
    _post(gateway, _body(CHAT, messages=conversation))
    assert _wait(store, earlier_id, lambda r: r["next_turn"] is not None)["next_turn"] == V.EXECUTION_FAILED


def test_verdicts_are_counted_and_shown_by_dragoman_logs(gateways, upstreams, store: str) -> None:
    gateway, chat = gateways[0], upstreams[0]
    chat.reset(ChatReply(tool_calls=[("call_logs", "Nope", "{}")]))
    request_id, _ = _post(gateway, _body(CHAT))
    _wait(store, request_id)
    metrics = _sorted_labels(gateway.request("GET", "/metrics").body.decode())
    assert re.search(r'dragoman_verdicts_total\{kind="unknown_tool",model="gpt-x",route="chat-route",'
                     r'verdict="fail"\} [1-9]', metrics), metrics
    out = cli("logs", "--store", store, "--request-id", request_id).stdout
    assert "fail:unknown_tool" in out, out
    [row] = gateway.request("GET", f"/api/requests?request_id={request_id}", headers={"x-api-key": ADMIN}).json()["data"]
    assert (row["verdict"], row["verdict_kinds"], row["tool_calls"]) == (V.FAIL, [V.UNKNOWN_TOOL], 1)
    assert row["verdict_detail"] == "unknown_tool: tool 'Nope' was not offered"


def _sorted_labels(text: str) -> str:
    """Prometheus text with each sample's labels in name order (the exposition keeps declaration order)."""
    def sort(match: re.Match) -> str:
        labels = sorted(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        return match.group(1) + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"
    return re.sub(r"^(\w+)\{([^}]*)\}", sort, text, flags=re.M)


def test_the_client_gets_the_same_bytes_with_the_loop_on_and_off(upstreams, tmp_path: Path) -> None:
    chat, anthropic_upstream = upstreams
    answers: dict[bool, list[bytes]] = {}
    for loop in (True, False):
        text = _config(chat, anthropic_upstream, f"sqlite:///{tmp_path / f'loop_{loop}.db'}", loop=loop)
        with run_gateway(text, env=ENV) as gateway:
            got = []
            for stream in (False, True):
                anthropic_upstream.reset(MessageReply(text=None, tool_uses=[("toolu_same", "Read", {"path": 1})]))
                got.append(_post(gateway, _body(PASS, stream=stream))[1])
                chat.reset(ChatReply(text="same", tool_calls=[("call_same", "Read", '{"file_path": "/a"}')]))
                request_id, body = _post(gateway, _body(CHAT, stream=stream))
                got.append(body.replace(request_id[4:].encode(), b"ID"))  # the message id is the request's
            answers[loop] = got
            rows = open_store(f"sqlite:///{tmp_path / f'loop_{loop}.db'}", migrate=False)
            try:
                wait_for(lambda: len(rows.query_requests(None, 10)) >= 4, 10, "the four records")
                verdicts = {r["verdict"] for r in rows.query_requests(None, 10)}
            finally:
                rows.close()
            assert verdicts == ({V.PASS, V.FAIL} if loop else {None})  # the loop ran only when on
    assert answers[True] == answers[False]


@pytest.fixture(scope="module")
def lone(upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    """One gateway of one worker on its own SQLite store: the embedded default."""
    store = f"sqlite:///{tmp_path_factory.mktemp('lone') / 'audit.db'}"
    with run_gateway(_config(*upstreams, store), env=ENV) as gateway:
        yield gateway, store


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_relayed_anthropic_answer_is_judged_from_what_it_relayed(lone, upstreams, stream: bool) -> None:
    # Translated answers are read from the blocks and events the gateway encoded; a passthrough's are its bytes.
    gateway, store = lone
    anthropic_upstream = upstreams[1]
    anthropic_upstream.reset(MessageReply(text=None, tool_uses=[("toolu_relayed", "Read", {"path": 1})]))
    request_id, _ = _post(gateway, _body(PASS, stream=stream))
    row = _wait(store, request_id)
    assert (row["verdict"], row["verdict_kinds"], row["tool_calls"]) == (V.FAIL, [V.SCHEMA_VIOLATION], 1), row
    anthropic_upstream.reset(MessageReply(text="Done."))
    request_id, _ = _post(gateway, _body(PASS, stream=stream))
    assert _wait(store, request_id)["verdict"] == V.PASS


def test_a_lone_worker_joins_the_next_turn_in_memory_and_writes_no_tool_call_rows(lone, upstreams) -> None:
    gateway, store = lone
    chat = upstreams[0]
    chat.reset(ChatReply(tool_calls=[("call_lone", "Read", '{"file_path": "/a.txt"}')]))
    earlier_id, answer = _post(gateway, _body(CHAT, stream=True))
    call = _tool_use(answer, True)
    chat.reset(ChatReply(text="Let me fix that."))
    conversation = [{"role": "user", "content": "read a.txt"}, {"role": "assistant", "content": [call]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                                                  "content": REFUSED, "is_error": True}]}]
    _post(gateway, _body(CHAT, messages=conversation))
    assert _wait(store, earlier_id, lambda r: r["next_turn"] is not None)["next_turn"] == V.CLIENT_REFUSED
    with sqlite3.connect(store.removeprefix("sqlite:///")) as db:
        assert db.execute("SELECT count(*) FROM tool_calls").fetchone() == (0,)
