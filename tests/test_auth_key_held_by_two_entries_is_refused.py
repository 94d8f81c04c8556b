"""A gateway key names one holder: two `auth.keys` entries with the same key (written inline, as a bare string or
read through key_ref) are refused at load naming both entries, never the key; otherwise the second entry silently
took the key, and the first holder's requests were recorded and budgeted as the other's."""

from __future__ import annotations

import pytest

from dragoman.config.load import parse_config
from dragoman.errors import ConfigError

ROUTES = "routes:\n  - name: r\n    upstream: {provider: openai, model: gpt-5, api_key_ref: k}\n"
ENV = {"K": "sk-up", "BOB_KEY": "sk-shared-123456"}


@pytest.mark.parametrize(("second", "where"), [
    ("{id: bob, key: sk-shared-123456, developer: bob, team: research}", "auth.keys[1].key"),
    ("{id: bob, key_ref: bob_key, developer: bob}", "auth.keys[1].key_ref"),
    ("sk-shared-123456", "auth.keys[1]"),
])
def test_a_key_given_to_two_entries_is_refused_naming_both(second, where):
    text = f"auth:\n  keys:\n    - {{id: ana, key: sk-shared-123456, developer: ana}}\n    - {second}\n" + ROUTES
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "team.yaml", ENV)
    assert str(refused.value) == (f"team.yaml:4: {where}: the same key as auth.keys[0] (line 3); "
                                  "give each holder a key of its own")


def test_distinct_keys_keep_each_holder():
    text = "auth:\n  keys:\n    - {id: ana, key: sk-ana-1, developer: ana}\n    - {id: bob, key_ref: bob_key}\n" + ROUTES
    keys = parse_config(text, "team.yaml", ENV).keys
    assert (keys["sk-ana-1"].id, keys["sk-ana-1"].developer) == ("ana", "ana")
    assert keys["sk-shared-123456"].id == "bob"
