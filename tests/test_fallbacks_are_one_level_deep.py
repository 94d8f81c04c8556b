"""A route's `fallbacks` are tried as listed, and a fallback's own `fallbacks` are not followed: with a -> b and
b -> c, a request for a tries a then b, never c (README's Fallback paragraph says so). A cycle (a -> b, b -> a) is
therefore harmless: each route is tried once."""

from __future__ import annotations

import asyncio

import pytest

from dragoman import errors as E
from tests.routing_helpers import Candidates, Clock, config_yaml, route
from tests.upstreams import ChatReply, ErrorReply

pytestmark = pytest.mark.timeout(20)

ONE_TRY = {"attempts": 1}
NO_BREAKER = {"failures": 1000, "cooldown": 1}


def _server_error() -> ErrorReply:
    return ErrorReply(500, {"error": {"message": "The server had an error", "type": "server_error"}})


def test_a_fallbacks_own_fallbacks_are_not_followed(primary, backup, chat_upstream):
    config = config_yaml([
        route("a", primary.base_url, fallbacks=["b"], retry=ONE_TRY, breaker=NO_BREAKER),
        route("b", backup.base_url, fallbacks=["c"], retry=ONE_TRY, breaker=NO_BREAKER),
        route("c", chat_upstream.base_url, retry=ONE_TRY, breaker=NO_BREAKER),
    ])
    primary.script(_server_error())
    backup.script(_server_error())
    chat_upstream.script(ChatReply(text="from c"))

    async def scenario() -> None:
        async with Candidates(config, Clock()) as c:
            with pytest.raises(E.Overloaded):
                await c.ask("a")  # a, then b; c is only b's fallback
            assert (len(primary.requests), len(backup.requests), len(chat_upstream.requests)) == (1, 1, 0)
            assert (await c.ask("b"))[0] == "c"  # naming b, its own fallback is tried

    asyncio.run(scenario())


def test_a_fallback_cycle_tries_each_route_once(primary, backup):
    config = config_yaml([
        route("a", primary.base_url, fallbacks=["b"], retry=ONE_TRY, breaker=NO_BREAKER),
        route("b", backup.base_url, fallbacks=["a"], retry=ONE_TRY, breaker=NO_BREAKER),
    ])
    primary.script(_server_error())
    backup.script(_server_error())

    async def scenario() -> None:
        async with Candidates(config, Clock()) as c:
            with pytest.raises(E.Overloaded):
                await c.ask("a")
            assert (len(primary.requests), len(backup.requests)) == (1, 1)

    asyncio.run(scenario())
