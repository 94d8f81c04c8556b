"""What Python's cyclic garbage collector costs Dragoman under load: the same gateway started three ways —
default GC, gen-0 threshold raised to 100,000, GC disabled — each driven at c=32 with the `small` and `cc78k`
bodies, pinned as in run.py. Nothing in Dragoman is changed: the variants wrap `dragoman.cli.main`.

    python bench/gc_variants.py [--repeats 2] [--duration 3]
"""

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

from gateways import BENCH, Dragoman, Processes, free_port, pinned, start_upstream, wait_ready  # noqa: E402
from run import GATEWAY_CPUS, LOAD_CPUS  # noqa: E402
from scenarios import build_scenarios  # noqa: E402

_MAIN = "from dragoman.cli import main; sys.exit(main())"
VARIANTS = {
    "default GC": f"import sys; {_MAIN}",
    "gc.set_threshold(100_000, 50, 1000)": f"import gc, sys; gc.set_threshold(100_000, 50, 1000); {_MAIN}",
    "gc.disable()": f"import gc, sys; gc.disable(); {_MAIN}",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--duration", type=float, default=3.0)
    args = ap.parse_args()
    os.sched_setaffinity(0, {int(LOAD_CPUS)})
    workdir = BENCH / "results" / f"gc-{datetime.now():%Y%m%d-%H%M%S}"
    workdir.mkdir(parents=True, exist_ok=True)
    bodies = {s.name: s.anthropic for s in build_scenarios() if s.name in ("small", "cc78k")}
    for name, body in bodies.items():
        (workdir / f"{name}.json").write_bytes(body)
    spec, procs = Dragoman(), Processes()
    try:
        up = start_upstream(procs, workdir, LOAD_CPUS)
        config = spec.write_config(workdir, up.port)
        print("| repeat | variant | scenario (c=32) | req/s | p50 (ms) | CPU/req (ms) |\n|---|---|---|---|---|---|")
        for repeat in range(1, args.repeats + 1):
            for i, (variant, code) in enumerate(VARIANTS.items()):
                port, log = free_port(), workdir / f"variant{i}-r{repeat}.log"
                cmd = [sys.executable, "-c", code, "serve", "--config", str(config), "--host", "127.0.0.1"]
                proc = procs.start(pinned(cmd + ["--port", str(port)], GATEWAY_CPUS), spec.env(), log)
                wait_ready(proc, port, "/healthz", time.perf_counter(), 60, log)
                time.sleep(2)
                for name in bodies:
                    load = subprocess.run(
                        [sys.executable, str(BENCH / "loadgen.py"), "--url", f"http://127.0.0.1:{port}/v1/messages",
                         "--body", str(workdir / f"{name}.json"), "-c", "32", "-d", str(args.duration),
                         "--server-pid", str(proc.pid)],
                        capture_output=True, text=True, timeout=args.duration + 120,
                    )  # fmt: skip
                    r = json.loads(load.stdout)
                    print(f"| {repeat} | {variant} | {name} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
                          f"{r['server_cpu_ms_per_req']:.3f} |", flush=True)  # fmt: skip
                procs.stop(proc)
                for path in workdir.glob("dragoman.db*"):  # the audit store, configured as ./dragoman.db in the cwd
                    path.unlink()
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
