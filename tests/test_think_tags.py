"""<think>…</think> from reasoning models on OpenAI-compatible servers becomes a thinking block, not visible
text (design §8); the streamed and JSON paths split it the same way, wherever the chunks cut the tags."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dragoman.translate.think_tags import ThinkTagSplitter


def _split(pieces: list[str]) -> tuple[str, str]:
    splitter = ThinkTagSplitter()
    out = [p for piece in pieces for p in splitter.feed(piece)] + splitter.flush()
    return "".join(t for k, t in out if k == "thinking"), "".join(t for k, t in out if k == "text")


def test_tags_split_into_thinking_and_text() -> None:
    assert _split(["<think>plan</think>\n\nHello"]) == ("plan", "Hello")


def test_leading_whitespace_before_the_tag() -> None:
    assert _split(["\n  <think>plan</think>Hi"]) == ("plan", "Hi")


def test_no_tag_is_all_text() -> None:
    assert _split(["Hello <think>not at the start</think>"]) == ("", "Hello <think>not at the start</think>")


def test_a_word_that_starts_like_the_tag_is_text() -> None:
    assert _split(["<thin", "kers> are people"]) == ("", "<thinkers> are people")


def test_unclosed_tag_is_all_thinking() -> None:
    assert _split(["<think>still going"]) == ("still going", "")


def test_newlines_after_the_close_tag_in_a_later_chunk_are_dropped() -> None:
    # The JSON path strips them; the stream used to keep them when they came in the next chunk.
    assert _split(["<think>plan</think>", "\n", "\nHello"]) == ("plan", "Hello")
    assert _split(["<think>plan</think>", "\n\nHello"]) == _split(["<think>plan</think>\n\nHello"])


def test_newlines_inside_the_answer_are_kept() -> None:
    assert _split(["<think>p</think>", "\nA", "\n\nB"]) == ("p", "A\n\nB")


_piece = st.sampled_from(["<think>", "</think>", "<", "/", "think", ">", "\n", " ", "a", "b\n", "</th", "ink>"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_piece, max_size=20), st.data())
def test_any_cut_gives_the_same_split_as_the_whole_text(parts: list[str], data: st.DataObject) -> None:
    text = "".join(parts)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(text)), max_size=8)))
    bounds = [0, *cuts, len(text)]
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    assert _split(pieces) == _split([text])
