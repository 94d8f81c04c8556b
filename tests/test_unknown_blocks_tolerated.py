"""Unknown fields and block types pass validation and are dropped (recorded), never a 400 (design §6):
the next Claude Code release will add more."""

from __future__ import annotations

from dragoman.translate.chat.request import translate_request
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap
from tests.wire import as_sent, messages_request


def _translate(body: dict) -> tuple[dict, list[str]]:
    req = messages_request(body)
    ctx = RequestContext(message_id="msg_u", requested_model=req.model, tool_names=ToolNameMap(64))
    chat = translate_request(req, "gpt-4.1", TranslationOptions(), ctx)
    return as_sent(chat), ctx.notes


def test_unknown_block_with_unknown_fields() -> None:
    chat, notes = _translate({
        "model": "claude", "max_tokens": 10, "brand_new_field": {"x": 1},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "hologram", "depth": 3}]}],
    })
    assert chat["messages"] == [{"role": "user", "content": "hi"}]
    assert "user hologram block dropped" in notes


def test_search_result_block_with_string_source() -> None:
    chat, notes = _translate({
        "model": "claude", "max_tokens": 10,
        "messages": [{"role": "user", "content": [
            {"type": "search_result", "source": "https://example.com/doc", "title": "Doc", "content": [{"type": "text", "text": "x"}]},
            {"type": "text", "text": "use it"},
        ]}],
    })
    [message] = chat["messages"]
    assert message["role"] == "user"
    assert "use it" in _text(message["content"]), "the text beside the search_result block was lost"
    # The search result itself is either carried over or dropped with a note, never silently lost.
    assert "x" in _text(message["content"]) or "user search_result block dropped" in notes, (chat, notes)


def _text(content: str | list[dict]) -> str:
    """A Chat message's text, whether its content is a string or a list of parts."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)
