"""`server:` settings (limits, timeouts, CORS origins, Host names): defaults, and every mistake refused at load with
the file and line, like the rest of the config."""

from __future__ import annotations

import re

import pytest

from dragoman.errors import ConfigError
from dragoman.config.load import parse_config
from dragoman.config.model import ServerSettings

ROUTE = """\
routes:
  - name: local
    upstream:
      provider: openai_compatible
      model: m
      endpoint: http://127.0.0.1:8000/v1
"""


def _server(block: str) -> ServerSettings:
    return parse_config(ROUTE + "server:\n" + block, "gw.yaml", {}).server


def _error(block: str) -> tuple[int, str]:
    with pytest.raises(ConfigError) as info:
        _server(block)
    found = re.match(r"^gw\.yaml:(\d+): (.*)$", str(info.value), re.DOTALL)
    assert found, f"error not located: {info.value}"
    return int(found[1]), found[2]


def test_defaults() -> None:
    settings = parse_config(ROUTE, "gw.yaml", {}).server
    assert settings == ServerSettings()
    assert (settings.max_header_bytes, settings.max_headers) == (65536, 100)
    assert (settings.header_timeout, settings.body_timeout, settings.shutdown_timeout) == (10.0, 60.0, 30.0)
    assert settings.max_connections is None and settings.cors_origins == () and settings.allowed_hosts == ()


def test_every_setting_as_written() -> None:
    settings = _server(
        "  max_header_bytes: 32768\n  max_headers: 50\n  header_timeout: 5\n  body_timeout: 30.5\n"
        "  max_connections: 2000\n  shutdown_timeout: 0\n"
        "  cors_origins: [https://App.Example.com, 'http://localhost:3000']\n"
        "  allowed_hosts: [gateway.internal, 'Dev-Box:9000', '[::1]:8081']\n")
    assert (settings.max_header_bytes, settings.max_headers, settings.max_connections) == (32768, 50, 2000)
    assert (settings.header_timeout, settings.body_timeout, settings.shutdown_timeout) == (5.0, 30.5, 0.0)
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:3000")  # compared lower-cased
    assert settings.allowed_hosts == ("gateway.internal", "dev-box:9000", "[::1]:8081")


ERRORS = {
    "header-bytes-tiny": ("  max_header_bytes: 100\n", 8, "server.max_header_bytes: Expected int >= 1024"),
    "headers-few": ("  max_headers: 2\n", 8, "server.max_headers: Expected int >= 8"),
    "header-timeout-zero": ("  header_timeout: 0\n", 8, "server.header_timeout: Expected float > 0.0"),
    "body-timeout-text": ("  body_timeout: slow\n", 8, "server.body_timeout: Expected float, got str"),
    "connections-zero": ("  max_connections: 0\n", 8, "server.max_connections: Expected int >= 1"),
    "shutdown-negative": ("  shutdown_timeout: -1\n", 8, "server.shutdown_timeout: Expected float >= 0.0"),
    "unknown-key": ("  max_header_size: 1\n", 8, 'unknown field "max_header_size"'),
    "origin-without-scheme": ("  cors_origins: [app.example.com]\n", 8, '"app.example.com" is not an origin'),
    "origin-with-path": ("  cors_origins:\n    - https://a.example\n    - https://b.example/app\n", 10,
                         "server.cors_origins[1]: \"https://b.example/app\" is not an origin"),
    "host-with-scheme": ("  allowed_hosts: ['http://gw.internal']\n", 8, '"http://gw.internal" is not a host name'),
    "host-with-path": ("  allowed_hosts: [gw.internal/x]\n", 8, "server.allowed_hosts[0]"),
}


@pytest.mark.parametrize(("block", "line", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_mistakes_name_file_line_and_problem(block: str, line: int, message: str) -> None:
    got_line, got_message = _error(block)
    assert message in got_message
    assert got_line == line, got_message
