"""`dragoman serve --port/--workers` and `DRAGOMAN_PORT` are checked before anything starts: a port outside 0..65535
or a worker count outside 1..64 is a usage error (exit 2, one error line). A port past 65535 used to bind another
port (70000 bound 4464) while the log announced 70000, -1 ended in uvicorn's own error, and 0 or fewer workers
quietly ran one. With --port 0 the listening line names the port the system picked, not 0. DRAGOMAN_PORT is read by `serve` alone, when it runs: a bad value once broke every subcommand with
a traceback, as the parser was built."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from dragoman import serving
from dragoman.cli import main
from tests.gateway import START_TIMEOUT, UPSTREAM_ENV, _healthy, gateway_config, run_gateway
from tests.waiting import wait_for

CONFIG = """\
metrics: {enabled: false}
routes:
  - name: r
    upstream: {provider: openai_compatible, model: one, endpoint: "http://127.0.0.1:9/v1"}
"""


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, int, int]]:
    """The (host, port, workers) each `serve` would have served with; no server is started. The environment
    and SIGHUP handler serve changes are put back afterwards."""
    calls: list[tuple[str, int, int]] = []
    monkeypatch.setattr(serving, "run", lambda config, host, port, workers, *rest: calls.append((host, port, workers)) or 0)
    for name in ("DRAGOMAN_PORT", "DRAGOMAN_CONFIG", "DRAGOMAN_LOG_LEVEL", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    hup = signal.getsignal(signal.SIGHUP)
    yield calls
    signal.signal(signal.SIGHUP, hup)


def _serve(tmp_path: Path, *argv: str) -> int:
    path = tmp_path / "dragoman.yaml"
    path.write_text(CONFIG)
    try:
        return main(["serve", "--config", str(path), *argv])
    except SystemExit as exit_:  # argparse's usage error
        return int(exit_.code or 0)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.parametrize("argv", [("--port", "70000"), ("--port", "65536"), ("--port", "-1"), ("--port", "http"),
                                  ("--workers", "0"), ("--workers", "-3"), ("--workers", "65"),
                                  ("--workers", "100000"), ("--workers", "two")])
def test_a_port_or_worker_count_out_of_range_is_a_usage_error(served, capsys, tmp_path: Path, argv: tuple[str, str]) -> None:
    assert _serve(tmp_path, *argv) == 2
    line = _one_error_line(capsys)
    assert f"argument {argv[0]}" in line and "write a number from" in line, line
    assert served == []


@pytest.mark.parametrize("argv, port, workers", [
    (("--port", "0"), 0, 1), (("--port", "65535"), 65535, 1),
    (("--port", "8081", "--workers", "1"), 8081, 1), (("--port", "8081", "--workers", "64"), 8081, 64),
])
def test_a_port_and_worker_count_in_range_are_served(served, tmp_path: Path, argv: tuple[str, ...], port: int,
                                                     workers: int) -> None:
    assert _serve(tmp_path, *argv) == 0
    assert served == [("127.0.0.1", port, workers)]


def test_dragoman_port_is_the_port_without_a_port_option_and_8080_without_either(served, monkeypatch, tmp_path: Path) -> None:
    assert _serve(tmp_path) == 0
    monkeypatch.setenv("DRAGOMAN_PORT", "9123")
    assert _serve(tmp_path) == 0
    assert _serve(tmp_path, "--port", "9124") == 0
    assert [port for _, port, _ in served] == [8080, 9123, 9124]


@pytest.mark.parametrize("value", ["abc", "70000", "-1", "80 80"])
def test_a_bad_dragoman_port_stops_serve_with_one_line_naming_it(served, monkeypatch, capsys, tmp_path: Path,
                                                                   value: str) -> None:
    monkeypatch.setenv("DRAGOMAN_PORT", value)
    assert _serve(tmp_path) == 2
    line = _one_error_line(capsys)
    assert "DRAGOMAN_PORT" in line and "write a number from 0 to 65535" in line, line
    assert served == []


def test_a_bad_dragoman_port_concerns_serve_alone(served, monkeypatch, capsys, tmp_path: Path) -> None:
    path = tmp_path / "dragoman.yaml"
    path.write_text(CONFIG)
    monkeypatch.setenv("DRAGOMAN_PORT", "abc")
    assert main(["check", str(path)]) == 0
    assert "ok, 1 route(s)" in capsys.readouterr().out


@pytest.mark.parametrize("workers", [1, 2])
def test_serving_on_port_0_announces_the_port_it_got(workers: int) -> None:
    # run_gateway passes --port itself; the later --port 0 wins, as argparse takes the last.
    with run_gateway(gateway_config("http://127.0.0.1:9/v1"), env=UPSTREAM_ENV, workers=workers,
                     args=("--port", "0"), healthy=False) as gw:
        found = wait_for(lambda: re.search(r"dragoman listening on http://127\.0\.0\.1:(\d+)", gw.stderr_text()),
                         START_TIMEOUT, "the listening line", alive=gw.proc, log=gw.stderr_text)
        port = int(found.group(1))
        assert port != 0, found.group(0)
        wait_for(lambda: _healthy(port), START_TIMEOUT, f"an answer on the announced port {port}", alive=gw.proc,
                 log=gw.stderr_text)
