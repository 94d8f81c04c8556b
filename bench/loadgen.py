"""Closed-loop HTTP/1.1 load generator: N keep-alive connections, each sends the same request again as soon as
the previous answer is complete. Records per-request latency and time to first body byte (TTFB).

Raw asyncio Protocol + httptools + uvloop: ~25 µs of CPU per request, so one core drives well over 8k req/s
(see bench/README.md). Optionally reads a server's CPU (its whole process tree, /proc) and RSS around the
measured window, so CPU per request covers exactly the requests counted.

Run: python bench/loadgen.py --url http://127.0.0.1:18001/v1/chat/completions --body req.json -c 32 -d 5
Prints one JSON object (see `summarize`) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from urllib.parse import urlsplit

import httptools

_perf = time.perf_counter
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------- /proc reading
def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes, in seconds."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # fields 14, 15 of stat(5), counted after "pid (comm)"
    return ticks / CLK_TCK


def core_busy_seconds(core: int) -> float:
    """Time core `core` spent not idle since boot (/proc/stat), in seconds."""
    with open("/proc/stat", "rb") as f:
        for line in f:
            if line.startswith(b"cpu%d " % core):
                v = [int(x) for x in line.split()[1:]]
                return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK  # all but idle and iowait (guest is inside user)
    raise ValueError(f"no cpu{core} in /proc/stat")


def tree_rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            continue
    return total


# ---------------------------------------------------------------------------------------------- the load
class Stats:
    __slots__ = ("latencies", "ttfbs", "errors", "statuses", "recording", "tail_ok", "tail_bad")

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.ttfbs: list[float] = []
        self.errors = 0
        self.statuses: dict[int, int] = {}
        self.recording = False
        self.tail_ok = 0
        self.tail_bad = 0


class Client(asyncio.Protocol):
    """One keep-alive connection in a closed loop."""

    def __init__(self, request: bytes, stats: Stats, gen: "Generator", expect_tail: bytes | None) -> None:
        self.request = request
        self.stats = stats
        self.gen = gen
        self.expect_tail = expect_tail
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.t0 = 0.0
        self.t_first = 0.0
        self.now = 0.0
        self.tail = b""
        self.in_flight = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        if not self.gen.take():
            self.transport.close()
            return
        self.t_first = 0.0
        self.tail = b""
        self.in_flight = True
        self.t0 = _perf()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.now = _perf()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.stats.errors += 1
            self.transport.close()

    def on_body(self, body: bytes) -> None:
        if not self.t_first:
            self.t_first = self.now
        if self.expect_tail is not None:
            self.tail = (self.tail + body)[-256:]

    def on_message_complete(self) -> None:
        now = _perf()
        self.in_flight = False
        stats = self.stats
        status = self.parser.get_status_code()
        if stats.recording:
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
            if status == 200:
                stats.latencies.append(now - self.t0)
                stats.ttfbs.append((self.t_first or now) - self.t0)
                if self.expect_tail is not None:
                    if self.expect_tail in self.tail:
                        stats.tail_ok += 1
                    else:
                        stats.tail_bad += 1
            else:
                stats.errors += 1
        if not self.parser.should_keep_alive():
            self.transport.close()
            return
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:  # the server hung up on a request: an error, and one connection fewer from now on
            self.in_flight = False
            self.stats.errors += 1
        if not self.closed.done():
            self.closed.set_result(None)


class Generator:
    """Hands out request permits until the deadline or the request budget runs out."""

    def __init__(self, deadline: float, budget: int) -> None:
        self.deadline = deadline
        self.budget = budget
        self.stopped = False

    def take(self) -> bool:
        if self.stopped or self.budget <= 0 or _perf() >= self.deadline:
            self.stopped = True
            return False
        self.budget -= 1
        return True


async def run_phase(
    host: str,
    port: int,
    request: bytes,
    conns: int,
    seconds: float,
    requests: int,
    stats: Stats,
    expect_tail: bytes | None,
    timeout: float,
) -> float:
    """Run `conns` closed-loop connections until `seconds` pass or `requests` have been sent; returns wall time."""
    loop = asyncio.get_running_loop()
    gen = Generator(_perf() + seconds, requests)
    clients = []
    start = _perf()
    for _ in range(conns):
        _, client = await loop.create_connection(lambda: Client(request, stats, gen, expect_tail), host, port)
        clients.append(client)
    try:
        await asyncio.wait_for(asyncio.gather(*(c.closed for c in clients)), seconds + timeout)
    except asyncio.TimeoutError:  # answers still missing: abort; connection_lost counts each as an error
        for c in clients:
            if c.transport is not None:
                c.transport.abort()
        await asyncio.sleep(0.01)
    return _perf() - start


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def summarize(stats: Stats, wall: float, cpu: float | None, rss: int | None) -> dict:
    lat = sorted(stats.latencies)
    ttfb = sorted(stats.ttfbs)
    n = len(lat)
    ms = lambda v: None if v is None else round(v * 1000, 4)  # noqa: E731
    return {
        "requests": n,
        "errors": stats.errors,
        "statuses": {str(k): v for k, v in stats.statuses.items()},
        "tail_bad": stats.tail_bad,
        "wall_s": round(wall, 4),
        "rps": round(n / wall, 1) if wall > 0 else None,
        "p50_ms": ms(percentile(lat, 50)),
        "p95_ms": ms(percentile(lat, 95)),
        "p99_ms": ms(percentile(lat, 99)),
        "mean_ms": ms(sum(lat) / n) if n else None,
        "max_ms": ms(lat[-1]) if n else None,
        "ttfb_p50_ms": ms(percentile(ttfb, 50)),
        "ttfb_p95_ms": ms(percentile(ttfb, 95)),
        "server_cpu_s": None if cpu is None else round(cpu, 3),
        "server_cpu_ms_per_req": None if cpu is None or not n else round(cpu * 1000 / n, 4),
        "server_rss_mb": None if rss is None else round(rss / 2**20, 1),
    }


def build_request(url: str, body: bytes, headers: list[tuple[str, str]]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {parts.netloc}",
        "content-type: application/json",
        f"content-length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in headers]
    return parts.hostname, parts.port or 80, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run(args: argparse.Namespace) -> dict:
    with open(args.body, "rb") as f:
        body = f.read()
    headers = [tuple(h.split(":", 1)) for h in args.header]
    host, port, request = build_request(args.url, body, [(k.strip(), v.strip()) for k, v in headers])
    expect_tail = args.expect_tail.encode() if args.expect_tail else None
    if args.warmup > 0:
        await run_phase(
            host, port, request, args.concurrency, args.warmup, args.warmup_requests, Stats(), None, args.timeout
        )
    pids = process_tree(args.server_pid) if args.server_pid else None
    cpu0 = tree_cpu_seconds(pids) if pids else None
    core0 = core_busy_seconds(args.server_core) if args.server_core >= 0 else None
    stats = Stats()
    stats.recording = True
    wall = await run_phase(
        host, port, request, args.concurrency, args.duration, args.requests, stats, expect_tail, args.timeout
    )
    cpu = tree_cpu_seconds(pids) - cpu0 if pids else None
    rss = tree_rss_bytes(process_tree(args.server_pid)) if args.server_pid else None
    result = summarize(stats, wall, cpu, rss)
    if core0 is not None:
        # CPU that something other than the server spent on the server's core: other load on a shared machine
        foreign = core_busy_seconds(args.server_core) - core0 - (cpu or 0.0)
        result["server_core_foreign_share"] = round(max(0.0, foreign) / wall, 3) if wall > 0 else None
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description="closed-loop HTTP/1.1 load generator")
    ap.add_argument("--url", required=True)
    ap.add_argument("--body", required=True, help="file with the request body, sent as is")
    ap.add_argument("--header", "-H", action="append", default=[], help="'name: value', repeatable")
    ap.add_argument("--concurrency", "-c", type=int, default=1)
    ap.add_argument("--duration", "-d", type=float, default=5.0, help="seconds of measured load")
    ap.add_argument("--requests", "-n", type=int, default=10**9, help="stop after this many measured requests")
    ap.add_argument("--warmup", type=float, default=0.5, help="seconds of unrecorded load first")
    ap.add_argument("--warmup-requests", type=int, default=10**9)
    ap.add_argument("--timeout", type=float, default=30.0, help="grace after the deadline for answers in flight")
    ap.add_argument("--expect-tail", default="", help="bytes each answer's last 256 body bytes must contain")
    ap.add_argument("--server-pid", type=int, default=0, help="read this process tree's CPU and RSS")
    ap.add_argument(
        "--server-core",
        type=int,
        default=-1,
        help="the core the server is pinned to: report how busy other processes kept it",
    )
    args = ap.parse_args()
    import uvloop

    result = uvloop.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
