"""An assistant tool_use block without its id or its name is a 400 on every upstream protocol, naming where it
is. The id pairs the call with its result (OpenAI rejects calls without one); the anthropic SDK's
ToolUseBlockParam requires both and no Claude Code request lacks them (tests/fixtures/claude_code/), so a
request without them is malformed rather than something to repair. Chat used to refuse it and Responses to
send `call_id: ""`."""

from __future__ import annotations

import pytest

from dragoman.errors import InvalidRequest
from tests.request_translators import PROTOCOLS, translate


def _conversation(call: dict) -> dict:
    return {"messages": [
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": [{"type": "text", "text": "Reading."}, {"type": "tool_use", **call}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a"}]},
    ]}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("missing", ["id", "name"])
def test_tool_use_without_id_or_name_is_a_400_naming_the_block(protocol: str, missing: str) -> None:
    call = {"id": "toolu_1", "name": "Read", "input": {"file_path": "/a"}}
    del call[missing]
    with pytest.raises(InvalidRequest) as refused:
        translate(protocol, _conversation(call))
    assert refused.value.status == 400
    assert refused.value.message == f"tool_use block has no {missing} - at `$.messages[1].content[1]`"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tool_use_with_an_empty_id_is_a_400_too(protocol: str) -> None:
    with pytest.raises(InvalidRequest, match=r"tool_use block has no id - at `\$\.messages\[1\]\.content\[1\]`"):
        translate(protocol, _conversation({"id": "", "name": "Read", "input": {}}))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tool_use_with_id_and_name_is_sent(protocol: str) -> None:
    sent, _ = translate(protocol, _conversation({"id": "toolu_1", "name": "Read", "input": {"file_path": "/a"}}))
    assert "toolu_1" in str(sent)  # the control: the same conversation with a whole call goes through
