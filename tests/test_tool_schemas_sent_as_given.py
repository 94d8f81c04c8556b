"""A tool's input_schema reaches a Chat or Responses upstream as the JSON text the client sent: the gateway never
decodes it on the way (protocols/anthropic.py), so its key order, escapes and spacing arrive as written. Only a
schema that is not an object schema with properties is completed (a new object, noted); one that is not a JSON
object at all is a 400 naming it, before any upstream call."""

from __future__ import annotations

import json

import pytest

from dragoman.translate.chat.request import translate_request
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from tests.gateway import ROUTE_NAME
from tests.upstreams import ChatReply
from tests.upstreams.openai_responses import ResponsesReply
from tests.wire import as_sent, messages_request

pytestmark = pytest.mark.timeout(30)

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
# Escapes, a key order no encoder would choose, and spaces: a decode and re-encode would change each.
SCHEMA = ('{"required": ["caf\\u00e9"], "type": "object", "properties": {"caf\\u00e9": {"type": "string", '
          '"description": "a \\"quoted\\" \\u2014 dash"}}, "additionalProperties": false}')


def _body(schema: str) -> bytes:
    """A request offering one tool whose input_schema is exactly `schema` (built as text, not json.dumps)."""
    return (f'{{"model": "{ROUTE_NAME}", "max_tokens": 50, "messages": [{{"role": "user", "content": "hi"}}], '
            f'"tools": [{{"name": "Pick", "description": "pick one", "input_schema": {schema}}}]}}').encode()


def test_a_chat_upstream_gets_the_schema_byte_for_byte(gateway, chat_upstream):
    chat_upstream.script(ChatReply(text="ok"))
    response = gateway.request("POST", "/v1/messages", _body(SCHEMA), HEADERS)
    assert response.status == 200, response.text
    assert b'"parameters":' + SCHEMA.encode() in chat_upstream.requests[-1].raw
    assert chat_upstream.last_body["tools"][0]["function"]["parameters"] == json.loads(SCHEMA)


def test_a_responses_upstream_gets_the_schema_byte_for_byte(responses_gateway, responses_upstream):
    responses_upstream.script(ResponsesReply(text="ok"))
    response = responses_gateway.request("POST", "/v1/messages", _body(SCHEMA), HEADERS)
    assert response.status == 200, response.text
    assert b'"parameters":' + SCHEMA.encode() in responses_upstream.requests[-1].raw


@pytest.mark.parametrize("schema", ['"an object"', "[1, 2]", "5", "true"])
def test_a_tool_schema_that_is_not_an_object_is_a_400_naming_it(gateway, chat_upstream, schema):
    before = len(chat_upstream.requests)
    response = gateway.request("POST", "/v1/messages", _body(schema), HEADERS)
    assert response.status == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert "input_schema must be a JSON object" in error["error"]["message"]
    assert "$.tools[0].input_schema" in error["error"]["message"]
    assert len(chat_upstream.requests) == before  # refused before any upstream call


def test_a_null_schema_is_no_schema(gateway, chat_upstream):
    chat_upstream.script(ChatReply(text="ok"))
    response = gateway.request("POST", "/v1/messages", _body("null"), HEADERS)
    assert response.status == 200, response.text
    assert chat_upstream.last_body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}


def _parameters(schema: dict) -> tuple[dict, list[str]]:
    req = messages_request({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
                            "tools": [{"name": "Pick", "input_schema": schema}]})
    ctx = RequestContext(message_id="msg_s", requested_model="claude", tool_names=ToolNameMap(64))
    sent = as_sent(translate_request(req, "gpt-4.1", TranslationOptions(), ctx))
    return sent["tools"][0]["function"]["parameters"], ctx.notes


def test_a_schema_changed_under_the_same_name_is_read_again():
    # What a schema becomes is remembered per tool name while its text stays the same: a client that changes the
    # schema under the same name gets the new one's treatment, each time it changes.
    bare, full = {"type": "object"}, {"type": "object", "properties": {"a": {"type": "string"}}}
    assert _parameters(bare) == ({"type": "object", "properties": {}}, ["tool input_schema completed"])
    assert _parameters(bare) == ({"type": "object", "properties": {}}, ["tool input_schema completed"])
    assert _parameters(full) == (full, [])
    assert _parameters(bare) == ({"type": "object", "properties": {}}, ["tool input_schema completed"])
