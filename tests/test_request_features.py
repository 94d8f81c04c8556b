"""Request features on real Claude Code bodies, and how far the fast input_tokens estimate is from o200k counts."""

from __future__ import annotations

import msgspec
import pytest

from dragoman import tokens
from dragoman.identity import Identity
from dragoman.protocols import anthropic as A
from dragoman.policy.features import RequestFeatures, extract_features
from tests.shared_fixtures import CLAUDE_CODE_FIXTURES
from tests.wire import count_tokens_request, messages_request

FIXTURES = CLAUDE_CODE_FIXTURES
_decode = msgspec.json.Decoder(A.MessagesRequest).decode


def _load(name: str) -> tuple[A.MessagesRequest, int]:
    raw = (FIXTURES / name).read_bytes()
    return _decode(raw), len(raw)


@pytest.mark.parametrize(
    ("name", "model", "messages", "tools", "tool_calls"),
    [
        ("claude_code_2.1.197_first_turn.json", "claude-opus-4-8", 2, 24, 0),
        ("claude_code_2.1.197_after_parallel_tools.json", "gpt-5-via-gateway", 7, 24, 6),
        ("claude_code_2.1.328_first_turn.json", "claude-opus-5-5", 2, 12, 0),
        ("claude_code_2.1.328_after_parallel_reads.json", "claude-opus-5-5", 4, 12, 6),
        ("claude_code_2.1.328_after_parallel_tools.json", "claude-opus-5-5", 6, 12, 6),
        ("claude_code_2.1.328_after_toolsearch.json", "claude-opus-5-5", 4, 13, 1),
    ],
)
def test_claude_code_fixture_features(name: str, model: str, messages: int, tools: int, tool_calls: int) -> None:
    req, size = _load(name)
    f = extract_features(req, size, {"x-api-key": "k"})
    assert (f.model, f.message_count, f.tools_count, f.tool_call_count) == (model, messages, tools, tool_calls)
    assert f.has_images is False
    assert f.thinking is True  # adaptive thinking with an effort, in every Claude Code 2.1 body
    assert f.stream is True
    assert (f.developer, f.team, f.repo) == (None, None, None)


# The fast estimate (body bytes / 5) against o200k: `real` is dragoman.tokens.count_tokens (o200k over the text
# the model sees, what /v1/messages/count_tokens answers); `whole_body` is o200k over the raw JSON, syntax and
# schemas included. Columns: file, body bytes, real, whole_body, estimate.
ESTIMATES = [
    ("claude_code_2.1.197_after_parallel_tools.json", 88730, 17692, 22405, 17746),  # +0.3% of real
    ("claude_code_2.1.197_first_turn.json", 82369, 16873, 20354, 16473),  # -2.4%
    ("claude_code_2.1.328_after_parallel_reads.json", 56619, 11192, 13925, 11323),  # +1.2%
    ("claude_code_2.1.328_after_parallel_tools.json", 60228, 11629, 15012, 12045),  # +3.6%
    ("claude_code_2.1.328_after_toolsearch.json", 54651, 10894, 13182, 10930),  # +0.3%
    ("claude_code_2.1.328_first_turn.json", 53705, 10806, 12902, 10741),  # -0.6%
]


@pytest.mark.parametrize(("name", "size", "real", "whole_body", "estimate"), ESTIMATES)
def test_input_tokens_estimate_against_o200k(name: str, size: int, real: int, whole_body: int, estimate: int) -> None:
    req, body_size = _load(name)
    assert body_size == size
    assert extract_features(req, body_size, {}).input_tokens == estimate
    count_request = count_tokens_request(req)
    assert tokens.count_tokens(count_request) == real  # the table above is measured, not typed in
    assert abs(estimate - real) / real < 0.05


def test_whole_body_column_is_o200k_of_the_raw_json() -> None:
    import bpe_openai

    encoding = bpe_openai.get_encoding("o200k_base")
    for name, _, _, whole_body, _ in ESTIMATES:
        assert len(encoding.encode_ordinary((FIXTURES / name).read_text())) == whole_body


def _with_image(data: str, *, nested: bool) -> A.MessagesRequest:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    block = {"type": "tool_result", "tool_use_id": "t1", "content": [image]} if nested else image
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [block]}]}
    return messages_request(body)


@pytest.mark.parametrize("nested", [False, True], ids=["user-image", "image-in-tool-result"])
def test_image_base64_is_not_counted_as_text(nested: bool) -> None:
    data = "A" * 400_000  # a ~300 KB screenshot
    req = _with_image(data, nested=nested)
    f = extract_features(req, len(data) + 300, {})
    assert f.has_images is True
    assert f.input_tokens == 300 // 5 + 1600  # the JSON around it, plus the flat per-image charge


def test_thinking_off_without_thinking_or_effort() -> None:
    base = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    assert extract_features(messages_request(base), 80, {}).thinking is False
    disabled = base | {"thinking": {"type": "disabled"}}
    assert extract_features(messages_request(disabled), 80, {}).thinking is False
    effort = disabled | {"output_config": {"effort": "low"}}
    assert extract_features(messages_request(effort), 80, {}).thinking is True
    enabled = base | {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert extract_features(messages_request(enabled), 80, {}).thinking is True


def test_identity_and_headers() -> None:
    req, size = _load("claude_code_2.1.328_first_turn.json")
    who = Identity(key_id="k1", developer="ana", team="infra", repo="dragoman", session="s")
    f = extract_features(req, size, {"x-tier": "gold"}, who)
    assert (f.developer, f.team, f.repo) == ("ana", "infra", "dragoman")
    assert f.header("x-tier") == "gold"
    assert f.header("x-absent") is None


def test_explicit_values_win_over_the_request() -> None:
    req, size = _load("claude_code_2.1.197_after_parallel_tools.json")
    f = RequestFeatures(request=req, body_size=size, input_tokens=5, tool_call_count=0, has_images=True)
    assert (f.input_tokens, f.tool_call_count, f.has_images) == (5, 0, True)
    assert RequestFeatures().input_tokens == 0  # no request: zero, not an error


def test_last_assistant_turn_is_found_behind_trailing_messages() -> None:
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "1", "name": "Read", "input": {}}] * 3},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "1", "content": "x"}]},
            {"role": "system", "content": "reminder"},
        ],
    }
    assert extract_features(messages_request(body), 300, {}).tool_call_count == 3
