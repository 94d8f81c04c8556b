"""Micro-benchmark of what the hardening adds per request (no network): uvicorn's httptools protocol against
dragoman's LimitedHttpToolsProtocol on the same keep-alive request, and the request guard's checks on Claude
Code's headers. Best of `--repeats`; run on a quiet core (`taskset -c 1 python bench/bench_hardening.py`)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from dragoman.http_protocol import LimitedHttpToolsProtocol
from dragoman.request_guard import RequestGuard
from dragoman.config.model import ServerSettings
from dragoman.serving import _UvicornConfig, limits_for

# The headers Claude Code 2.1 sends with /v1/messages (values shortened), as uvicorn hands them to the app.
HEADERS = [
    (b"host", b"127.0.0.1:8080"), (b"connection", b"keep-alive"), (b"accept", b"application/json"),
    (b"x-stainless-retry-count", b"0"), (b"x-stainless-timeout", b"600"), (b"x-stainless-lang", b"js"),
    (b"x-stainless-package-version", b"0.60.0"), (b"x-stainless-os", b"Linux"), (b"x-stainless-arch", b"x64"),
    (b"x-stainless-runtime", b"node"), (b"x-stainless-runtime-version", b"v22.12.0"),
    (b"anthropic-dangerous-direct-browser-access", b"true"), (b"anthropic-version", b"2023-06-01"),
    (b"authorization", b"Bearer sk-xxxxxxxxxxxxxxxx"), (b"x-app", b"cli"), (b"user-agent", b"claude-cli/2.1.197"),
    (b"content-type", b"application/json"), (b"anthropic-beta", b"claude-code-20250219,oauth-2025-04-20"),
    (b"x-claude-code-session-id", b"0f4c5e3a-1b2c-4d5e-8f90-123456789abc"), (b"accept-encoding", b"gzip, deflate"),
    (b"content-length", b"2048"),
]
BODY = b"x" * 2048
REQUEST = b"POST /v1/messages HTTP/1.1\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in HEADERS) + b"\r\n" + BODY


class _Transport:
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool: return False
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8080) if name in ("sockname", "peername") else default


async def _app(scope: dict, receive: Any, send: Any) -> None:
    while (await receive())["more_body"]:
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def _per_request(cls: type, n: int) -> float:
    """Seconds per request through `cls` on one keep-alive connection, the app answering at once."""
    config = _UvicornConfig(_app, limits=limits_for(ServerSettings(), 1024), drain_seconds=1.0, loop="none",
                            http="httptools", lifespan="off", log_level="error")
    config.load()
    state = ServerState()
    proto = cls(config=config, server_state=state, app_state={}, _loop=asyncio.get_running_loop())
    proto.connection_made(_Transport())
    began = time.perf_counter()
    for _ in range(n):
        proto.data_received(REQUEST)
        await asyncio.gather(*state.tasks)
    elapsed = time.perf_counter() - began
    proto.connection_lost(None)
    return elapsed / n


def _guard_per_request(n: int) -> float:
    guard = RequestGuard(ServerSettings())
    scope = {"type": "http", "method": "POST", "headers": HEADERS, "server": ("127.0.0.1", 8080)}
    check = guard.check
    began = time.perf_counter()
    for _ in range(n):
        check(scope)
    return (time.perf_counter() - began) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=30_000, help="requests per measurement")
    ap.add_argument("--repeats", type=int, default=9, help="measurements of each protocol, interleaved")
    args = ap.parse_args()
    uvloop.install()
    runs: dict[type, list[float]] = {HttpToolsProtocol: [], LimitedHttpToolsProtocol: []}
    for _ in range(args.repeats):  # interleaved, so a burst of other load hits both
        for cls, times in runs.items():
            times.append(asyncio.run(_per_request(cls, args.n)))
    (base, b50), (limited, l50) = ((min(t), statistics.median(t)) for t in runs.values())
    guard = min(_guard_per_request(args.n) for _ in range(args.repeats))
    print(f"uvicorn HttpToolsProtocol   {base * 1e6:6.2f} µs/request best, {b50 * 1e6:6.2f} median "
          "(parse + ASGI cycle, app answering at once)")
    print(f"LimitedHttpToolsProtocol    {limited * 1e6:6.2f} µs/request best, {l50 * 1e6:6.2f} median "
          f"({(limited - base) * 1e6:+.2f} / {(l50 - b50) * 1e6:+.2f})")
    print(f"RequestGuard.check          {guard * 1e6:6.2f} µs/request ({len(HEADERS)} headers)")


if __name__ == "__main__":
    main()
