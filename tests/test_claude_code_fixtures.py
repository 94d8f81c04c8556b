"""Real Claude Code request bodies (tests/fixtures/claude_code, docs/design.md §6) translated for OpenAI Chat.

Pins what each release sends and what the upstream must get: system first, the mid-conversation system
message at its position, parallel tool calls as one assistant message answered by tool messages in call
order, no cache_control anywhere, tool names exactly as sent, and 2.1.328's deferred tool loading.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from dragoman.protocols import anthropic as A
from dragoman.translate.chat.request import translate_request
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from tests.shared_fixtures import CLAUDE_CODE_FIXTURES

FIXTURES = CLAUDE_CODE_FIXTURES
FILES = sorted(FIXTURES.glob("*.json"))


def test_the_fixtures_are_there() -> None:
    assert len(FILES) == 10, f"expected the ten Claude Code fixtures of tests/fixtures/claude_code/README.md in {FIXTURES}"


def _load(name: str) -> tuple[dict[str, Any], A.MessagesRequest]:
    raw = (FIXTURES / name).read_bytes()
    return json.loads(raw), msgspec.json.decode(raw, type=A.MessagesRequest)


def _translate(req: A.MessagesRequest, upstream_model: str = "gpt-5") -> tuple[dict[str, Any], RequestContext]:
    ctx = RequestContext(message_id="msg_fixture", requested_model=req.model, tool_names=ToolNameMap(64))
    chat = translate_request(req, upstream_model, TranslationOptions(), ctx)
    return json.loads(msgspec.json.encode(chat)), ctx


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(block["text"] for block in content if block.get("type") == "text")


def _walk_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return list(value) + [k for v in value.values() for k in _walk_keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in _walk_keys(v)]
    return []


@pytest.fixture(params=[f.name for f in FILES])
def fixture(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], A.MessagesRequest]:
    raw, req = _load(request.param)
    return request.param, raw, req


def test_system_first(fixture: tuple[str, dict[str, Any], A.MessagesRequest]) -> None:
    _, raw, req = fixture
    chat, _ = _translate(req)
    first = chat["messages"][0]
    assert first["role"] == "system"
    assert first["content"] == "\n\n".join(b["text"] for b in raw["system"])
    assert first["content"].startswith("x-anthropic-billing-header:")


def test_mid_conversation_system_message_kept_in_place(fixture: tuple[str, dict[str, Any], A.MessagesRequest]) -> None:
    _, raw, req = fixture
    chat, _ = _translate(req)
    expected = [_text(m["content"]) for m in raw["messages"] if m["role"] == "system"]
    assert expected, "every fixture carries a mid-conversation system message"
    assert [m["content"] for m in chat["messages"][1:] if m["role"] == "system"] == expected
    # Each sits after the translation of what precedes it: the message before it in the fixture is the
    # user's first turn, and the upstream message before it is that turn.
    for position, message in enumerate(raw["messages"]):
        if message["role"] != "system":
            continue
        index = next(i for i, m in enumerate(chat["messages"]) if i > 0 and m["role"] == "system" and m["content"] == _text(message["content"]))
        before = raw["messages"][position - 1]
        upstream_before = chat["messages"][index - 1]
        if before["role"] == "user" and all(b.get("type") == "text" for b in before["content"]):
            assert upstream_before == {"role": "user", "content": _text(before["content"])}
        elif before["role"] == "user":  # tool results: the last tool message or the user text after them
            assert upstream_before["role"] in ("tool", "user")


def test_no_cache_control_upstream(fixture: tuple[str, dict[str, Any], A.MessagesRequest]) -> None:
    _, raw, req = fixture
    assert "cache_control" in json.dumps(raw)
    chat, ctx = _translate(req)
    assert "cache_control" not in _walk_keys(chat)
    assert "ttl" not in _walk_keys(chat)
    assert "cache_control dropped" in ctx.notes


def test_tool_names_exactly_as_sent(fixture: tuple[str, dict[str, Any], A.MessagesRequest]) -> None:
    _, raw, req = fixture
    chat, _ = _translate(req)
    offered = [t["function"]["name"] for t in chat["tools"]]
    sent = [t["name"] for t in raw["tools"] if t["name"] in offered]
    assert offered == sent  # same names, same order, never lower-cased or sanitised
    called = [c["function"]["name"] for m in chat["messages"] for c in m.get("tool_calls", ())]
    assert called == [b["name"] for m in raw["messages"] if m["role"] == "assistant" for b in m["content"] if b["type"] == "tool_use"]


def test_every_tool_message_answers_the_assistant_before_it(fixture: tuple[str, dict[str, Any], A.MessagesRequest]) -> None:
    _, _, req = fixture
    chat, _ = _translate(req)
    pending: list[str] = []
    for message in chat["messages"]:
        if message["role"] == "tool":
            assert pending and message["tool_call_id"] == pending.pop(0), "tool message out of call order"
            assert message["content"], "empty tool message"
        else:
            assert not pending, f"calls {pending} unanswered before a {message['role']} message"
            pending = [c["id"] for c in message.get("tool_calls", ())]
    assert not pending


@pytest.mark.parametrize(
    "name",
    [
        "claude_code_2.1.197_after_parallel_tools.json",
        "claude_code_2.1.328_after_parallel_reads.json",
        "claude_code_2.1.328_after_parallel_tools.json",
    ],
)
def test_six_parallel_tool_calls(name: str) -> None:
    raw, req = _load(name)
    chat, _ = _translate(req)
    messages = chat["messages"]
    for turn, message in enumerate(raw["messages"]):
        if message["role"] != "assistant":
            continue
        uses = [b for b in message["content"] if b["type"] == "tool_use"]
        assert len(uses) == 6
        results = {b["tool_use_id"]: b for b in raw["messages"][turn + 1]["content"] if b["type"] == "tool_result"}
        index = next(i for i, m in enumerate(messages) if [c["id"] for c in m.get("tool_calls", ())] == [u["id"] for u in uses])
        assistant = messages[index]
        texts = [b["text"] for b in message["content"] if b["type"] == "text"]
        assert assistant.get("content") == ("\n\n".join(texts) if texts else None)
        assert [json.loads(c["function"]["arguments"]) for c in assistant["tool_calls"]] == [u["input"] for u in uses]
        tools = messages[index + 1 : index + 7]
        assert [m["role"] for m in tools] == ["tool"] * 6
        assert [m["tool_call_id"] for m in tools] == [u["id"] for u in uses]  # call order, not arrival order
        assert [m["content"] for m in tools] == [results[u["id"]]["content"] for u in uses]


def test_results_arrive_out_of_order_in_2_1_328() -> None:
    raw, _ = _load("claude_code_2.1.328_after_parallel_reads.json")
    calls = [b["id"] for b in raw["messages"][2]["content"] if b["type"] == "tool_use"]
    results = [b["tool_use_id"] for b in raw["messages"][3]["content"]]
    assert sorted(calls) == sorted(results) and calls != results  # the fixture is what the tests above rely on


def test_2_1_197_trailing_system_message_is_last() -> None:
    raw, req = _load("claude_code_2.1.197_after_parallel_tools.json")
    chat, _ = _translate(req)
    assert chat["messages"][-1] == {"role": "system", "content": raw["messages"][-1]["content"]}
    assert chat["messages"][-2]["role"] == "tool"


def test_2_1_328_first_turn_system_list_joined() -> None:
    raw, req = _load("claude_code_2.1.328_first_turn.json")
    chat, _ = _translate(req)
    system = raw["messages"][1]
    assert system["role"] == "system" and isinstance(system["content"], list)
    assert chat["messages"][2] == {"role": "system", "content": _text(system["content"])}


@pytest.mark.parametrize(
    "name",
    [
        "claude_code_2.1.328_first_turn.json",
        "claude_code_2.1.328_after_parallel_reads.json",
        "claude_code_2.1.328_after_parallel_tools.json",
    ],
)
def test_deferred_tools_not_offered_before_toolsearch(name: str) -> None:
    raw, req = _load(name)
    chat, _ = _translate(req)
    offered = {t["function"]["name"] for t in chat["tools"]}
    assert "ToolSearch" in offered
    assert "DeferredToolPlaceholder" not in offered
    assert "CronList" not in offered
    assert offered == {t["name"] for t in raw["tools"] if not t.get("defer_loading")}


def test_deferred_tool_offered_after_toolsearch() -> None:
    raw, req = _load("claude_code_2.1.328_after_toolsearch.json")
    chat, _ = _translate(req)
    offered = [t["function"]["name"] for t in chat["tools"]]
    assert "CronList" in offered and "ToolSearch" in offered
    assert "DeferredToolPlaceholder" not in offered
    cron = next(t["function"] for t in chat["tools"] if t["function"]["name"] == "CronList")
    source = next(t for t in raw["tools"] if t["name"] == "CronList")
    assert cron["parameters"] == source["input_schema"] and cron["description"] == source["description"]


def test_toolsearch_result_names_the_loaded_tool() -> None:
    raw, req = _load("claude_code_2.1.328_after_toolsearch.json")
    result = raw["messages"][3]["content"][0]
    assert result["content"] == [{"type": "tool_reference", "tool_name": "CronList"}]
    chat, _ = _translate(req)
    tool = next(m for m in chat["messages"] if m["role"] == "tool")
    assert tool["tool_call_id"] == result["tool_use_id"]
    assert tool["content"] and "CronList" in tool["content"]  # never empty: the model must learn it loaded
    assert chat["messages"][-1] == {"role": "user", "content": "Tool loaded."}


@pytest.mark.parametrize(
    ("name", "asked", "effort"),
    [
        ("claude_code_2.1.197_first_turn.json", 64000, "high"),
        ("claude_code_2.1.328_first_turn.json", 128000, "medium"),
    ],
)
def test_limits_and_effort(name: str, asked: int, effort: str) -> None:
    raw, req = _load(name)
    assert raw["max_tokens"] == asked
    chat, ctx = _translate(req, "gpt-4.1")
    assert chat["max_completion_tokens"] == 32768  # clamped, never a 400
    chat, ctx = _translate(req, "gpt-5")
    assert chat["max_completion_tokens"] == asked
    assert chat["reasoning_effort"] == effort
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert "context_management dropped" in ctx.notes


def test_identity_from_metadata(fixture: tuple[str, dict[str, Any], A.MessagesRequest]) -> None:
    _, raw, req = fixture
    user_id = json.loads(raw["metadata"]["user_id"])
    chat, _ = _translate(req)
    assert chat["prompt_cache_key"] == user_id["session_id"]
    assert len(chat["safety_identifier"]) == 64 and user_id["device_id"] not in chat["safety_identifier"]
