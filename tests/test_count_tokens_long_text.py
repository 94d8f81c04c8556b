"""count_tokens counts a text of a million characters or more (bpe-openai refuses one that long, and one that
yields over 200,000 tokens; both were 500s): in pieces cut at whitespace, whose sum matches the whole text's
count on Claude Code's own text and is within a token per piece of an independent reference. Past
`tokens.COUNT_CHARS` characters the rest is estimated: close to the whole count."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from dragoman import tokens
from dragoman.protocols import anthropic as A
from tests.attack_gateway import CHAT, AttackGateway, attack_gateway
from tests.shared_fixtures import claude_code_text

pytestmark = pytest.mark.timeout(120)

SENTENCE = "The quick brown fox jumps over the lazy dog near the riverbank at dawn. "


@pytest.fixture(scope="module")
def gateway() -> Iterator[AttackGateway]:
    with attack_gateway() as gw:
        yield gw


def _count(gateway: AttackGateway, text: str):
    body = {"model": CHAT, "messages": [{"role": "user", "content": text}]}
    return gateway.request("POST", "/v1/messages/count_tokens", json.dumps(body, ensure_ascii=False),
                           {"anthropic-version": "2023-06-01"}, timeout=60)


def test_million_character_text_is_counted(gateway):
    repeats = 1_000_000 // len(SENTENCE) + 1
    text = SENTENCE * repeats
    assert len(text) >= 1_000_000
    response = _count(gateway, text)
    assert response.status == 200, response.text
    # A repeated sentence counts linearly: the reference extrapolates whole counts of 100 and 200 repeats
    # (+4 framing); the pieces may differ by up to a token at each of the ~21 cuts.
    encoding = tokens._get_encoding()
    hundred, two_hundred = (len(encoding.encode_ordinary(SENTENCE * n)) for n in (100, 200))
    per_sentence = (two_hundred - hundred) // 100
    reference = hundred + per_sentence * (repeats - 100) + 4
    assert abs(response.json()["input_tokens"] - reference) <= len(tokens.pieces(text)), (response.text, reference)


# 150,000 CJK characters in no repeating order: ~285,000 tokens, past bpe-openai's 200,000 a call.
VARIED_CJK = "".join(chr(0x4E00 + (i * 7919) % 20_000) for i in range(150_000))


@pytest.mark.parametrize("text", [VARIED_CJK, "x" * 1_200_000], ids=["over_200k_tokens", "no_whitespace"])
def test_text_past_either_tokenizer_limit_is_counted(gateway, text):
    response = _count(gateway, text)
    assert response.status == 200, response.text
    assert response.json()["input_tokens"] > len(text) // 10


def test_pieces_cut_at_whitespace_and_lose_nothing():
    text = (SENTENCE + "\n") * 20_000
    cut = tokens.pieces(text)
    assert "".join(cut) == text
    assert all(len(piece) <= tokens.PIECE_CHARS for piece in cut)
    assert all(piece[0] in " \n" for piece in cut[1:])
    assert tokens.pieces("y" * 120_000) == ["y" * 50_000, "y" * 50_000, "y" * 20_000]


def test_piecewise_count_equals_the_whole_count_on_claude_code_text():
    text = claude_code_text(600_000)  # under both limits: the whole count works
    encoding = tokens._get_encoding()
    whole = len(encoding.encode_ordinary(text))
    request = A.CountTokensRequest(model=CHAT, messages=[A.Message(role="user", content=text)])
    assert tokens.count_tokens(request) == whole + 4  # 4: the message's framing


def test_text_past_the_exact_count_cap_is_answered_with_a_close_estimate(gateway):
    text = claude_code_text(tokens.COUNT_CHARS + 500_000)
    response = _count(gateway, text)
    assert response.status == 200, response.text
    exact = sum(len(tokens._get_encoding().encode_ordinary(piece)) for piece in tokens.pieces(text)) + 4
    assert abs(response.json()["input_tokens"] - exact) <= exact * 0.03, (response.text, exact)
