"""Inline secrets never reach the config_versions table in clear: auth.keys values, admin.keys, non-reference
values under secrets:, URLs with a password are masked; a rollback restores them from the live config, byte for
byte, and is refused (naming the line) when a masked secret is not in the live config any more."""

from __future__ import annotations

import pytest

from dragoman.loop.secret_mask import UnrestorableSecret, mask_secrets, restore_secrets

CONFIG = """\
auth:
  keys:
    - sk-inline-one
    - {id: ana, key: "sk-ana-two", developer: ana}
    - id: bob
      key_ref: bob_key
admin:
  keys:
    - adm-three
secrets:
  bob_key: {env: BOB_KEY}
audit:
  store: postgresql://dragoman:pg-four@db.internal/audit
routes:
  - name: r
    upstream: {provider: openai, model: gpt-5, api_key_ref: openai_prod}
"""
SECRETS = ("sk-inline-one", "sk-ana-two", "adm-three", "pg-four")


def test_every_inline_secret_is_masked_and_references_are_kept() -> None:
    masked = mask_secrets(CONFIG)
    for secret in SECRETS:
        assert secret not in masked
    assert masked.count("<masked key_") == 4
    assert "key_ref: bob_key" in masked and "{env: BOB_KEY}" in masked and "api_key_ref: openai_prod" in masked


def test_restoring_from_the_same_live_config_gives_back_the_exact_text() -> None:
    assert restore_secrets(mask_secrets(CONFIG), CONFIG) == CONFIG


def test_a_block_scalar_secret_is_masked_without_eating_the_next_line() -> None:
    text = "admin:\n  keys:\n    - |\n      adm-block\nroutes: []\n"
    masked = mask_secrets(text)
    assert "adm-block" not in masked and masked.endswith("\nroutes: []\n")
    assert restore_secrets(masked, text) == text


def test_a_secret_removed_from_the_live_config_is_not_brought_back() -> None:
    live = CONFIG.replace("adm-three", "adm-rotated")
    with pytest.raises(UnrestorableSecret, match=r"line 9 \(key_[0-9a-f]{12}\)"):
        restore_secrets(mask_secrets(CONFIG), live)


def test_text_that_is_not_yaml_is_left_alone() -> None:
    assert mask_secrets("routes: [") == "routes: ["


QUERY_CREDENTIALS = """\
audit:
  store: postgresql://dragoman@db.internal/audit?sslmode=require&password=pg-query-five
governance:
  redis_url: redis://cache:6379/0?password=redis-six
routes:
  - name: azure
    endpoint: https://x.openai.azure.com/openai?api-version=2024-10-21&api-key=az-seven
  - name: plain
    endpoint: https://api.openai.com/v1?api-version=2024-10-21
"""


def test_urls_with_a_credential_in_their_query_are_masked_and_restored() -> None:
    masked = mask_secrets(QUERY_CREDENTIALS)
    for secret in ("pg-query-five", "redis-six", "az-seven"):
        assert secret not in masked
    assert masked.count("<masked key_") == 3
    assert "https://api.openai.com/v1?api-version=2024-10-21" in masked  # no credential: kept as written
    assert restore_secrets(masked, QUERY_CREDENTIALS) == QUERY_CREDENTIALS


@pytest.mark.parametrize("text", [CONFIG, QUERY_CREDENTIALS])
def test_masking_a_masked_text_changes_nothing(text: str) -> None:
    masked = mask_secrets(text)
    assert masked != text and mask_secrets(masked) == masked
