"""A request body nested deeper than the gateway follows is a 400 naming the limit (it was a RecursionError and
a 500: ~1,000 levels in any field, even an unknown one in a 2 KB body, or ~500 nested tool_result blocks).

A body nested exactly to the limit is served on every route and endpoint: the walks after the decode
(translation, re-encoding for the upstream, the passthrough's re-decode, token counting) have the stack they
need. Nested JSON inside a string (metadata.user_id) is not the body's nesting: it is read or ignored.

The limit is ~949 levels and can be one less for a request whose body arrives after its headers (the
server then decodes it one frame deeper); each refusal names the limit that applied to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import msgspec
import pytest

from dragoman.protocols import anthropic as A
from dragoman.protocols import json_depth
from tests.attack_gateway import CHAT, PASSTHROUGH, RESPONSES, ROUTES, AttackGateway, attack_gateway

pytestmark = pytest.mark.timeout(120)

MESSAGES, COUNT = "/v1/messages", "/v1/messages/count_tokens"
PAD = "\x00pad\x00"
HI = {"role": "user", "content": "hi"}
NESTED = "\x00nested tool results\x00"


def _nested_results(levels: int, leaf: str) -> str:
    """A user turn's content: tool_result blocks nested `levels` deep around a text block whose `pad` is `leaf`
    (JSON text, built as text: the test's own json.dumps would run out of recursion first)."""
    inner = '[{"type": "text", "text": "x", "pad": %s}]' % leaf
    return '[{"type": "tool_result", "tool_use_id": "toolu_1", "content": ' * levels + inner + "}]" * levels


# Each kind puts the nesting in another place; PAD is where the extra levels go.
KINDS: dict[str, Callable[[str], dict]] = {
    "unknown_field": lambda model: {"model": model, "max_tokens": 5, "messages": [HI], "zz_unknown": PAD},
    "tool_use_input": lambda model: {"model": model, "max_tokens": 5, "messages": [HI, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": PAD}}]}]},
    "tool_input_schema": lambda model: {"model": model, "max_tokens": 5, "messages": [HI], "tools": [
        {"name": "Bash", "input_schema": {"type": "object", "properties": {"command": PAD}}}]},
    "context_management": lambda model: {"model": model, "max_tokens": 5, "messages": [HI], "context_management": PAD},
    "nested_tool_results": lambda model: {"model": model, "max_tokens": 5, "messages": [
        {"role": "user", "content": NESTED}]},
    "system_block": lambda model: {"model": model, "max_tokens": 5, "messages": [HI],
                                   "system": [{"type": "text", "text": "be brief", "zz": PAD}]},
}


def body_at_depth(kind: str, model: str, depth: int) -> bytes:
    """The kind's body with its nesting padded so the whole body nests exactly `depth` levels."""
    template = json.dumps(KINDS[kind](model)).encode()
    template = template.replace(json.dumps(NESTED).encode(), _nested_results(300, json.dumps(PAD)).encode())
    placeholder = json.dumps(PAD).encode()
    at = _depth(template.replace(placeholder, b"[" * 50 + b"]" * 50)) - 50  # levels around the placeholder
    assert depth > at, (kind, depth, at)
    body = template.replace(placeholder, b"[" * (depth - at) + b"]" * (depth - at))
    assert _depth(body) == depth
    return body


def _depth(raw: bytes) -> int:
    """Array/object nesting of a JSON text (test-side reference, not fast)."""
    deepest = level = 0
    in_string = escaped = False
    for byte in raw.decode():
        if in_string:
            escaped, in_string = (False, True) if escaped else (byte == "\\", byte != '"')
        elif byte == '"':
            in_string = True
        elif byte in "[{":
            level += 1
            deepest = max(deepest, level)
        elif byte in "]}":
            level -= 1
    return deepest


@pytest.fixture(scope="module")
def gateway() -> Iterator[AttackGateway]:
    with attack_gateway() as gw:
        yield gw


@pytest.fixture(scope="module")
def limits(gateway) -> dict[str, int]:
    """The highest limit each endpoint names (a request's own limit is that or one less)."""
    too_deep = body_at_depth("unknown_field", CHAT, 5000)
    return {path: max(_named_limit(gateway.request("POST", path, too_deep)) for _ in range(3))
            for path in (MESSAGES, COUNT)}


def _near(named: int, limit: int) -> bool:
    """A request's limit depends on the stack depth the server decoded it at (json_depth's docstring): within a
    couple of frames of the limit the module fixture measured."""
    return limit - 2 <= named <= limit + 1


def _named_limit(response) -> int:
    assert response.status == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    match = re.search(r"more than (\d+) levels deep", error["message"])
    assert match, error["message"]
    return int(match.group(1))


def _send(gateway: AttackGateway, path: str, body: bytes, stream: bool):
    if stream:
        body = body.replace(b'"max_tokens": 5', b'"max_tokens": 5, "stream": true', 1)
    gateway.forget_requests()
    return gateway.request("POST", path, body, {"anthropic-version": "2023-06-01"})


ENDPOINTS = [(MESSAGES, False), (MESSAGES, True), (COUNT, False)]


@pytest.mark.parametrize("path,stream", ENDPOINTS, ids=["messages", "stream", "count_tokens"])
def test_thousand_levels_in_a_2kb_body_is_a_400_naming_the_limit(gateway, limits, path, stream):
    body = b'{"model": "attack-chat", "max_tokens": 5, "messages": [], "zz": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert len(body) < 2100
    assert _near(_named_limit(_send(gateway, path, body, stream)), limits[path])
    assert limits[path] < 1000


@pytest.mark.parametrize("path,stream", ENDPOINTS, ids=["messages", "stream", "count_tokens"])
def test_five_hundred_nested_tool_results_are_a_400(gateway, limits, path, stream):
    body = ('{"model": "%s", "max_tokens": 5, "messages": [{"role": "user", "content": %s}]}'
            % (CHAT, _nested_results(500, "1"))).encode()
    assert _near(_named_limit(_send(gateway, path, body, stream)), limits[path])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path,stream,model", [
    *[(MESSAGES, stream, model) for stream in (False, True) for model in ROUTES], (COUNT, False, CHAT),
], ids=[*[f"{'stream' if s else 'messages'}-{m}" for s in (False, True) for m in ("chat", "responses", "passthrough")],
        "count_tokens"])
def test_body_nested_to_its_limit_is_served_and_one_level_more_refused(gateway, limits, kind, path, stream, model):
    limit = limits[path]
    answers = {depth: _send(gateway, path, body_at_depth(kind, model, depth), stream) for depth in range(limit - 2, limit + 3)}
    for depth, answer in answers.items():
        if answer.status == 200:
            _assert_served(answer, path, stream)
        else:  # refused: only past the limit that applied to this request
            assert _named_limit(answer) < depth and _near(_named_limit(answer), limit), (depth, answer.text)
    assert answers[limit - 2].status == 200
    assert answers[limit + 2].status == 400


def _assert_served(answer, path: str, stream: bool) -> None:
    if path == COUNT:
        assert answer.json()["input_tokens"] > 0
    elif stream:
        assert "event: message_stop" in answer.text and "event: error" not in answer.text, answer.text
    else:
        assert answer.json()["content"], answer.text


@pytest.mark.parametrize("model", [CHAT, RESPONSES, PASSTHROUGH])
def test_deep_json_inside_metadata_user_id_is_just_a_string(gateway, model):
    user_id = '{"device_id": ' + "[" * 5000 + "]" * 5000 + "}"
    body = {"model": model, "max_tokens": 5, "messages": [HI], "metadata": {"user_id": user_id}}
    response = _send(gateway, MESSAGES, json.dumps(body).encode(), False)
    assert response.status == 200, response.text


def test_gateway_logged_no_unhandled_error(gateway):
    assert gateway.proc.poll() is None
    logged = gateway.stderr_text()
    assert "unhandled error" not in logged and "Traceback" not in logged, logged[-3000:]


# ---- the decode itself, in process --------------------------------------------------------------------------


def test_decode_refuses_exactly_past_the_limit_it_names():
    decode = msgspec.json.Decoder(A.MessagesRequest).decode
    with pytest.raises(json_depth.TooDeep) as refused:
        json_depth.decode(decode, body_at_depth("unknown_field", CHAT, 100_000))
    limit = refused.value.limit
    assert f"more than {limit} levels deep" in str(refused.value)
    assert json_depth.decode(decode, body_at_depth("unknown_field", CHAT, limit)).model == CHAT
    with pytest.raises(json_depth.TooDeep):
        json_depth.decode(decode, body_at_depth("unknown_field", CHAT, limit + 1))


def test_decode_keeps_headroom_for_the_walks_after_it():
    # Whatever decode accepts can be encoded again 16 frames deeper than decode's caller (the server's later
    # walks ran 1-3 frames deeper when measured); without the headroom the encode would overflow.
    decode = msgspec.json.Decoder(A.MessagesRequest).decode
    with pytest.raises(json_depth.TooDeep) as refused:
        json_depth.decode(decode, body_at_depth("tool_input_schema", CHAT, 100_000))
    request = json_depth.decode(decode, body_at_depth("tool_input_schema", CHAT, refused.value.limit))

    def deeper(frames: int) -> bytes:
        return msgspec.json.encode(request) if frames == 0 else deeper(frames - 1)

    assert deeper(16)
