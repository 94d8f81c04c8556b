"""What a tool's schema becomes for OpenAI is remembered per tool name (translate/anthropic_request.py), so a
client's same schemas each turn cost a byte comparison. The memo is bounded by bytes as well as by entries: a schema
larger than a few KB is read each time and never kept, and the memo holds bytes only (a completed schema as its
JSON, never the decoded dict, ~11x its size). Before, four requests each with a fresh tool name and an 8 MiB
property-less schema left ~360 MiB behind in a gateway. Claude Code's schemas are still all remembered."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

import dragoman.translate.anthropic_request as AR
from dragoman.translate.chat.request import translate_request
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from tests.wire import as_sent, messages_request

FIXTURE = Path(__file__).parent / "fixtures/claude_code/claude_code_2.1.197_first_turn.json"
# A property-less schema (as MCP servers send parameterless tools) with a large `examples` list: ~1 MiB
LARGE = {"type": "object", "examples": [[i, "x" * 8] for i in range(60_000)]}


@pytest.fixture(autouse=True)
def empty_memo():
    AR._SEEN_SCHEMAS.schemas.clear()
    AR._SEEN_SCHEMAS.size = 0
    yield
    AR._SEEN_SCHEMAS.schemas.clear()
    AR._SEEN_SCHEMAS.size = 0


def _translated(tools: list[dict]) -> tuple[dict, list[str]]:
    req = messages_request({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
                            "tools": tools})
    ctx = RequestContext(message_id="msg_m", requested_model="claude", tool_names=ToolNameMap(64))
    return as_sent(translate_request(req, "gpt-4.1", TranslationOptions(), ctx)), ctx.notes


def _held_bytes() -> int:
    """What the memo's entries hold, counted from the entries themselves (not from its own tally)."""
    return sum(len(schema) + (len(made) if made is not None else 0)
               for schema, made in AR._SEEN_SCHEMAS.schemas.values())


def test_a_large_schema_under_a_fresh_name_leaves_nothing_in_the_memo():
    for i in range(4):
        sent, notes = _translated([{"name": f"tool_{i}", "input_schema": LARGE}])
        # still completed for OpenAI, as a small schema would be
        parameters = sent["tools"][0]["function"]["parameters"]
        assert parameters["properties"] == {} and len(parameters["examples"]) == 60_000
        assert notes == ["tool input_schema completed"]
    assert AR._SEEN_SCHEMAS.schemas == {} and AR._SEEN_SCHEMAS.size == 0


def test_the_memo_holds_bytes_only_and_stays_under_its_byte_limit():
    # Fresh names with schemas just under the per-schema limit: entries come and go, the bytes stay bounded.
    padding = "y" * (AR._MEMO_SCHEMA_LIMIT // 2 - 100)
    for i in range(3 * AR._MEMO_BYTE_LIMIT // AR._MEMO_SCHEMA_LIMIT):
        _translated([{"name": f"t{i}", "input_schema": {"type": "object", "description": padding}}])
        assert AR._SEEN_SCHEMAS.size == _held_bytes() <= AR._MEMO_BYTE_LIMIT
    assert AR._SEEN_SCHEMAS.schemas
    for schema, made in AR._SEEN_SCHEMAS.schemas.values():
        assert type(schema) is msgspec.Raw and (made is None or type(made) is msgspec.Raw)  # never a decoded dict


def test_a_schema_replaced_under_the_same_name_is_counted_once():
    small, bigger = {"type": "object"}, {"type": "object", "description": "z" * 5000}
    for schema in (small, bigger, small, bigger):
        _translated([{"name": "Same", "input_schema": schema}])
    assert list(AR._SEEN_SCHEMAS.schemas) == ["Same"] and AR._SEEN_SCHEMAS.size == _held_bytes()


def test_claude_codes_schemas_are_all_remembered():
    request = json.loads(FIXTURE.read_text())
    tools = request["tools"]
    first, _ = _translated(tools)
    kept = dict(AR._SEEN_SCHEMAS.schemas)
    assert len(kept) == len(tools)
    again, _ = _translated(tools)
    assert again == first
    # The second turn found every schema in the memo: no entry was replaced.
    assert all(AR._SEEN_SCHEMAS.schemas[name] is kept[name] for name in kept)
