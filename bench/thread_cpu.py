"""CPU per request, per thread of a gateway, under load: which thread pays for a feature. Starts the upstream and the
gateway pinned as run.py pins them, warms up for a second, drives one scenario for `-d` seconds, and reads each
thread's CPU time from /proc before and after (Linux). For Dragoman the event loop is the thread named `python`
with the lower id, the audit writer the next one.

    python bench/thread_cpu.py --gateway dragoman --scenario tools -c 32 -d 5
    python bench/thread_cpu.py --gateway dragoman-noloop --scenario tools-stream -c 32
    python bench/thread_cpu.py --gateway dragoman-noloop --gateway dragoman --rounds 8 -d 4

One run moves by ±10-30 µs on a shared machine, and the machine drifts over minutes: compare gateways in one
invocation, `--rounds N` of them interleaved (each gateway once per round), and read the medians it prints last
(req/s, event loop, writer, both), as bench/RESULTS.md's "The tool-calling loop" does."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateways import BENCH, GATEWAYS, Processes, Started, start_upstream  # noqa: E402
from run import GATEWAY_CPUS, LOAD_CPUS  # noqa: E402
from scenarios import SCENARIO_NAMES, build_scenarios  # noqa: E402


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each thread of `pid`, by `name:tid`."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[f"{name}:{tid}"] = (int(fields[11]) + int(fields[12])) / tick
    return out


def load(gw: Started, body: Path, concurrency: int, seconds: float) -> dict:
    """One closed-loop load of `seconds` on a gateway (loadgen.py, no warm-up of its own): its report. Refuses a
    load in which any request failed: a gateway that errs is not measured."""
    cmd = [sys.executable, str(BENCH / "loadgen.py"), "--url", f"http://127.0.0.1:{gw.port}/v1/messages",
           "--body", str(body), "-c", str(concurrency), "-d", str(seconds), "--warmup", "0"]
    cmd += [a for k, v in gw.headers for a in ("-H", f"{k}: {v}")]
    report = json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120).stdout)
    if report["errors"] or set(report["statuses"]) != {"200"}:
        raise RuntimeError(f"{gw.name}: requests failed under load: {report['statuses']}")
    return report


def measure(gateway: str, scenario_name: str, concurrency: int, duration: float) -> tuple[float, list[float]]:
    """(req/s, CPU µs per request of each thread that spent any, by thread id) for one gateway under load; prints
    what it measured."""
    workdir = BENCH / "results" / f"threads-{datetime.now():%Y%m%d-%H%M%S-%f}"
    workdir.mkdir(parents=True)
    scenario = next(s for s in build_scenarios() if s.name == scenario_name)
    body = workdir / "body.json"
    body.write_bytes(scenario.anthropic)
    procs = Processes()
    try:
        upstream = start_upstream(procs, workdir, LOAD_CPUS)
        gw = GATEWAYS[gateway].start(procs, workdir, upstream.port, GATEWAY_CPUS, "threads")

        load(gw, body, concurrency, 1.0)
        before = thread_cpu(gw.proc.pid)
        report = load(gw, body, concurrency, duration)
        time.sleep(1.0)  # the audit writer flushes every 0.5 s: what the load left queued is written by then
        after = thread_cpu(gw.proc.pid)
        n = report["requests"]
        print(f"{gateway} {scenario_name} c={concurrency}: {n} requests, {report['rps']:.0f} req/s")
        per_thread = []
        for thread, seconds in sorted(after.items(), key=lambda item: int(item[0].rsplit(":", 1)[1])):
            spent = seconds - before.get(thread, 0.0)
            if spent > 0:
                print(f"  {thread:32s} {spent * 1e6 / n:8.1f} µs/request")
                per_thread.append(spent * 1e6 / n)
        return report["rps"], per_thread
    finally:
        procs.stop_all()
        for path in workdir.glob("dragoman.db*"):
            path.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description="CPU per request per gateway thread")
    ap.add_argument("--gateway", action="append", choices=sorted(GATEWAYS),
                    help="a gateway to measure (repeat to compare several; default dragoman)")
    ap.add_argument("--scenario", default="tools", choices=list(SCENARIO_NAMES))
    ap.add_argument("-c", "--concurrency", type=int, default=32)
    ap.add_argument("-d", "--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=1, help="measure every gateway this many times, interleaved")
    args = ap.parse_args()
    os.sched_setaffinity(0, {int(LOAD_CPUS)})
    gateways = args.gateway or ["dragoman"]
    runs: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in gateways}
    for _ in range(args.rounds):
        for name in gateways:
            runs[name].append(measure(name, args.scenario, args.concurrency, args.duration))
    if args.rounds > 1 or len(gateways) > 1:
        print(f"medians over {args.rounds} round(s), µs/request: event loop = first thread, writer = second")
        for name, measured in runs.items():
            rps = statistics.median(r for r, _ in measured)
            first = statistics.median(t[0] if t else 0.0 for _, t in measured)
            second = statistics.median(t[1] if len(t) > 1 else 0.0 for _, t in measured)
            both = statistics.median(sum(t[:2]) for _, t in measured)
            print(f"  {name:22s} {rps:8.0f} req/s  event loop {first:7.1f}  writer {second:7.1f}  both {both:7.1f}")


if __name__ == "__main__":
    main()
