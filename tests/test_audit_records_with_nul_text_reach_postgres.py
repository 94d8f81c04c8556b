"""A client may send a NUL character in any string it controls (the model name, metadata.user_id), and an upstream
in tool names and ids; PostgreSQL refuses NUL in TEXT and JSONB. One such request must not stall the audit writer
(its batch retried forever) nor lose the records batched with it: on PostgreSQL, NUL is stored as U+FFFD."""

from __future__ import annotations

from tests.audit_helpers import ENV, config, headers, messages_body, route, wait_records
from tests.gateway import run_gateway
from tests.observe_pg import cluster
from tests.upstreams import ChatReply, ScriptedChatUpstream


def test_a_request_with_nul_in_its_model_is_recorded_on_postgres_with_its_batch() -> None:
    url = cluster().new_database()
    with ScriptedChatUpstream() as upstream:
        upstream.reset(ChatReply(text="hello", usage=(10, 5, 0)))
        text = config([route("main", upstream.chat_url)], store=url, default_route="main")
        with run_gateway(text, env={**ENV, "DRAGOMAN_AUDIT_STORE": ""}) as gateway:
            ids = []
            for model in ("gpt-5", "gpt\x00-5", "gpt-5"):
                answer = gateway.request("POST", "/v1/messages", {**messages_body("gpt-5"), "model": model}, headers(None))
                assert answer.status == 200, answer.text
                ids.append(answer.headers["request-id"])
            records = wait_records(url, ids)
    assert records[ids[1]]["requested_model"] == "gpt\ufffd-5"
