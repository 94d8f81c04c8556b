"""`dragoman claude`'s check of the gateway reaches it the way Claude Code will: it trusts the CAs Claude Code
trusts (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE), takes the proxy Claude Code takes (and none when NO_PROXY names the
gateway), and says which failure it met: an untrusted certificate is a TLS error, not "no gateway answers". What
the check cannot judge for Claude Code (a proxy in between, a gateway slow to answer) is a warning, and Claude Code
starts."""

from __future__ import annotations

import http.server
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dragoman.claude_launch import LaunchError, probe_gateway
from tests.gateway import Gateway, run_gateway
from tests.test_dragoman_claude_keeps_secrets_and_settings_in_check import _launch


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA certificate, gateway certificate signed by it for 127.0.0.1, its key): a private CA made here."""
    if shutil.which("openssl") is None:  # neither trustme nor cryptography is installed here
        if os.environ.get("CI", "").lower() == "true":  # .ci/run installs it: in CI nothing skips
            pytest.fail("openssl is needed to make a private CA")
        pytest.skip("openssl is needed to make a private CA")
    d = tmp_path_factory.mktemp("ca")
    ca_key, ca, key, csr, cert, ext = (d / n for n in ("ca.key", "ca.pem", "gw.key", "gw.csr", "gw.pem", "ext"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
             "-subj", "/CN=Dragoman test private CA")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


class _Gateway(http.server.BaseHTTPRequestHandler):
    """What `dragoman claude` asks of a gateway: /healthz and /v1/models (dragoman serve has no TLS listener)."""

    release: threading.Event  # set by the server: a slow path answers only once it is set
    slow: str = ""
    seen: list[str]

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.seen.append(self.path)
        if self.path == self.slow:
            self.release.wait()
        self.send_response(200 if self.path in ("/healthz", "/v1/models") else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def _serve(tls: tuple[Path, Path] | None = None, slow: str = "", status: int = 200) -> Iterator[tuple[str, _Gateway]]:
    handler = type("Handler", (_Gateway,), {"release": threading.Event(), "slow": slow, "seen": []})
    if status != 200:  # a proxy that cannot reach the gateway answers every request itself
        handler.do_GET = lambda self: (self.seen.append(self.path), self.send_error(status))  # type: ignore[method-assign]
        handler.do_CONNECT = handler.do_GET  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", handler  # type: ignore[misc]
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def tls_gateway(private_ca: tuple[Path, Path, Path]) -> Iterator[str]:
    _, cert, key = private_ca
    for url, _ in _serve((cert, key)):
        yield url


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with run_gateway(None) as gw:
        yield gw


@pytest.mark.parametrize("variable", ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE"])
def test_a_gateway_signed_by_a_ca_claude_code_trusts_starts_claude_code(
        tmp_path: Path, private_ca: tuple[Path, Path, Path], tls_gateway: str, variable: str) -> None:
    result = _launch(tmp_path, {"DRAGOMAN_URL": tls_gateway, variable: str(private_ca[0])}, "-p", "hi")
    assert result.returncode == 0, result
    assert f"ANTHROPIC_BASE_URL={tls_gateway}" in result.stdout and "warning" not in result.stderr


def test_an_untrusted_certificate_is_a_tls_error_naming_node_extra_ca_certs(tmp_path: Path, tls_gateway: str) -> None:
    result = _launch(tmp_path, {"DRAGOMAN_URL": tls_gateway}, "-p", "hi")
    assert result.returncode == 2, result
    assert f"the gateway at {tls_gateway} presented a certificate this machine does not trust" in result.stderr
    assert "set NODE_EXTRA_CA_CERTS" in result.stderr
    assert "no gateway answers" not in result.stderr and "dragoman serve" not in result.stderr


def test_the_check_can_be_turned_off_and_only_by_one_or_zero(tmp_path: Path, tls_gateway: str) -> None:
    off = _launch(tmp_path, {"DRAGOMAN_URL": tls_gateway, "DRAGOMAN_CLAUDE_NO_CHECK": "1"}, "-p", "hi")
    assert off.returncode == 0, off
    unclear = _launch(tmp_path, {"DRAGOMAN_URL": tls_gateway, "DRAGOMAN_CLAUDE_NO_CHECK": "yes"}, "-p", "hi")
    assert unclear.returncode == 2 and "DRAGOMAN_CLAUDE_NO_CHECK='yes'" in unclear.stderr, unclear


def test_plain_http_to_a_tls_port_is_not_reported_as_no_gateway(tmp_path: Path, tls_gateway: str) -> None:
    url = tls_gateway.replace("https://", "http://")
    result = _launch(tmp_path, {"DRAGOMAN_URL": url}, "-p", "hi")
    assert result.returncode == 2, result
    assert "no gateway answers" not in result.stderr and "gave no HTTP answer to GET /healthz" in result.stderr


def test_a_proxy_that_cannot_reach_the_gateway_warns_and_claude_code_starts(tmp_path: Path, gateway: Gateway) -> None:
    for proxy, seen in _serve(status=502):
        port = proxy.rsplit(":", 1)[1]
        env = {"DRAGOMAN_URL": gateway.base_url, "NO_PROXY": "", "HTTP_PROXY": f"http://ana:pw-secret@127.0.0.1:{port}"}
        result = _launch(tmp_path, env, "-p", "hi")
        assert result.returncode == 0, result
        assert seen.seen, "the check did not take the proxy Claude Code will take"
        assert f"through the proxy http://127.0.0.1:{port} (GET /healthz answered HTTP 502)" in result.stderr
        assert "add 127.0.0.1 to NO_PROXY" in result.stderr and "pw-secret" not in result.stderr


@pytest.mark.parametrize("no_proxy", ["localhost 127.0.0.1", "localhost,127.0.0.1", "*"])
def test_a_gateway_named_in_no_proxy_is_checked_without_the_proxy(tmp_path: Path, gateway: Gateway,
                                                                  no_proxy: str) -> None:
    for proxy, seen in _serve(status=502):
        env = {"DRAGOMAN_URL": gateway.base_url, "NO_PROXY": no_proxy, "HTTP_PROXY": proxy}
        result = _launch(tmp_path, env, "-p", "hi")
        assert result.returncode == 0 and "warning" not in result.stderr, result
        assert seen.seen == []


@pytest.mark.parametrize("slow", ["/healthz", "/v1/models"])
def test_a_gateway_slow_to_answer_is_a_warning_saying_what_was_waited_for(slow: str) -> None:
    for url, _ in _serve(slow=slow):
        warnings = probe_gateway(url, "sk-key", {}, timeout=0.2)
        assert len(warnings) == 1 and f"did not answer GET {slow} within 0.2 s" in warnings[0], warnings


def test_a_refused_connection_and_an_http_error_say_so(gateway: Gateway) -> None:
    for url, _ in _serve(status=503):
        with pytest.raises(LaunchError, match=r"/healthz answered HTTP 503, not a Dragoman gateway"):
            probe_gateway(url, "sk-key", {})
    with pytest.raises(LaunchError, match=r"no gateway answers at .*refused the connection.*dragoman serve"):
        probe_gateway("http://127.0.0.1:1", "sk-key", {})
