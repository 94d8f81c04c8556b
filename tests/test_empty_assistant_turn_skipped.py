"""An assistant turn with nothing to say (content "" or only empty text) sends nothing upstream, on every
protocol: Anthropic accepts an empty final assistant turn, and an empty assistant message tells the model
nothing. Chat used to send `{"role": "assistant", "content": ""}` for a string and nothing for blocks."""

from __future__ import annotations

import pytest

from tests.request_translators import PROTOCOLS, translate


def _messages(sent: dict) -> list[dict]:
    return sent["messages"] if "messages" in sent else sent["input"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("content", ["", [{"type": "text", "text": ""}]], ids=["string", "blocks"])
def test_empty_assistant_turn_sends_nothing(protocol: str, content: object) -> None:
    sent, _ = translate(protocol, {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": content}]})
    assert [m["role"] for m in _messages(sent)] == ["user"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_assistant_turn_with_text_is_sent(protocol: str) -> None:
    sent, _ = translate(protocol, {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure"}]})
    assert [m["role"] for m in _messages(sent)] == ["user", "assistant"]
