"""A text block whose text is null is a 400 on every upstream protocol, in user and assistant turns alike,
naming where it is: the anthropic SDK's TextBlockParam requires `text`, and no Claude Code request has one
(tests/fixtures/claude_code/). Chat used to refuse it and Responses to skip it in assistant turns. An empty
text ("") is not null: it is dropped from an assistant turn, as Anthropic's own API ignores it."""

from __future__ import annotations

import pytest

from dragoman.errors import InvalidRequest
from tests.request_translators import PROTOCOLS, translate


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("role", ["user", "assistant"])
def test_null_text_is_a_400_naming_the_block(protocol: str, role: str) -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": role, "content": [{"type": "text", "text": "fine"}, {"type": "text", "text": None}]},
    ]
    with pytest.raises(InvalidRequest) as refused:
        translate(protocol, {"messages": messages})
    assert refused.value.status == 400
    assert refused.value.message == "text block has no text - at `$.messages[2].content[1]`"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_empty_assistant_text_is_dropped_not_refused(protocol: str) -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hello"}]},
        {"role": "user", "content": "more"},
    ]
    sent, _ = translate(protocol, {"messages": messages})
    assert "hello" in str(sent)
