"""Circuit breakers over real sockets: after `failures` failures the primary is skipped (its upstream sees no
request) and requests go straight to the fallback; a half-open breaker lets exactly one probe through; a
probe that ends in a 400 does not wedge it; a breaker on a fallback route is asked only when the fallback is
tried. Each test uses its own route (its own breaker).

No test here waits for a cooldown: a route either has a cooldown that never ends during the suite (OPEN stays
open) or one of a microsecond, which has always passed by the time the next request arrives (a loopback round
trip takes far longer), so an opened breaker is half-open for the next request. The cooldown's clock itself
is tested with an injected clock in test_breaker_states.py and test_breaker_probe_release.py."""

from __future__ import annotations

import threading
from typing import Iterator

import anthropic
import pytest

from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import (
    BACKUP_TEXT,
    KEYS_ENV,
    PRIMARY_TEXT,
    USER_HI,
    config_yaml,
    route,
    sdk,
)
from tests.upstreams import ChatReply, ErrorReply, Gate, Held, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(20)

FAILURES = 2
STAYS_OPEN = {"failures": FAILURES, "cooldown": 86_400}
HALF_OPEN_AT_ONCE = {"failures": FAILURES, "cooldown": 1e-6}
NEVER_OPENS = {"failures": 1000, "cooldown": 86_400}
ONE_TRY = {"attempts": 1, "backoff": 0.05, "max_backoff": 1}


@pytest.fixture(scope="module")
def gateway(upstreams) -> Iterator[Gateway]:
    primary, backup = upstreams

    def guarded_primary(name: str, breaker: dict) -> dict:
        return route(name, primary.base_url, fallbacks=["backup"], retry=ONE_TRY, breaker=breaker)

    routes = [guarded_primary(name, STAYS_OPEN) for name in ("cb_skips", "cb_skips_streamed", "cb_rate_limits")]
    routes += [guarded_primary(name, HALF_OPEN_AT_ONCE) for name in ("cb_one_probe", "cb_probe_400")]
    routes.append(route("backup", backup.base_url, retry=ONE_TRY, breaker=NEVER_OPENS))
    # A breaker on the fallback route: the primary never opens, its fallback opens after one failure.
    routes.append(route("cb_guarded_fallback", primary.base_url, fallbacks=["guarded_backup"], retry=ONE_TRY,
                        breaker=NEVER_OPENS))
    routes.append(route("guarded_backup", backup.base_url, retry=ONE_TRY, breaker={"failures": 1, "cooldown": 1e-6}))
    with run_gateway(config_yaml(routes), env=KEYS_ENV) as gw:
        yield gw


def ask(gateway: Gateway, model: str, stream: bool = False) -> str:
    with sdk(gateway) as client:
        if stream:
            with client.messages.stream(model=model, max_tokens=50, messages=USER_HI) as s:
                message = s.get_final_message()
        else:
            message = client.messages.create(model=model, max_tokens=50, messages=USER_HI)
    return "".join(block.text for block in message.content if block.type == "text")


def _failing() -> ErrorReply:
    return ErrorReply(500, {"error": {"message": "The server had an error", "type": "server_error"}})


def _open_breaker(gateway: Gateway, model: str, primary: ScriptedChatUpstream, stream: bool = False) -> None:
    """Fail the primary `failures` times (the fallback answers each time): its breaker is open after."""
    primary.script(_failing())
    for n in range(1, FAILURES + 1):
        assert ask(gateway, model, stream) == BACKUP_TEXT
        assert len(primary.requests) == n


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_open_breaker_keeps_requests_away_from_the_primary(stream, gateway, primary, backup):
    model = "cb_skips_streamed" if stream else "cb_skips"
    _open_breaker(gateway, model, primary, stream)
    primary.script(ChatReply(text=PRIMARY_TEXT))  # healthy again, but the breaker does not know yet
    for _ in range(3):
        assert ask(gateway, model, stream) == BACKUP_TEXT
    assert len(primary.requests) == FAILURES, "an open breaker must keep requests away from the primary"
    assert len(backup.requests) == FAILURES + 3


def test_half_open_lets_exactly_one_probe_through(gateway, primary, backup):
    _open_breaker(gateway, "cb_one_probe", primary)
    gate = Gate()
    primary.script(Held(gate, then=ChatReply(text=PRIMARY_TEXT)))  # the probe waits at the primary
    answers: list[str] = []
    prober = threading.Thread(target=lambda: answers.append(ask(gateway, "cb_one_probe")))
    prober.start()
    try:
        assert gate.reached.wait(10), "no probe reached the primary"
        others = [ask(gateway, "cb_one_probe") for _ in range(3)]  # while the probe is in flight
    finally:
        gate.open()
        prober.join(10)
    assert others == [BACKUP_TEXT] * 3
    assert answers == [PRIMARY_TEXT]
    assert len(primary.requests) == FAILURES + 1, "only the probe may reach a half-open upstream"
    assert ask(gateway, "cb_one_probe") == PRIMARY_TEXT  # the probe's success closed the breaker


def test_rate_limits_do_not_open_the_breaker(gateway, primary, backup):
    primary.script(ErrorReply(429, {"error": {"message": "slow down", "type": "requests"}}, {"retry-after": "30"}))
    for n in range(1, 5):
        assert ask(gateway, "cb_rate_limits") == BACKUP_TEXT
        assert len(primary.requests) == n, "a 429 says nothing about health: the primary is still asked"


def test_a_probe_answered_with_a_400_does_not_wedge_the_breaker(gateway, primary, backup):
    # The probe reaches the primary and it answers (a 400 is the client's problem, not the upstream's health):
    # the breaker must not stay half-open with its one probe "in flight" for ever.
    _open_breaker(gateway, "cb_probe_400", primary)
    primary.script(ErrorReply(400, {"error": {"message": "bad tool schema", "type": "invalid_request_error"}}))
    with sdk(gateway) as client, pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="cb_probe_400", max_tokens=50, messages=USER_HI)
    assert len(primary.requests) == FAILURES + 1

    primary.script(ChatReply(text=PRIMARY_TEXT))
    assert ask(gateway, "cb_probe_400") == PRIMARY_TEXT, "the primary is never probed again after a 400 probe"


def test_a_half_open_fallback_is_tried_after_the_primary_answered_in_between(gateway, primary, backup):
    # Both fail: the fallback's breaker opens (and is half-open for the next request that needs it).
    primary.script(_failing())
    backup.script(_failing())
    with sdk(gateway) as client, pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="cb_guarded_fallback", max_tokens=50, messages=USER_HI)
    assert caught.value.status_code == 529
    # The primary answers: the fallback's breaker must not be asked (asking claims its one probe slot).
    primary.script(ChatReply(text=PRIMARY_TEXT))
    for _ in range(2):
        assert ask(gateway, "cb_guarded_fallback") == PRIMARY_TEXT
    # The primary fails again: the fallback gets its probe, and answers.
    primary.script(_failing())
    backup.script(ChatReply(text=BACKUP_TEXT))
    assert ask(gateway, "cb_guarded_fallback") == BACKUP_TEXT, "the fallback was skipped without being tried"
    assert len(backup.requests) == 2
