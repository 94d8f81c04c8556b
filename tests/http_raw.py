"""Raw-socket HTTP/1.1 for tests that attack the gateway below what an HTTP client library lets one send."""

from __future__ import annotations

import socket
from typing import Any

import yaml

from tests.gateway import RawResponse, gateway_config

READ_TIMEOUT = 15.0  # every wait for the server is bounded by this


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset raises)."""
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def exchange(port: int, data: bytes) -> bytes:
    """Send `data` on a fresh connection, then read until the server closes it."""
    with connect(port) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def parse(raw: bytes) -> RawResponse:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, body)


def get(path: str, host: str = "127.0.0.1", extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n" % (path.encode(), host.encode(), extra)


def assert_anthropic_error(answer: RawResponse, status: int, error_type: str) -> str:
    """The answer is `status` with an Anthropic error body of `error_type`; returns its message."""
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.headers.get("content-type") == "application/json", answer.headers
    body = answer.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type, body
    assert body["error"]["message"], body
    return body["error"]["message"]


def config_with_server(endpoint: str, **server: Any) -> str:
    """The one-route test config (`tests.gateway.gateway_config`) with these `server:` settings."""
    data = yaml.safe_load(gateway_config(endpoint))
    data["server"] = server
    return yaml.safe_dump(data, sort_keys=False)
