"""Every translation key either does what it says on the route's upstream or is refused at load with file:line:
drop_headers strips what it names on anthropic routes, system_placement moves the system text on Responses
routes, passthrough goes with provider anthropic and only with it, and keys an anthropic route cannot act on
are refused there."""

from __future__ import annotations

from typing import Iterator

import pytest

from dragoman.config.load import parse_config
from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, config_yaml, post_messages, route
from tests.test_config import _error
from tests.upstreams import RecordedRequest
from tests.upstreams.anthropic_messages import MessageReply, ScriptedAnthropicUpstream
from tests.upstreams.openai_responses import ResponsesReply, ScriptedResponsesUpstream

ANTHROPIC = "routes:\n  - name: c\n    upstream: {provider: anthropic, model: claude-opus-4-1}\n"
CHAT = "routes:\n  - name: g\n    upstream: {provider: openai, model: gpt-5}\n"
RESPONSES = "routes:\n  - name: r\n    upstream: {provider: openai, model: gpt-5, api: responses}\n"


REFUSED: dict[str, tuple[str, int, str]] = {
    "drop-unknown-name": (
        CHAT + "    translation: {drop_headers: [cache_control, x-api-key]}\n", 4,
        'routes[0].translation.drop_headers[1]: "x-api-key" is not one of: cache_control, anthropic-beta',
    ),
    "passthrough-on-openai": (
        CHAT + "    translation:\n      passthrough: true\n", 5,
        "routes[0].translation.passthrough: passthrough needs provider anthropic",
    ),
    "passthrough-off-on-anthropic": (
        ANTHROPIC + "    translation:\n      passthrough: false\n", 5,
        "routes[0].translation.passthrough: provider anthropic is always passthrough",
    ),
    "openai-only-key-on-anthropic": (
        ANTHROPIC + "    translation:\n      passthrough: true\n      system_role: developer\n", 6,
        "routes[0].translation.system_role: has no effect on provider anthropic",
    ),
    "tool-use-on-anthropic": (
        ANTHROPIC + "    translation:\n      tool_use: openai_tool_calls\n", 5,
        "routes[0].translation.tool_use: has no effect on provider anthropic",
    ),
    "output-clamp-on-anthropic": (
        ANTHROPIC.replace("claude-opus-4-1}", "claude-opus-4-1, max_output_tokens: 4096}"), 3,
        "routes[0].upstream.max_output_tokens: has no effect on provider anthropic",
    ),
    "instructions-on-chat": (
        CHAT + "    translation:\n      system_placement: instructions\n", 5,
        "routes[0].translation.system_placement: instructions is a field of the Responses API",
    ),
    "unknown-placement-on-responses": (
        RESPONSES + "    translation:\n      system_placement: last_message\n", 5,
        'system_placement: "last_message" is not one of: first_message, instructions',
    ),
    "inbound-protocol": (
        CHAT + "    inbound_protocol: openai_chat\n", 4, 'inbound_protocol: "openai_chat" is not one of: anthropic',
    ),
    "streaming": (CHAT + "    translation: {streaming: sse}\n", 4, '"sse" is not one of: anthropic_events'),
}


@pytest.mark.parametrize(("text", "line", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_key_the_upstream_cannot_act_on_is_refused_at_its_line(text: str, line: int, message: str) -> None:
    got_line, got = _error(text)
    assert message in got
    assert got_line == line, got


def test_what_each_upstream_takes_loads() -> None:
    text = (ANTHROPIC + "    translation: {passthrough: true, drop_headers: [cache_control, anthropic-beta],"
            " streaming: anthropic_events}\n"
            + CHAT.replace("routes:\n", "") + "    translation: {system_placement: first_message, drop_headers: [cache_control]}\n"
            + RESPONSES.replace("routes:\n", "") + "    translation: {system_placement: instructions}\n")
    claude, chat, responses = parse_config(text, "config.yaml", {}).routes
    assert claude.translation.passthrough and claude.translation.drop_headers == ("cache_control", "anthropic-beta")
    assert not chat.translation.passthrough
    assert responses.translation.system_placement == "instructions"
    bare = parse_config(ANTHROPIC, "config.yaml", {}).routes[0]
    assert bare.translation.passthrough  # provider anthropic is passthrough whether or not the file says so


# ---- what the keys do, seen by the upstreams ---------------------------------------------------------------

CACHE = {"type": "ephemeral"}
BETA = "claude-code-20250219,brand-new-beta-2031-01-01"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[ScriptedAnthropicUpstream, ScriptedResponsesUpstream]]:
    with ScriptedAnthropicUpstream(MessageReply()) as claude, ScriptedResponsesUpstream(ResponsesReply(text="ok")) as resp:
        yield claude, resp


@pytest.fixture(scope="module")
def gateway(upstreams) -> Iterator[Gateway]:  # noqa: ANN001 - a fixture
    claude, resp = upstreams
    common = dict(provider="anthropic", model="claude-opus-4-1", api_key_ref="anthropic_prod")
    text = config_yaml([
        route("claude-drop", claude.base_url, translation={"drop_headers": ["cache_control", "anthropic-beta"]}, **common),
        route("claude-keep", claude.base_url, translation={"passthrough": True}, **common),
        route("resp-first", resp.responses_url, translation={"system_placement": "first_message"}),
        route("resp-default", resp.responses_url),
    ])
    with run_gateway(text, env=KEYS_ENV) as gw:
        yield gw


def _cached_body(model: str) -> dict:
    return {
        "model": model, "max_tokens": 64, "cache_control": CACHE,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": CACHE}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}, "cache_control": CACHE}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "run it", "cache_control": CACHE}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash",
                                               "input": {"command": "ls", "cache_control": "user data"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "cache_control": CACHE,
                                          "content": [{"type": "text", "text": "a.txt", "cache_control": CACHE}]}]},
        ],
    }


def _markers(value: object) -> int:
    """cache_control markers (objects) anywhere in a JSON value; the tool input's string one is not a marker."""
    if isinstance(value, dict):
        return sum(1 for k, v in value.items() if k == "cache_control" and isinstance(v, dict)) + sum(
            _markers(v) for v in value.values())
    if isinstance(value, list):
        return sum(_markers(v) for v in value)
    return 0


def _sent_to_claude(gateway: Gateway, claude: ScriptedAnthropicUpstream, model: str) -> RecordedRequest:
    """What the Anthropic upstream received for a body full of cache_control markers, sent with betas."""
    claude.reset(MessageReply())
    assert post_messages(gateway, _cached_body(model), {"anthropic-beta": BETA}).status == 200
    return claude.last_request


def test_drop_headers_strips_cache_control_and_betas_before_anthropic(gateway, upstreams) -> None:  # noqa: ANN001
    sent = _sent_to_claude(gateway, upstreams[0], "claude-drop")
    assert _markers(sent.body) == 0
    assert sent.body["messages"][1]["content"][0]["input"] == {"command": "ls", "cache_control": "user data"}
    assert "anthropic-beta" not in sent.headers
    assert sent.headers["anthropic-version"] == "2023-06-01"


def test_without_drop_headers_anthropic_gets_markers_and_betas_as_sent(gateway, upstreams) -> None:  # noqa: ANN001
    sent = _sent_to_claude(gateway, upstreams[0], "claude-keep")
    assert _markers(sent.body) == 6
    assert sent.headers["anthropic-beta"] == BETA


@pytest.mark.parametrize(("model", "first_item", "instructions"), [
    ("resp-first", {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Be brief."}]},
     None),
    ("resp-default", {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
     "Be brief."),
])
def test_system_placement_on_responses(gateway, upstreams, model: str, first_item: dict,  # noqa: ANN001
                                       instructions: str | None) -> None:
    _, resp = upstreams
    resp.reset(ResponsesReply(text="ok"))
    body = {"model": model, "max_tokens": 64, "system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]}
    assert post_messages(gateway, body).status == 200
    sent = resp.last_body
    assert sent["input"][0] == first_item
    assert sent.get("instructions") == instructions
