"""An image or document block's `source` must be an object: `{"type":"image","source":"abc"}` is a 400 whose
message gives the JSON path (it was an AttributeError in the routing features and a 500), on /v1/messages and
count_tokens, at the top level or inside a tool_result. What clients really send stays accepted: a string
`source` in a search_result block, and source types the gateway does not know."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.attack_gateway import CHAT, PASSTHROUGH, ROUTES, AttackGateway, attack_gateway

pytestmark = pytest.mark.timeout(60)

MESSAGES, COUNT = "/v1/messages", "/v1/messages/count_tokens"


@pytest.fixture(scope="module")
def gateway() -> Iterator[AttackGateway]:
    with attack_gateway() as gw:
        yield gw


def _post(gateway: AttackGateway, path: str, content: list, model: str = CHAT, stream: bool = False):
    body = {"model": model, "max_tokens": 5, "stream": stream, "messages": [{"role": "user", "content": content}]}
    return gateway.request("POST", path, json.dumps(body), {"anthropic-version": "2023-06-01"})


WRONG_SHAPES = {
    "image_source_string": ([{"type": "image", "source": "abc"}], "$.messages[0].content[0]", "source"),
    "document_source_string": ([{"type": "document", "source": "https://x/y.pdf"}], "$.messages[0].content[0]", "source"),
    "image_in_tool_result": ([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": "abc"}]}],
                             "$.messages[0].content[0].content[0]", "source"),
    "base64_without_data": ([{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}],
                            "$.messages[0].content[0].source", "data"),
}


@pytest.mark.parametrize("name", WRONG_SHAPES)
@pytest.mark.parametrize("path,stream,model", [(MESSAGES, False, m) for m in ROUTES] + [(MESSAGES, True, CHAT), (COUNT, False, CHAT)],
                         ids=["chat", "responses", "passthrough", "stream", "count_tokens"])
def test_wrong_source_shape_is_a_400_with_its_json_path(gateway, name, path, stream, model):
    content, where, what = WRONG_SHAPES[name]
    response = _post(gateway, path, content, model, stream)
    assert response.status == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert where in error["message"] and what in error["message"], error["message"]


def test_search_result_with_a_string_source_is_accepted(gateway):
    block = {"type": "search_result", "source": "https://example.com/doc", "title": "Doc",
             "content": [{"type": "text", "text": "found"}]}
    for path in (MESSAGES, COUNT):
        response = _post(gateway, path, [{"type": "text", "text": "hi"}, block])
        assert response.status == 200, response.text


def test_unknown_source_type_is_accepted_where_it_passes_through(gateway):
    content = [{"type": "text", "text": "hi"}, {"type": "image", "source": {"type": "holo_2031", "ref": "x"}}]
    assert _post(gateway, COUNT, content).status == 200
    assert _post(gateway, MESSAGES, content, PASSTHROUGH).status == 200
    refused = _post(gateway, MESSAGES, content)  # Chat cannot carry it: a clear 400, not a crash
    assert refused.status == 400 and "holo_2031" in refused.json()["error"]["message"], refused.text


def test_gateway_logged_no_unhandled_error(gateway):
    assert gateway.proc.poll() is None
    logged = gateway.stderr_text()
    assert "unhandled error" not in logged and "Traceback" not in logged, logged[-3000:]
