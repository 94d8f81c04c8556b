"""The stream grammar check the end-to-end tests rely on (tests/anthropic_events.py) catches what other gateways
got wrong (design §8): each stream below is complete but for one defect, and the check must reject it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.anthropic_events import check_sse_grammar


def _ev(name: str, **data: Any) -> tuple[str, dict]:
    return name, {"type": name, **data}


_START = _ev("message_start", message={"role": "assistant", "content": []})
_END = [_ev("message_delta", delta={"stop_reason": "end_turn"}), _ev("message_stop")]


@pytest.mark.parametrize("events", [
    [_START, _ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "x"}), *_END],
    [_START, _ev("content_block_start", index=1, content_block={"type": "text", "text": ""}),
     _ev("content_block_stop", index=1), *_END],
    [_START, _ev("content_block_start", index=0, content_block={"type": "text", "text": ""}), *_END],
    [_START, _ev("message_delta", delta={"stop_reason": None}), _ev("message_stop")],
    [_START, _ev("message_delta", delta={"stop_reason": "end_turn"})],
], ids=["delta_before_start", "sparse_index", "block_never_stopped", "no_stop_reason", "no_message_stop"])
def test_grammar_check_rejects_broken_streams(events):
    with pytest.raises(AssertionError):
        check_sse_grammar(events)
