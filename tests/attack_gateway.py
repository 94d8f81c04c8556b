"""One gateway process for the tests that attack it with bad bodies: a Chat route (the default), a Responses
route and an Anthropic passthrough route, each on a scripted upstream that always answers 200 "ok", so every
refusal and every 5xx is the gateway's own doing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from tests.gateway import UPSTREAM_ENV, Gateway, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.upstreams.anthropic_messages import MessageReply, ScriptedAnthropicUpstream
from tests.upstreams.openai_responses import ResponsesReply, ScriptedResponsesUpstream

CHAT, RESPONSES, PASSTHROUGH = "attack-chat", "attack-responses", "claude-attack-passthrough"
ROUTES = (CHAT, RESPONSES, PASSTHROUGH)


@dataclass
class AttackGateway(Gateway):
    upstreams: tuple[ScriptedChatUpstream, ...] = ()

    def forget_requests(self) -> None:
        """Drop what the upstreams recorded: thousands of fuzzed bodies would otherwise pile up in memory."""
        for upstream in self.upstreams:
            upstream.requests.clear()


@contextlib.contextmanager
def attack_gateway() -> Iterator[AttackGateway]:
    with ScriptedChatUpstream(ChatReply(text="ok")) as chat, \
            ScriptedResponsesUpstream(ResponsesReply(text="ok")) as responses, \
            ScriptedAnthropicUpstream(MessageReply(text="ok")) as anthropic:
        env = {**UPSTREAM_ENV, "ANTHROPIC_PROD": "sk-ant-attack", "DRAGOMAN_SIGNING_KEY": "attack-signing-key-of-32-characters"}
        with run_gateway(_config(chat.chat_url, responses.responses_url, anthropic.messages_url), env=env) as gw:
            yield AttackGateway(gw.port, gw.proc, gw.stderr_path, upstreams=(chat, responses, anthropic))


def _config(chat: str, responses: str, anthropic: str) -> str:
    def route(name: str, provider: str, model: str, endpoint: str, key: str, **extra: object) -> dict:
        return {"name": name, "upstream": {"provider": provider, "model": model, "endpoint": endpoint,
                                           "api_key_ref": key}, **extra}

    return yaml.safe_dump({"default_route": CHAT, "routes": [
        route(CHAT, "openai", "gpt-5", chat, "openai_prod"),
        route(RESPONSES, "openai", "gpt-5", responses, "openai_prod"),
        route(PASSTHROUGH, "anthropic", PASSTHROUGH, anthropic, "anthropic_prod", translation={"passthrough": True}),
    ]}, sort_keys=False)
