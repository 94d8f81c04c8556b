"""`candidates.select` and the breakers, over real sockets with breakers on an injected clock: a candidate's breaker
is asked only when that candidate is about to be tried, and a probe slot it hands out is settled on every way
out (success, failure, a 400, a 429, cancellation). A half-open fallback whose slot was claimed and never
settled would be skipped for ever: "every upstream candidate failed (primary, backup)" with the backup never
tried."""

from __future__ import annotations

import asyncio

import pytest

from dragoman import errors as E
from dragoman.routing.breaker import CLOSED, HALF_OPEN, OPEN
from tests.routing_helpers import BACKUP_TEXT, Candidates, Clock, config_yaml, route
from tests.upstreams import ChatReply, ErrorReply, Gate, Held

pytestmark = pytest.mark.timeout(20)

ONE_TRY = {"attempts": 1}
COOLDOWN = 30.0
GUARDED = {"failures": 1, "cooldown": COOLDOWN}
UNGUARDED = {"failures": 1000, "cooldown": COOLDOWN}


def _config(primary, backup, primary_breaker=UNGUARDED, backup_breaker=GUARDED) -> str:
    return config_yaml([
        route("primary", primary.base_url, fallbacks=["backup"], retry=ONE_TRY, breaker=primary_breaker),
        route("backup", backup.base_url, retry=ONE_TRY, breaker=backup_breaker),
    ])


def _server_error() -> ErrorReply:
    return ErrorReply(500, {"error": {"message": "The server had an error", "type": "server_error"}})


def test_a_half_open_fallback_is_not_claimed_when_the_primary_answers(primary, backup):
    clock = Clock()

    async def scenario() -> None:
        async with Candidates(_config(primary, backup), clock) as c:
            # The backup fails once: its breaker opens; after the cooldown it is due one probe.
            primary.script(_server_error())
            backup.script(_server_error())
            with pytest.raises(E.Overloaded):
                await c.ask("primary")
            assert c.breaker("backup").state == OPEN
            clock.advance(COOLDOWN)

            primary.script(ChatReply(text="from the primary"))
            for _ in range(3):
                assert (await c.ask("primary"))[0] == "primary"
            assert c.breaker("backup").ready(), "the backup's probe slot was claimed for a request it never saw"

            primary.script(_server_error())
            backup.script(ChatReply(text=BACKUP_TEXT))
            answered, exchange = await c.ask("primary")
            assert answered == "backup", [a.outcome for a in exchange.attempts]
            assert c.breaker("backup").state == CLOSED  # the probe succeeded

    asyncio.run(scenario())
    assert len(backup.requests) == 2


def _due_probe(c: Candidates, clock: Clock) -> None:
    """Open the primary's breaker (one failure) and let its cooldown pass: the next request is the probe."""
    c.breaker("primary").failure()
    assert c.breaker("primary").state == OPEN
    clock.advance(COOLDOWN)


@pytest.mark.parametrize(("reply", "answered", "state"), [
    (ChatReply(text="healthy again"), "primary", CLOSED),
    (_server_error(), "backup", OPEN),
    (ErrorReply(429, {"error": {"message": "slow down", "type": "requests"}}, {"retry-after": "30"}), "backup", HALF_OPEN),
    (ErrorReply(400, {"error": {"message": "bad tool schema", "type": "invalid_request_error"}}), None, CLOSED),
], ids=["success", "failure", "rate_limited", "bad_request"])
def test_a_probe_is_settled_however_it_ends(reply, answered, state, primary, backup):
    clock = Clock()

    async def scenario() -> None:
        async with Candidates(_config(primary, backup, primary_breaker=GUARDED, backup_breaker=UNGUARDED), clock) as c:
            _due_probe(c, clock)
            primary.script(reply)
            if answered is None:
                with pytest.raises(E.InvalidRequest):
                    await c.ask("primary")
            else:
                assert (await c.ask("primary"))[0] == answered
            breaker = c.breaker("primary")
            assert breaker.state == state
            if state == OPEN:
                clock.advance(COOLDOWN)
            assert breaker.ready(), "the probe slot is still held: the primary would never be probed again"

    asyncio.run(scenario())
    assert len(primary.requests) == 1


def test_a_cancelled_probe_frees_its_slot(primary, backup):
    clock = Clock()
    gate = Gate()

    async def scenario() -> None:
        async with Candidates(_config(primary, backup, primary_breaker=GUARDED, backup_breaker=UNGUARDED), clock) as c:
            _due_probe(c, clock)
            primary.script(Held(gate, then=ChatReply(text="too late")))
            probe = asyncio.ensure_future(c.ask("primary"))
            assert await asyncio.to_thread(gate.reached.wait, 10), "the probe never reached the primary"
            assert not c.breaker("primary").ready()  # in flight: the slot is taken
            probe.cancel()  # the client went away
            with pytest.raises(asyncio.CancelledError):
                await probe
            assert c.breaker("primary").state == HALF_OPEN
            assert c.breaker("primary").ready(), "a cancelled probe must give its slot back"
        gate.open()

    asyncio.run(scenario())


def test_every_breaker_open_tries_the_primary_anyway_and_claims_nothing(primary, backup):
    clock = Clock()

    async def scenario() -> None:
        both = {"failures": 1, "cooldown": COOLDOWN}
        async with Candidates(_config(primary, backup, primary_breaker=both, backup_breaker=both), clock) as c:
            c.breaker("primary").failure()
            c.breaker("backup").failure()
            primary.script(ChatReply(text="still here"))
            answered, exchange = await c.ask("primary")
            assert answered == "primary"
            assert [(a.route, a.outcome) for a in exchange.attempts] == [("primary", "ok")]
            assert c.breaker("backup").state == OPEN
            clock.advance(COOLDOWN)
            assert c.breaker("backup").ready()

    asyncio.run(scenario())
    assert not backup.requests


def test_an_open_primary_is_skipped_for_a_ready_fallback(primary, backup):
    clock = Clock()

    async def scenario() -> None:
        async with Candidates(_config(primary, backup, primary_breaker=GUARDED, backup_breaker=UNGUARDED), clock) as c:
            c.breaker("primary").failure()
            answered, exchange = await c.ask("primary")
            assert answered == "backup"
            assert [(a.route, a.outcome) for a in exchange.attempts] == [("primary", "skipped"), ("backup", "ok")]

    asyncio.run(scenario())
    assert not primary.requests


_TOOL = {"name": "lookup", "input_schema": {"type": "object"}}
_REFUSED_IN_TRANSLATION = {
    "unknown_tool_choice": {"tools": [_TOOL], "tool_choice": {"type": "bogus"}},
    "max_tokens_below_one": {"max_tokens": 0},
    "server_tool": {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
    "unsupported_image_source": {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}]},
}


@pytest.mark.parametrize("fields", list(_REFUSED_IN_TRANSLATION.values()), ids=list(_REFUSED_IN_TRANSLATION))
def test_a_request_refused_in_translation_leaves_the_due_probe_to_the_next_request(fields, primary, backup):
    # A dead primary behind a healthy backup: its breaker opens and cools down. The next request is refused
    # (400) while it is translated for the primary: the client's fault, not the upstream's, so it neither
    # closes nor re-opens the breaker, and must not keep the probe slot — else the primary is skipped for good.
    clock = Clock()

    async def scenario() -> None:
        async with Candidates(_config(primary, backup, primary_breaker=GUARDED, backup_breaker=UNGUARDED), clock) as c:
            primary.script(_server_error())
            assert (await c.ask("primary"))[0] == "backup"
            assert c.breaker("primary").state == OPEN
            clock.advance(COOLDOWN)

            with pytest.raises(E.InvalidRequest):
                await c.ask("primary", **fields)
            assert c.breaker("primary").ready(), "the refused request kept the probe slot"

            primary.script(ChatReply(text="healthy again"))
            answered, exchange = await c.ask("primary")
            assert [(a.route, a.outcome) for a in exchange.attempts] == [("primary", "ok")]
            assert c.breaker("primary").state == CLOSED

    asyncio.run(scenario())
    assert len(primary.requests) == 2  # the failure that opened the breaker, then the probe
    assert len(backup.requests) == 1
