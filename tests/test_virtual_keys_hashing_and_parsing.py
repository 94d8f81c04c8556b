"""Virtual keys are `dgk_` + 32 random bytes, stored and looked up by their SHA-256 only, shown by a short prefix;
the value syntaxes the CLI and the admin API share (`50/month`, `400k`, `30d`, `gpt-5*,claude-*`) parse to the
grant's types, and anything else is refused with a message that says what to write."""

from __future__ import annotations

import hashlib

import pytest

from dragoman import errors as E
from dragoman.govern.grant import Budget, Grant, Limits
from dragoman.govern.keys import (
    DISPLAY_LENGTH,
    KeyInputError,
    KeySpec,
    build_key,
    check_model,
    digest,
    generate_key,
    looks_like_key,
    parse_budget,
    parse_duration,
    parse_models,
)


def test_a_key_is_dgk_and_32_random_bytes_urlsafe() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("dgk_") and len(key) == 4 + 43 and looks_like_key(key)
    assert not looks_like_key("dgk_short") and not looks_like_key("sk-" + "a" * 44)


def test_the_record_holds_the_sha256_and_a_prefix_never_the_key() -> None:
    key, record = build_key(KeySpec(developer="ana", team="platform"), now=1000.0)
    assert record.digest == hashlib.sha256(key.encode()).hexdigest() == digest(key)
    assert record.prefix == key[:DISPLAY_LENGTH] and len(record.prefix) == 12
    assert key not in repr(record) and key[DISPLAY_LENGTH:] not in repr(record.public())
    assert "digest" not in record.public()


def test_cli_syntaxes_become_the_grants_types() -> None:
    spec = KeySpec(developer="ana", team="platform", repo="shop", role="viewer", budget="50/month", rpm="60",
                   tpm="400k", output_tpm="1.5M", concurrent=3, models="gpt-5*, claude-*", expires="30d")
    _, record = build_key(spec, now=1000.0)
    grant = record.grant()
    assert grant == Grant(key_id=record.id, developer="ana", team="platform", repo="shop", role="viewer",
                          models=("gpt-5*", "claude-*"), budget=Budget(limit_usd=50.0, period="month"),
                          limits=Limits(rpm=60, input_tpm=400_000, output_tpm=1_500_000, concurrent_streams=3),
                          expires_at=1000.0 + 30 * 86400)
    assert parse_budget("20/day") == Budget(limit_usd=20.0, period="day")
    assert parse_budget("$100/week") == Budget(limit_usd=100.0, period="week")
    assert parse_duration("24h", "x") == 86400 and parse_duration("90m", "x") == 5400
    assert parse_duration("0s", "grace", zero=True) == 0
    assert parse_models(["a*", " ", "b"]) == ("a*", "b") and parse_models(None) == ()


@pytest.mark.parametrize(("field", "value", "names"), [
    ("budget", "50/year", "50/month"),
    ("budget", "-5/month", "50/month"),
    ("budget", "fifty/month", "50/month"),
    ("rpm", "0", "rpm"),
    ("rpm", "many", "rpm"),
    ("tpm", "400q", "tpm"),
    ("rpm", "9" * 400, "rpm"),  # read as a float it is inf: was an OverflowError, a 500 from the admin API
    ("output_tpm", "9" * 400 + "M", "output_tpm"),
    ("expires", "30 days", "30d"),
    ("expires", "0d", "30d"),
    ("role", "root", "admin, viewer, user"),
    ("developer", "ana\nroot", "printable"),
    ("models", "gpt\x00", "pattern"),
])
def test_bad_values_are_refused_saying_what_to_write(field: str, value: str, names: str) -> None:
    with pytest.raises(KeyInputError, match=names.replace("*", r"\*")):
        build_key(KeySpec(**{field: value}), now=0.0)


def test_the_allow_list_admits_matching_models_and_names_the_patterns_otherwise() -> None:
    grant = Grant(key_id="vk_1", models=("gpt-5*", "claude-*"))
    check_model(grant, "gpt-5-mini")
    check_model(grant, "claude-sonnet-4-5")
    check_model(Grant(key_id="vk_2"), "anything")  # no list: any model
    check_model(None, "anything")  # auth off
    with pytest.raises(E.PermissionDenied) as refused:
        check_model(grant, "o3")
    assert refused.value.status == 403 and refused.value.error_type == "permission_error"
    assert "'o3'" in refused.value.message and "gpt-5*, claude-*" in refused.value.message
    with pytest.raises(E.PermissionDenied):
        check_model(grant, "GPT-5")  # patterns match case-sensitively, as model names are


@pytest.mark.parametrize("field", ["rpm", "budget", "expires", "role"])
def test_a_refused_value_is_quoted_short(field: str) -> None:
    with pytest.raises(KeyInputError) as refused:
        build_key(KeySpec(**{field: "9" * 100_000 + "x"}), now=0.0)
    assert len(str(refused.value)) < 200 and "999..." in str(refused.value)
