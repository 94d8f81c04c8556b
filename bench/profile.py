"""Profile a gateway under load with py-spy: start the upstream and the gateway (pinned as in run.py), drive one
scenario with the load generator while py-spy samples the gateway, then print the hottest functions.

    python bench/profile.py --gateway dragoman --scenario small -c 32 -d 10
    python bench/profile.py --gateway dragoman --scenario stream -c 1 --top 40

Writes the collapsed stacks (bench/results/profile-*.txt, for flamegraph tools) and a speedscope JSON beside.
Needs py-spy (`pip install py-spy`); runs as root or with ptrace allowed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateways import BENCH, GATEWAYS, Processes, start_upstream  # noqa: E402
from run import GATEWAY_CPUS, LOAD_CPUS  # noqa: E402
from scenarios import SCENARIO_NAMES, build_scenarios  # noqa: E402
from validate import validate  # noqa: E402


def top_functions(collapsed: Path, top: int) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed ('raw') output."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].split("/")[-1] + ")" if " (" in f else f
            for f in stack.split(";")
        ]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "self %   function (file)"]
    out += [f"{100 * n / total:6.1f}   {f}" for f, n in own.most_common(top)]
    out += ["", "inclusive %   function (file)"]
    out += [f"{100 * n / total:6.1f}   {f}" for f, n in incl.most_common(top)]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description="py-spy profile of a gateway under load")
    ap.add_argument("--gateway", default="dragoman", choices=sorted(GATEWAYS))
    ap.add_argument("--scenario", default="small", choices=list(SCENARIO_NAMES))
    ap.add_argument("-c", "--concurrency", type=int, default=32)
    ap.add_argument("-d", "--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--native", action="store_true", help="include C frames (py-spy --native)")
    ap.add_argument(
        "--all-threads",
        action="store_true",
        help="sample every thread; default: only the thread holding the GIL (py-spy --gil), "
        "which leaves out threads parked in waits and the event loop's idle poll",
    )
    args = ap.parse_args()
    if not shutil.which("py-spy"):
        sys.exit("py-spy not found: pip install py-spy")
    os.sched_setaffinity(0, {int(LOAD_CPUS)})
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = BENCH / "results" / f"profile-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    sc = next(s for s in build_scenarios() if s.name == args.scenario)
    body = workdir / "body.json"
    body.write_bytes(sc.anthropic)
    gw_spec = GATEWAYS[args.gateway]
    procs = Processes()
    try:
        up = start_upstream(procs, workdir, LOAD_CPUS)
        gw = gw_spec.start(procs, workdir, up.port, GATEWAY_CPUS, "profile")
        problem = validate(gw.port, "/v1/messages", sc.anthropic, gw.headers, sc.stream, anthropic=True,
                           tools=bool(sc.path_prefix))
        if problem:
            sys.exit(f"{args.gateway} answers {args.scenario} wrongly: {problem}")
        raw = workdir.parent / f"profile-{args.gateway}-{args.scenario}-c{args.concurrency}-{stamp}.txt"
        spy_cmd = [
            "py-spy",
            "record",
            "--pid",
            str(gw.proc.pid),
            "--rate",
            str(args.rate),
            "--format",
            "raw",
            "--output",
            str(raw),
            "--duration",
            str(int(args.duration) + 1),
            "--subprocesses",
        ]
        if args.native:
            spy_cmd.append("--native")
        if not args.all_threads:
            spy_cmd.append("--gil")
        spy = procs.start(spy_cmd, dict(os.environ), workdir / "py-spy.log")
        load = subprocess.run(
            [
                sys.executable,
                str(BENCH / "loadgen.py"),
                "--url",
                f"http://127.0.0.1:{gw.port}/v1/messages",
                "--body",
                str(body),
                "-c",
                str(args.concurrency),
                "-d",
                str(args.duration),
                "--warmup",
                "0",
                "--server-pid",
                str(gw.proc.pid),
            ]
            + [a for k, v in gw.headers for a in ("-H", f"{k}: {v}")],
            capture_output=True,
            text=True,
            timeout=args.duration + 120,
        )
        spy.wait(60)
        print("load:", load.stdout.strip() or load.stderr[-500:])
        print(f"collapsed stacks: {raw}\n")
        print(top_functions(raw, args.top))
        report = json.loads(load.stdout) if load.stdout.strip() else {}
        print(
            f"\n(py-spy sampling slows the gateway: compare CPU/req {report.get('server_cpu_ms_per_req')} ms "
            "with a run.py figure only loosely)"
        )
    finally:
        procs.stop_all()
        for path in workdir.glob("dragoman.db*"):  # the audit store, configured as ./dragoman.db in the cwd
            path.unlink()


if __name__ == "__main__":
    main()
