"""Prompt-prefix variants over real sockets: requests on a route with variants are split across them, each
reaching the upstream with its variant's prefix before the client's system prompt (the plain variant: the prompt
as sent), and each request's audit record names the variant it got."""

from __future__ import annotations

import yaml

from tests.gateway import run_gateway
from tests.routing_helpers import KEYS_ENV, post_messages, route, wait_until
from tests.upstreams import ChatReply, ScriptedChatUpstream

CC_AWARE = "You are running inside Claude Code: call its tools by their exact names."


def test_requests_split_across_variants_and_records_name_them() -> None:
    entry = route("a", "", model="gpt-a")
    with ScriptedChatUpstream(ChatReply(text="ok")) as upstream:
        entry["upstream"]["endpoint"] = upstream.chat_url
        entry["prompt_prefixes"] = [{"name": "plain"}, {"name": "cc-aware", "text": CC_AWARE}]
        config = yaml.safe_dump({"routes": [entry], "default_route": "a", "admin": {"keys": ["adm-v"]}})
        with run_gateway(config, env=KEYS_ENV) as gateway:
            for i in range(20):
                body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "system": f"Be brief #{i}.",
                        "messages": [{"role": "user", "content": "hi"}]}
                assert post_messages(gateway, body).status == 200
            systems = {b["messages"][0]["content"] for b in upstream.bodies}

            def rows() -> list[dict]:
                answer = gateway.request("GET", "/api/requests?since=1h&limit=100", headers={"x-api-key": "adm-v"})
                return answer.json()["data"]

            wait_until(lambda: len(rows()) == 20, 10, "the 20 audit records")
            written = rows()
    got = {}
    for i in range(20):
        plain, aware = f"Be brief #{i}.", f"{CC_AWARE}\n\nBe brief #{i}."
        assert (plain in systems) != (aware in systems), i
        got[f"#{i}"] = "plain" if plain in systems else "cc-aware"
    assert set(got.values()) == {"plain", "cc-aware"}  # 20 even draws: both (but with odds of 2 in a million)
    assert sorted(r["prompt_variant"] for r in written) == sorted(got.values())
