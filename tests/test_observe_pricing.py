"""Cost per request: the built-in table by longest prefix, per-route overrides, hand-computed amounts."""

from __future__ import annotations

import msgspec
import pytest

from dragoman.config.model import Pricing
from dragoman.observe.pricing import BUILTIN, Pricer, cost_usd, price_for
from dragoman.observe.record import AuditRecord
from dragoman.protocols.anthropic import Usage


def _usage(input_tokens: int = 0, output_tokens: int = 0, cache_read_tokens: int = 0) -> AuditRecord:
    return AuditRecord(time=0.0, request_id="req_x", input_tokens=input_tokens, output_tokens=output_tokens,
                       cache_read_tokens=cache_read_tokens)


def test_gpt5_cost_by_hand() -> None:
    # 12,000 uncached × $1.25/M = $0.015; 30,000 cached × $0.125/M = $0.00375; 2,000 out × $10/M = $0.02
    assert cost_usd("gpt-5", _usage(12_000, 2_000, 30_000)) == pytest.approx(0.03875, abs=1e-12)


def test_claude_sonnet_cost_by_hand() -> None:
    # 1M in × $3 + 200k cached × $0.30 + 100k out × $15 = 3 + 0.06 + 1.5
    assert cost_usd("claude-sonnet-4-5-20250929", _usage(1_000_000, 100_000, 200_000)) == pytest.approx(4.56)


def test_anthropic_usage_struct_is_accepted() -> None:
    usage = Usage(input_tokens=1000, output_tokens=1000, cache_read_input_tokens=10_000)
    # haiku 4.5: 1000 × 1 + 10,000 × 0.10 + 1000 × 5 = 7000 µ$ = $0.007
    assert cost_usd("claude-haiku-4-5", usage) == pytest.approx(0.007)


def test_longest_prefix_wins_and_dated_snapshots_match() -> None:
    assert price_for("gpt-5-mini-2025-08-07") == BUILTIN["gpt-5-mini"]
    assert price_for("gpt-5-2025-08-07") == BUILTIN["gpt-5"]
    assert price_for("gpt-4.1-nano") == BUILTIN["gpt-4.1-nano"]
    assert price_for("gpt-4o-mini-2024-07-18") == BUILTIN["gpt-4o-mini"]
    assert price_for("claude-opus-4-1-20250805") == BUILTIN["claude-opus-4-1"]
    assert price_for("claude-opus-4-5") == Pricing(5.0, 0.5, 25.0)
    assert price_for("claude-opus-4-20250514") == Pricing(15.0, 1.5, 75.0)
    assert price_for("claude-opus-4.6") == BUILTIN["claude-opus-4-6"]  # dotted spelling
    assert price_for("openai/o4-mini") == BUILTIN["o4-mini"]  # OpenRouter-style provider prefix
    assert price_for("O3") == BUILTIN["o3"]


def test_a_prefix_must_end_at_a_name_boundary() -> None:
    assert price_for("gpt-5.3") is None  # not gpt-5's price: a different model
    assert price_for("gpt-50") is None
    assert price_for("o3x") is None


def test_unknown_model_has_no_cost() -> None:
    assert price_for("qwen3-coder-30b") is None
    assert cost_usd("qwen3-coder-30b", _usage(1000, 1000)) is None
    assert cost_usd(None, _usage(1000, 1000)) is None


def test_override_replaces_the_table() -> None:
    local = Pricing(0.0, 0.0, 0.0)
    assert cost_usd("gpt-5", _usage(10_000, 10_000), local) == 0.0
    negotiated = Pricing(1.0, 0.1, 8.0)
    # 500k × 1 + 500k × 0.1 + 100k × 8 = 0.5 + 0.05 + 0.8
    assert cost_usd("qwen3", _usage(500_000, 100_000, 500_000), negotiated) == pytest.approx(1.35)


def test_pricer_uses_the_routes_override_then_the_upstream_model() -> None:
    pricer = Pricer({"local-qwen": Pricing(0.0, 0.0, 0.0)})
    record = _usage(1_000_000, 0)
    record.route, record.upstream_model = "local-qwen", "gpt-5"
    assert pricer.price(record) == 0.0
    record.route = "gpt-5-via-gateway"
    assert pricer.price(record) == pytest.approx(1.25)
    record.upstream_model, record.requested_model = None, "gpt-4.1"
    assert pricer.price(record) == pytest.approx(2.0)


def test_pricing_block_from_config_rejects_unknown_and_negative() -> None:
    assert msgspec.convert({"input": 1, "cached_input": 0.1, "output": 4}, Pricing) == Pricing(1.0, 0.1, 4.0)
    with pytest.raises(msgspec.ValidationError, match="cache"):
        msgspec.convert({"input": 1, "cache": 0.1, "output": 4}, Pricing)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"input": -1, "cached_input": 0, "output": 4}, Pricing)
    with pytest.raises(msgspec.ValidationError, match="cached_input"):
        msgspec.convert({"input": 1, "output": 4}, Pricing)


def test_a_cost_that_is_not_finite_is_unpriced_not_infinite() -> None:
    """A Pricing made past the config's bound (the loader refuses it) must still not give a record inf dollars."""
    absurd = Pricing(1e308, 0.0, 1e308)
    assert cost_usd("gpt-5", _usage(10, 10), absurd) is None
    record = _usage(10, 10)
    record.route = "r"
    assert Pricer({"r": absurd}).price(record) is None
