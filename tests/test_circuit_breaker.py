"""Circuit breakers over real sockets: after `failures` failures the primary is skipped (its upstream sees no
request) and requests go straight to the fallback; after `cooldown` one probe goes to the primary; its
success closes the breaker, its failure opens it again. Each test uses its own route (its own breaker)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
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
from tests.upstreams import ChatReply, ErrorReply, Hang, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(20)

BREAKER = {"failures": 2, "cooldown": 1}
ONE_TRY = {"attempts": 1, "backoff": 0.05, "max_backoff": 1}
CB_ROUTES = ("cb_closes", "cb_reopens", "cb_one_probe", "cb_rate_limits", "cb_streamed", "cb_probe_400")




@pytest.fixture(scope="module")
def gateway(upstreams) -> Iterator[Gateway]:
    primary, backup = upstreams
    routes = [route(name, primary.base_url, fallbacks=["backup"], retry=ONE_TRY, breaker=BREAKER) for name in CB_ROUTES]
    routes.append(route("backup", backup.base_url, retry=ONE_TRY, breaker={"failures": 1000, "cooldown": 1}))
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


def _open_breaker(gateway: Gateway, model: str, primary: ScriptedChatUpstream, stream: bool = False) -> float:
    """Fail the primary `failures` times; return when the breaker opened."""
    primary.script(_failing())
    for n in range(1, BREAKER["failures"] + 1):
        assert ask(gateway, model, stream) == BACKUP_TEXT
        assert len(primary.requests) == n
    return time.monotonic()


def _sleep_past_cooldown(opened: float) -> None:
    time.sleep(max(0.0, opened + BREAKER["cooldown"] + 0.15 - time.monotonic()))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_breaker_opens_skips_the_primary_then_a_probe_closes_it(stream, gateway, primary, backup):
    model = "cb_streamed" if stream else "cb_closes"
    opened = _open_breaker(gateway, model, primary, stream)
    seen = len(primary.requests)

    # Open: the primary is not even asked; the fallback answers at once.
    for _ in range(3):
        assert ask(gateway, model, stream) == BACKUP_TEXT
    assert len(primary.requests) == seen, "an open breaker must keep requests away from the primary"
    assert len(backup.requests) == BREAKER["failures"] + 3

    # Cooldown over and the primary healthy again: one probe goes to it and closes the breaker.
    primary.script(ChatReply(text=PRIMARY_TEXT))
    _sleep_past_cooldown(opened)
    assert ask(gateway, model, stream) == PRIMARY_TEXT
    assert len(primary.requests) == seen + 1

    # Closed: every request goes to the primary again.
    for _ in range(3):
        assert ask(gateway, model, stream) == PRIMARY_TEXT
    assert len(primary.requests) == seen + 4
    assert len(backup.requests) == BREAKER["failures"] + 3


def test_a_failed_probe_opens_the_breaker_again(gateway, primary, backup):
    opened = _open_breaker(gateway, "cb_reopens", primary)
    _sleep_past_cooldown(opened)
    assert ask(gateway, "cb_reopens") == BACKUP_TEXT  # the probe: it fails, the fallback answers
    reopened = time.monotonic()
    assert len(primary.requests) == BREAKER["failures"] + 1
    assert ask(gateway, "cb_reopens") == BACKUP_TEXT
    assert len(primary.requests) == BREAKER["failures"] + 1, "after a failed probe the breaker is open again"

    primary.script(ChatReply(text=PRIMARY_TEXT))
    _sleep_past_cooldown(reopened)
    assert ask(gateway, "cb_reopens") == PRIMARY_TEXT
    assert ask(gateway, "cb_reopens") == PRIMARY_TEXT
    assert len(primary.requests) == BREAKER["failures"] + 3


def test_half_open_lets_exactly_one_probe_through(gateway, primary, backup):
    opened = _open_breaker(gateway, "cb_one_probe", primary)
    primary.script(Hang(0.8, then=ChatReply(text=PRIMARY_TEXT)))  # a slow probe; others arrive meanwhile
    _sleep_past_cooldown(opened)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(ask, gateway, "cb_one_probe")
        time.sleep(0.2)
        others = [pool.submit(ask, gateway, "cb_one_probe") for _ in range(3)]
        answers = [first.result(timeout=10)] + [f.result(timeout=10) for f in others]
    assert answers == [PRIMARY_TEXT, BACKUP_TEXT, BACKUP_TEXT, BACKUP_TEXT]
    assert len(primary.requests) == BREAKER["failures"] + 1, "only the probe may reach a half-open upstream"


def test_rate_limits_do_not_open_the_breaker(gateway, primary, backup):
    primary.script(ErrorReply(429, {"error": {"message": "slow down", "type": "requests"}}, {"retry-after": "30"}))
    for n in range(1, 5):
        assert ask(gateway, "cb_rate_limits") == BACKUP_TEXT
        assert len(primary.requests) == n, "a 429 says nothing about health: the primary is still asked"


def test_a_probe_answered_with_a_400_does_not_wedge_the_breaker(gateway, primary, backup):
    # The probe reaches the primary and it answers (a 400 is the client's problem, not the upstream's health):
    # the breaker must not stay half-open with its one probe "in flight" forever.
    opened = _open_breaker(gateway, "cb_probe_400", primary)
    primary.script(ErrorReply(400, {"error": {"message": "bad tool schema", "type": "invalid_request_error"}}))
    _sleep_past_cooldown(opened)
    with sdk(gateway) as client, pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="cb_probe_400", max_tokens=50, messages=USER_HI)
    probed = time.monotonic()
    assert len(primary.requests) == BREAKER["failures"] + 1

    primary.script(ChatReply(text=PRIMARY_TEXT))
    _sleep_past_cooldown(probed)
    assert ask(gateway, "cb_probe_400") == PRIMARY_TEXT, "the primary is never probed again after a 400 probe"
