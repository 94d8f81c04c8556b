"""The limits uvicorn lacks, against a real gateway process over raw sockets (dragoman/http_protocol.py).

A 16 MB header gets 431, not a 160 MB process; a head dribbled a byte at a time, or a body that never comes,
gets 408 and a closed socket after the configured timeout; past `max_connections` a request gets 529
`overloaded_error` and real clients are served again once connections close; malformed HTTP gets an Anthropic 400;
the soft descriptor limit is raised to the hard one at start. Every answer is Anthropic-shaped."""

from __future__ import annotations

import resource
import select
from typing import Iterator

import pytest

from tests.gateway import UPSTREAM_ENV, Gateway, run_gateway
from tests.http_raw import (
    assert_anthropic_error,
    config_with_server,
    connect,
    exchange,
    get,
    parse,
    read_until_closed,
)
from tests.routing_helpers import wait_until
from tests.upstreams import ScriptedChatUpstream

pytestmark = pytest.mark.timeout(60)

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 40
MAX_CONNECTIONS = 4


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def gw(upstream: ScriptedChatUpstream) -> Iterator[Gateway]:
    """Short timeouts (1 s) and small head limits."""
    text = config_with_server(upstream.chat_url, max_header_bytes=MAX_HEADER_BYTES, max_headers=MAX_HEADERS,
                              header_timeout=1, body_timeout=1)
    with run_gateway(text, env=UPSTREAM_ENV) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def capped(upstream: ScriptedChatUpstream) -> Iterator[Gateway]:
    with run_gateway(config_with_server(upstream.chat_url, max_connections=MAX_CONNECTIONS), env=UPSTREAM_ENV) as gateway:
        yield gateway


def test_sixteen_megabyte_header_gets_431(gw: Gateway) -> None:
    with connect(gw.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        block = b"a" * (1 << 20)
        for _ in range(16):  # the server discards what follows its answer (lingering close): no reset
            sock.sendall(block)
        message = assert_anthropic_error(parse(read_until_closed(sock)), 431, "invalid_request_error")
    assert str(MAX_HEADER_BYTES) in message


def test_head_within_the_limit_is_served(gw: Gateway) -> None:
    answer = parse(exchange(gw.port, get("/healthz", extra=b"X-Fill: " + b"a" * (MAX_HEADER_BYTES - 512) + b"\r\n")))
    assert answer.status == 200, answer


def test_too_many_header_fields_get_431(gw: Gateway) -> None:
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    message = assert_anthropic_error(parse(exchange(gw.port, get("/healthz", extra=fields))), 431, "invalid_request_error")
    assert str(MAX_HEADERS) in message


def test_head_sent_one_byte_at_a_time_is_answered_408_and_closed(gw: Gateway) -> None:
    """Slowloris: each byte comes before any per-read timer would fire; the head's deadline still holds."""
    dribble = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 1000
    with connect(gw.port) as sock:
        for byte in dribble:
            readable, _, _ = select.select([sock], [], [], 0.05)  # until the server says something
            if readable:
                break
            sock.sendall(bytes([byte]))
        else:
            pytest.fail("the server never gave up on a head dribbled over ~50 s")
        message = assert_anthropic_error(parse(read_until_closed(sock)), 408, "invalid_request_error")
    assert "headers not received" in message


def test_connection_that_sends_nothing_is_closed_without_an_answer(gw: Gateway) -> None:
    with connect(gw.port) as sock:
        assert read_until_closed(sock) == b""


def test_body_that_never_completes_gets_408(gw: Gateway) -> None:
    head = (b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: 1000\r\n\r\n")
    with connect(gw.port) as sock:
        sock.sendall(head + b'{"model":')
        message = assert_anthropic_error(parse(read_until_closed(sock)), 408, "invalid_request_error")
    assert "body not received" in message


@pytest.mark.parametrize("request_bytes", [
    b"NOT AN HTTP REQUEST\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header Name: x\r\n\r\n",
    b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\n12345",
], ids=["request-line", "header-name", "double-content-length"])
def test_malformed_http_gets_an_anthropic_400(gw: Gateway, request_bytes: bytes) -> None:
    raw = exchange(gw.port, request_bytes)
    assert b"Invalid HTTP request received" not in raw
    assert_anthropic_error(parse(raw), 400, "invalid_request_error")


def test_past_max_connections_a_request_gets_529_and_clients_are_served_again(capped: Gateway) -> None:
    assert capped.request("GET", "/healthz").status == 200
    held = [connect(capped.port) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:  # each holds a connection with a head under way
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        answer = parse(exchange(capped.port, get("/healthz")))
        message = assert_anthropic_error(answer, 529, "overloaded_error")
        assert str(MAX_CONNECTIONS) in message
        assert answer.headers.get("retry-after") == "1" and answer.headers.get("x-should-retry") == "true"
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: capped.request("GET", "/healthz").status == 200, 10, "a request served once slots free up")


def test_soft_descriptor_limit_is_raised_to_the_hard_limit(upstream: ScriptedChatUpstream) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"the hard limit here ({hard}) leaves nothing to raise")

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    with run_gateway(config_with_server(upstream.chat_url), env=UPSTREAM_ENV, preexec_fn=low_soft_limit) as gateway:
        limits = open(f"/proc/{gateway.proc.pid}/limits").read()
    line = next(row for row in limits.splitlines() if row.startswith("Max open files"))
    soft_now, hard_now = (int(v) for v in line.split()[3:5])
    assert (soft_now, hard_now) == (hard, hard), line
