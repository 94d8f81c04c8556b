"""Which requests a policy sees: without applies_to, every request (route names included: the guide's
cost_aware_routing is meant for requests naming gpt-5-via-gateway); with applies_to, the names its fnmatch
patterns match, route names included. The route a policy picks is final: no policy runs on it again."""

from __future__ import annotations

import pytest

from dragoman.config.load import parse_config
from dragoman.policy.features import RequestFeatures
from dragoman.routing.router import Router
from tests.gateway import run_gateway
from tests.routing_helpers import KEYS_ENV, sdk, seed_config
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.upstreams.anthropic_messages import MessageReply, ScriptedAnthropicUpstream
from tests.upstreams.openai_responses import ResponsesReply, ScriptedResponsesUpstream

ROUTES = """\
routes:
  - {name: small, upstream: {provider: openai_compatible, model: s, endpoint: "http://127.0.0.1:9/v1"}}
  - {name: medium, upstream: {provider: openai_compatible, model: m, endpoint: "http://127.0.0.1:9/v1"}}
  - {name: large, upstream: {provider: openai_compatible, model: l, endpoint: "http://127.0.0.1:9/v1"}}
  - {name: gpt-5-via-gateway, upstream: {provider: openai_compatible, model: g, endpoint: "http://127.0.0.1:9/v1"}}
default_route: medium
"""
BY_SIZE = """\
      if input_tokens < 8000:
        route small
      elif input_tokens < 60000:
        route medium
      else:
        route large
"""


def _router(policies: str) -> Router:
    return Router(parse_config(ROUTES + "policies:\n" + policies, "config.yaml", {}))


def _route(router: Router, model: str, tokens: int = 100) -> str:
    return router.decide(model, lambda: RequestFeatures(model=model, input_tokens=tokens)).route.name


@pytest.mark.parametrize(("tokens", "route"), [(100, "small"), (20_000, "medium"), (90_000, "large")])
def test_policy_without_applies_to_routes_requests_naming_a_route(tokens: int, route: str) -> None:
    router = _router(f"  - name: by_size\n    rule: |\n{BY_SIZE}")
    assert _route(router, "gpt-5-via-gateway", tokens) == route
    assert _route(router, "claude-opus-5-5", tokens) == route


def test_applies_to_patterns_match_route_names_too() -> None:
    router = _router(f"  - name: by_size\n    applies_to: ['gpt-5-*']\n    rule: |\n{BY_SIZE}")
    assert _route(router, "gpt-5-via-gateway", 90_000) == "large"
    assert _route(router, "small", 90_000) == "small"  # not matched: plain name routing
    assert _route(router, "claude-opus-5-5", 90_000) == "medium"  # not matched: default_route


def test_the_route_a_policy_picks_is_final() -> None:
    # to_b sends "gpt-5-via-gateway" to small; to_c applies to "small" but never runs on to_b's pick.
    router = _router(
        "  - {name: to_b, applies_to: [gpt-5-via-gateway], rule: route small}\n"
        "  - {name: to_c, applies_to: [small], rule: route large}\n"
    )
    decision = router.decide("gpt-5-via-gateway", lambda: RequestFeatures())
    assert (decision.route.name, decision.policy) == ("small", "to_b")
    assert _route(router, "small") == "large"  # naming it is another request: to_c applies


def test_guide_setup_routes_gpt_5_via_gateway_by_size_over_http() -> None:
    with ScriptedResponsesUpstream(ResponsesReply(text="from mini")) as mini, \
            ScriptedChatUpstream(ChatReply(text="from gpt-5")) as chat, \
            ScriptedAnthropicUpstream(MessageReply(text="from claude")) as claude, \
            run_gateway(seed_config(mini.responses_url, chat.chat_url, claude.base_url, keep_applies_to=False),
                        env=KEYS_ENV) as gateway:
        client = sdk(gateway)

        def ask(words: int) -> str:
            message = client.messages.create(model="gpt-5-via-gateway", max_tokens=50,
                                             messages=[{"role": "user", "content": "word " * words}])
            return message.content[0].text

        assert ask(10) == "from mini"  # a short turn: the guide's point, the cheap model
        assert ask(20_000) == "from gpt-5"
        assert ask(80_000) == "from claude"  # long context
        assert (len(mini.bodies), len(chat.bodies), len(claude.bodies)) == (1, 1, 1)
