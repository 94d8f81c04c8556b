"""Every request part the translators refuse is a 400 whose message ends with the part's JSON path, in the
format of msgspec's own validation errors (`... - at `$.messages[3].content[1]``), on Chat and Responses
alike: the client can find what to fix, whichever layer refused it."""

from __future__ import annotations

import pytest

from dragoman.errors import InvalidRequest
from tests.request_translators import PROTOCOLS, translate

KEY = "sk-team-1"
AUTH = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
CALL = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}]}
READ = {"name": "Read", "input_schema": {"type": "object", "properties": {}}}


def _user(*blocks: dict) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": "look"}, *blocks]}


def _result(*content: dict) -> dict:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "ok"}, *content]}]}


REFUSED = {
    "unknown_role": ({"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}]},
                     "unknown role 'robot' (expected user, assistant or system) - at `$.messages[1].role`"),
    "image_without_source": ({"messages": [_user({"type": "image"})]},
                             "image block has no source object - at `$.messages[0].content[1].source`"),
    "image_source_type": ({"messages": [_user({"type": "image", "source": {"type": "file", "file_id": "f1"}})]},
                          "image source type 'file' cannot be sent to this upstream - at `$.messages[0].content[1].source.type`"),
    "document_without_source": ({"messages": [_user({"type": "document"})]},
                                "document block has no source object - at `$.messages[0].content[1].source`"),
    "document_source_type": ({"messages": [_user({"type": "document", "source": {"type": "carrier_pigeon"}})]},
                             "document source type 'carrier_pigeon' cannot be sent to this upstream - at `$.messages[0].content[1].source.type`"),
    "image_in_tool_result": ({"messages": [{"role": "user", "content": "go"}, CALL, _result({"type": "image", "source": {"type": "url"}})]},
                             "image source type 'url' cannot be sent to this upstream - at `$.messages[2].content[0].content[1].source.type`"),
    "server_tool": ({"tools": [READ, {"type": "web_search_20250305", "name": "web_search"}], "messages": [{"role": "user", "content": "hi"}]},
                    "tool 'web_search' is an Anthropic server tool (web_search_20250305), which this route's upstream cannot run; "
                    "remove it or set translation.server_tools: drop on the route - at `$.tools[1]`"),
    "tool_choice_without_name": ({"tools": [READ], "tool_choice": {"type": "tool"}, "messages": [{"role": "user", "content": "hi"}]},
                                 "tool_choice of type 'tool' needs a name - at `$.tool_choice`"),
    "tool_choice_type": ({"tools": [READ], "tool_choice": {"type": "sometimes"}, "messages": [{"role": "user", "content": "hi"}]},
                         "unknown tool_choice type 'sometimes' (expected auto, any, tool or none) - at `$.tool_choice.type`"),
    "max_tokens_zero": ({"max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]},
                        "max_tokens must be at least 1 - at `$.max_tokens`"),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", REFUSED)
def test_refusal_ends_with_the_json_path_of_the_part(protocol: str, case: str) -> None:
    body, message = REFUSED[case]
    with pytest.raises(InvalidRequest) as refused:
        translate(protocol, body)
    assert refused.value.message == message


def _refusal(response) -> str:
    assert response.status == 400, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
    return body["error"]["message"]


def test_the_gateway_answers_the_same_path_format_as_msgspec(gateway_for, chat_upstream) -> None:
    gw = gateway_for(chat_upstream, auth_keys=[KEY])
    base = {"model": "gpt-5-via-gateway", "max_tokens": 50}
    by_msgspec = _refusal(gw.request("POST", "/v1/messages", {**base, "max_tokens": "x", "messages": []}, AUTH))
    by_translator = _refusal(gw.request("POST", "/v1/messages", {**base, **REFUSED["unknown_role"][0]}, AUTH))
    assert by_msgspec.endswith(" - at `$.max_tokens`"), by_msgspec
    assert by_translator.endswith(" - at `$.messages[1].role`"), by_translator
    assert chat_upstream.requests == [], "a refused request must not reach the upstream"
