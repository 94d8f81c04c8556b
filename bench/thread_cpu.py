"""CPU per request, per thread of a gateway, under load: which thread pays for a feature. Starts the upstream and the
gateway pinned as run.py pins them, warms up for a second, drives one scenario for `-d` seconds, and reads each
thread's CPU time from /proc before and after (Linux). For Dragoman the event loop is the thread named `python`
with the lower id, the audit writer the next one.

    python bench/thread_cpu.py --gateway dragoman --scenario tools -c 32 -d 5
    python bench/thread_cpu.py --gateway dragoman-noloop --scenario tools-stream -c 32

Run it a few times per gateway and compare medians: one run moves by ±10 µs on a shared machine."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateways import BENCH, GATEWAYS, Processes, start_upstream  # noqa: E402
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


def main() -> None:
    ap = argparse.ArgumentParser(description="CPU per request per gateway thread")
    ap.add_argument("--gateway", default="dragoman", choices=sorted(GATEWAYS))
    ap.add_argument("--scenario", default="tools", choices=list(SCENARIO_NAMES))
    ap.add_argument("-c", "--concurrency", type=int, default=32)
    ap.add_argument("-d", "--duration", type=float, default=5.0)
    args = ap.parse_args()
    os.sched_setaffinity(0, {int(LOAD_CPUS)})
    workdir = BENCH / "results" / f"threads-{datetime.now():%Y%m%d-%H%M%S-%f}"
    workdir.mkdir(parents=True)
    scenario = next(s for s in build_scenarios() if s.name == args.scenario)
    body = workdir / "body.json"
    body.write_bytes(scenario.anthropic)
    procs = Processes()
    try:
        upstream = start_upstream(procs, workdir, LOAD_CPUS)
        gw = GATEWAYS[args.gateway].start(procs, workdir, upstream.port, GATEWAY_CPUS, "threads")

        def load(seconds: float) -> dict:
            cmd = [sys.executable, str(BENCH / "loadgen.py"), "--url", f"http://127.0.0.1:{gw.port}/v1/messages",
                   "--body", str(body), "-c", str(args.concurrency), "-d", str(seconds), "--warmup", "0"]
            cmd += [a for k, v in gw.headers for a in ("-H", f"{k}: {v}")]
            return json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120).stdout)

        load(1.0)
        before = thread_cpu(gw.proc.pid)
        report = load(args.duration)
        time.sleep(1.0)  # the audit writer flushes every 0.5 s: what the load left queued is written by then
        after = thread_cpu(gw.proc.pid)
        n = report["requests"]
        print(f"{args.gateway} {args.scenario} c={args.concurrency}: {n} requests, {report['rps']:.0f} req/s")
        for thread, seconds in sorted(after.items(), key=lambda item: int(item[0].rsplit(":", 1)[1])):
            spent = seconds - before.get(thread, 0.0)
            if spent > 0:
                print(f"  {thread:32s} {spent * 1e6 / n:8.1f} µs/request")
    finally:
        procs.stop_all()
        for path in workdir.glob("dragoman.db*"):
            path.unlink()


if __name__ == "__main__":
    main()
