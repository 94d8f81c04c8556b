"""An audit record's free text is bounded when the record is built: the client's `model` may be as long as the body
limit (32 MiB) and the upstream's answered `model` as long as its answer, and the writer holds records by count
(up to `queue_size`, twice while the store is down), so whole they held gigabytes and filled every row. Each field
keeps at most TEXT_LIMIT characters, a longer one cut with a marker, and the cut never leaves a key half shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from dragoman.exchange.attempt import Attempt
from dragoman.exchange.audit import record_for
from dragoman.exchange.lifecycle import Exchange
from dragoman.observe.record import TEXT_LIMIT
from dragoman.redaction import CLIPPED, clip
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from tests.audit_helpers import ENV, config, headers, messages_body, route, wait_record
from tests.gateway import run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream

LONG = "claude-" + "x" * 5000


def _clipped(text: str) -> str:
    return text[: TEXT_LIMIT - len(CLIPPED)] + CLIPPED


def test_clip_keeps_a_short_text_as_it_is_without_copying() -> None:
    text = "".join(["gpt-5-", "2025-08-07"])  # built at run time: not an interned constant
    assert clip(text, TEXT_LIMIT) is text
    assert clip("x" * TEXT_LIMIT, TEXT_LIMIT) == "x" * TEXT_LIMIT


def test_clip_cuts_a_long_text_with_a_marker_and_no_part_of_a_key_it_splits() -> None:
    assert clip(LONG, TEXT_LIMIT) == _clipped(LONG)
    # A Google key whose first 15 characters come before the cut: cut plainly, they would stay, too few for a later
    # `redact` to know them for a key.
    key = "AIzaSyD-abcdefghijklmnopqrstuvwxyz01234"
    clipped = clip("m" * (TEXT_LIMIT - len(CLIPPED) - 16) + " " + key + " " + "m" * 1000, TEXT_LIMIT)
    assert len(clipped) <= TEXT_LIMIT and clipped.endswith(CLIPPED) and "AIzaSy" not in clipped


def test_record_for_bounds_every_free_text_field() -> None:
    exchange = Exchange("req_long")
    exchange.requested_model = exchange.upstream_model = exchange.error_type = LONG
    exchange.attempts = [Attempt("r", "error", 500, LONG, 1.0, LONG, LONG)]
    exchange.ctx = RequestContext(message_id="m", requested_model=LONG, tool_names=ToolNameMap(64))
    exchange.ctx.notes.append(LONG)  # past note()'s own bound: the record bounds what it is handed
    exchange.loop_events.append(LONG)
    record = record_for(exchange, 500, None)
    candidate = record.candidates[0]
    fields = [record.requested_model, record.upstream_model, record.error_type, candidate.model, candidate.upstream,
              candidate.error_type, *record.notes, *record.loop_events]
    assert fields == [_clipped(LONG)] * 8


@pytest.mark.timeout(30)
def test_a_huge_model_from_the_client_is_refused_and_one_from_the_upstream_is_stored_clipped_and_redacted(
        tmp_path: Path) -> None:
    """End to end over sockets: a 1 MiB `model` from the client is a 400 at decode (protocols/anthropic.py
    MAX_MODEL_CHARS); a 2 MiB one and one holding a key from the upstream are stored clipped and redacted."""
    store = f"sqlite:///{tmp_path}/audit.db"
    client_model = "claude-" + "x" * (1024 * 1024)
    upstream_model = "gpt-5-" + "m" * (2 * 1024 * 1024)
    with ScriptedChatUpstream(ChatReply(text="hi", model=upstream_model)) as upstream:
        text = config([route("r", upstream.base_url)], store=store, default_route="r")
        with run_gateway(text, env={**ENV, "DRAGOMAN_AUDIT_STORE": ""}) as gateway:
            refused = gateway.request("POST", "/v1/messages", messages_body(client_model), headers(None), timeout=20)
            assert refused.status == 400, refused.text[:300]
            assert refused.json()["error"]["type"] == "invalid_request_error"
            assert "x" * 300 not in refused.text  # the name is not echoed back
            huge = gateway.request("POST", "/v1/messages", messages_body("claude-sonnet-4"), headers(None), timeout=20)
            assert huge.status == 200, huge.text[:300]
            upstream.reset(ChatReply(text="hi", model="gpt-5 api_key=sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234"))
            keyed = gateway.request("POST", "/v1/messages", messages_body("claude-sonnet-4"), headers(None), timeout=20)
            assert keyed.status == 200, keyed.text[:300]
            huge_rec = wait_record(store, huge.headers["request-id"])
            keyed_rec = wait_record(store, keyed.headers["request-id"])
    assert huge_rec["upstream_model"] == _clipped(upstream_model)
    assert keyed_rec["upstream_model"] == "gpt-5 [REDACTED]"
