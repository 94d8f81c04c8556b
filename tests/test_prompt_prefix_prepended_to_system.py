"""A route's prompt-prefix variant reaches the upstream before the client's system prompt, on Chat and Responses
alike (the translators read it from the RequestContext: translate stays pure); without a client system prompt the
prefix is the system prompt; the plain variant ("" text) changes nothing."""

from __future__ import annotations

import pytest

from tests.request_translators import PROTOCOLS, translate

PREFIX = "You are running inside Claude Code: answer with tool calls it can run."
HI = [{"role": "user", "content": "hi"}]


def _system(protocol: str, out: dict) -> str | None:
    if protocol == "chat":
        first = out["messages"][0]
        return first["content"] if first["role"] in ("system", "developer") else None
    return out.get("instructions")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_prefix_comes_before_the_clients_system_prompt(protocol: str) -> None:
    out, _ = translate(protocol, {"system": [{"type": "text", "text": "Be brief."}], "messages": HI}, system_prefix=PREFIX)
    assert _system(protocol, out) == f"{PREFIX}\n\nBe brief."


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_without_a_system_prompt_the_prefix_is_the_system_prompt(protocol: str) -> None:
    out, _ = translate(protocol, {"messages": HI}, system_prefix=PREFIX)
    assert _system(protocol, out) == PREFIX


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_plain_variant_changes_nothing(protocol: str) -> None:
    body = {"system": "Be brief.", "messages": HI}
    assert translate(protocol, body, system_prefix="") == translate(protocol, body)
