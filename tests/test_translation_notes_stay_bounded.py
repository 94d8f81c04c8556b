"""A request's translation notes (what was dropped or changed, kept in its audit record and trace span) stay few and
short whatever the input: notes that name what the input carried (`user {type} block dropped`, `output {type} item
dropped`) would otherwise grow with thousands of made-up block types, each compared with every note before it on the
event loop. At most MAX_NOTES notes of at most NOTE_LENGTH characters, then one note saying more were left out;
the notes the correctness loop reads are kept past the cap."""

from __future__ import annotations

import json
import pytest

from dragoman.translate.request_context import MAX_NOTES, NOTE_LENGTH, OVERFLOW, RequestContext
from dragoman.translate.tool_arguments import NOTE_INVALID
from dragoman.translate.tool_names import ToolNameMap
from tests.audit_helpers import wait_record
from tests.gateway import Gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.upstreams.openai_chat import RawBody
from tests.upstreams.openai_responses import ScriptedResponsesUpstream

pytestmark = pytest.mark.timeout(60)

BLOCKS = 8_000  # made-up block types in one request (or item types in one answer): ~135 KB


def _context() -> RequestContext:
    return RequestContext(message_id="msg_1", requested_model="m", tool_names=ToolNameMap(64))


def test_notes_past_the_cap_become_one_overflow_note() -> None:
    ctx = _context()
    for i in range(10_000):
        ctx.note(f"user x{i} block dropped")
    assert len(ctx.notes) == MAX_NOTES + 1
    assert ctx.notes[:2] == ["user x0 block dropped", "user x1 block dropped"] and ctx.notes[-1] == OVERFLOW


def test_a_note_the_loop_reads_is_kept_past_the_cap_and_once() -> None:
    ctx = _context()
    for i in range(MAX_NOTES + 5):
        ctx.note(f"output t{i} item dropped")
    ctx.note(NOTE_INVALID)
    ctx.note(NOTE_INVALID)
    assert ctx.notes[-2:] == [OVERFLOW, NOTE_INVALID]


def test_a_long_note_is_cut_and_still_noted_once() -> None:
    ctx = _context()
    long = "user " + "x" * 100_000 + " block dropped"
    ctx.note(long)
    ctx.note(long)
    assert len(ctx.notes) == 1 and len(ctx.notes[0]) == NOTE_LENGTH and ctx.notes[0].endswith("…")


MODEL = "gpt-5-via-gateway"  # the conftest gateways' route (Chat: `gateway`; Responses: `responses_gateway`)


def _post(gateway: Gateway, content: object) -> tuple[int, dict, str]:
    conn = gateway.connection()
    body = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": content}]}
    conn.request("POST", "/v1/messages", json.dumps(body), {"content-type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read()), response.getheader("request-id") or ""


def test_a_request_with_thousands_of_unknown_block_types_is_served_with_bounded_notes(
        gateway: Gateway, chat_upstream: ScriptedChatUpstream) -> None:
    chat_upstream.script(ChatReply(text="served"))
    content = [{"type": "text", "text": "hello"}] + [{"type": f"x{i}"} for i in range(BLOCKS)]
    status, answer, request_id = _post(gateway, content)
    assert status == 200 and answer["content"][0]["text"] == "served"
    assert "hello" in json.dumps(chat_upstream.requests[-1].body["messages"][-1])
    notes = wait_record(gateway.audit_store, request_id)["notes"]
    assert len(notes) == MAX_NOTES + 1 and notes[0] == "user x0 block dropped" and notes[-1] == OVERFLOW


def test_an_answer_with_thousands_of_unknown_item_types_is_served_with_bounded_notes(
        responses_gateway: Gateway, responses_upstream: ScriptedResponsesUpstream) -> None:
    items: list[dict] = [{"type": f"t{i}", "id": f"i{i}"} for i in range(BLOCKS)]
    items.append({"type": "message", "id": "m1", "role": "assistant", "status": "completed",
                  "content": [{"type": "output_text", "text": "still here", "annotations": []}]})
    answer = {"id": "resp_1", "object": "response", "status": "completed", "model": "gpt-5", "output": items,
              "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}}
    responses_upstream.script(RawBody(json.dumps(answer).encode(), "application/json"))
    status, body, request_id = _post(responses_gateway, "hi")
    assert status == 200 and body["content"][-1]["text"] == "still here"
    notes = wait_record(responses_gateway.audit_store, request_id)["notes"]
    assert len(notes) == MAX_NOTES + 1 and "output t0 item dropped" in notes[:2] and notes[-1] == OVERFLOW
