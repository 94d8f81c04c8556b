"""Two gateways compared in interleaved slices: the steady reading of a small difference between them (a feature's
cost, such as the correctness loop's: `dragoman` against `dragoman-noloop`).

`run.py` starts each gateway afresh per repeat and measures them minutes apart; on a shared machine that drifts by
10-25 % over minutes, its ratios between two gateways move by 5-10 points from run to run on identical code
(bench/RESULTS.md). Here both gateways run side by side for the whole measurement, pinned to the same core as in
run.py, and the load alternates between them in short slices, in ABBA order (A B, B A, A B, ...) so a drift
during a pair weighs on both sides alike. Each slice pair gives one ratio B ÷ A of requests/s, of p50 latency and
of each thread's CPU per request; the medians of those ratios, with their quartiles, are what to quote.

    python bench/ab.py --scenario tools -c 32 --pairs 12
    python bench/ab.py --a dragoman-noloop --b dragoman --scenario small -c 1 --pairs 12 --slice 2

`--one-process` (two Dragoman variants whose configs differ only in what a reload applies, such as the loop's
`loop: {enabled: false}`): one gateway process serves both sides, its config file rewritten and reloaded (SIGHUP)
before each slice. The two sides then share one heap, one audit store and one placement in memory, which moves a
reading between two processes by several µs a request (bench/RESULTS.md, "The next turn, lighter"); what a
feature keeps in memory while it is switched off is not measured.

    python bench/ab.py --one-process --scenario tools -c 32 --pairs 16

`--rounds N` starts fresh processes N times (A first, then B first in every other round) and pools the pairs of
all rounds. Two processes of the same code read apart by a few points for as long as they live (each has its own
hash seed, heap and placement in memory, and the one started second read faster in some runs): one pair of
processes is one draw of that, and only several rounds average it out. `--a-tree` / `--b-tree` run a side from
another checkout (a change against main: `--a dragoman --b dragoman --b-tree ../wt/change`).

    python bench/ab.py --scenario tools -c 32 --rounds 4 --pairs 4

After each slice the runner waits `--settle` seconds before the next one, so the audit writer of the gateway just
loaded (it writes every 0.5 s) has written what the slice left queued before the other gateway is measured: a
writer's tail never runs during the other's slice. The thread CPU of a slice is read after its settle, so it
counts that tail. Thread CPU is read from /proc (Linux): for Dragoman the event loop is its first thread, the
audit writer the second."""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateways  # noqa: E402
from gateways import BENCH, GATEWAYS, Processes, Started, start_upstream  # noqa: E402
from run import GATEWAY_CPUS, LOAD_CPUS  # noqa: E402
from scenarios import SCENARIO_NAMES, build_scenarios  # noqa: E402
from thread_cpu import load, thread_cpu  # noqa: E402


def slice_of(gw: Started, body: Path, concurrency: int, seconds: float, settle: float) -> dict:
    """Requests/s, p50 and each thread's CPU µs per request (in thread order) of one slice."""
    before = thread_cpu(gw.proc.pid)
    report = load(gw, body, concurrency, seconds)
    time.sleep(settle)  # the writer's tail (module docstring); not a wait on another thread's state
    after = thread_cpu(gw.proc.pid)
    n = report["requests"]
    threads = sorted(after, key=lambda name: int(name.rsplit(":", 1)[1]))
    cpu = [(after[t] - before.get(t, 0.0)) * 1e6 / n for t in threads]
    return {"rps": report["rps"], "p50_ms": report["p50_ms"], "cpu": [c for c in cpu if c > 0.05][:2]}


def reloaded(gw: Started, config: Path, text: str, limit: float = 30.0) -> None:
    """Swap `text` in as the gateway's config file and reload it (SIGHUP); returns once its log says it reloaded."""
    before = gw.log.read_text(errors="replace").count(RELOADED)
    temporary = config.with_suffix(".next")
    temporary.write_text(text)
    os.replace(temporary, config)
    os.kill(gw.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + limit
    while gw.log.read_text(errors="replace").count(RELOADED) <= before:  # the reload's own log line
        if time.monotonic() > deadline or gw.proc.poll() is not None:
            raise RuntimeError(f"{gw.name} did not reload its config (see {gw.log})")
        time.sleep(0.05)


RELOADED = "config reloaded from"  # dragoman/config/reload.py's log line


def _unreloaded(config: str) -> list[str]:
    """A config's lines but its `loop:` section (one line in the bench's configs): what must match for --one-process."""
    return [line for line in config.splitlines() if not line.startswith("loop:")]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 4:
        return min(values), statistics.median(values), max(values)
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3


def summary(a: str, b: str, slices: list[tuple[dict, dict]]) -> list[str]:
    """Lines: each gateway's medians, then the medians (and quartiles) of the per-pair ratios and differences."""
    out = []
    for name, side in ((a, 0), (b, 1)):
        rows = [pair[side] for pair in slices]
        loop = statistics.median(r["cpu"][0] for r in rows)
        writer = statistics.median(r["cpu"][1] if len(r["cpu"]) > 1 else 0.0 for r in rows)
        out.append(f"  {name:18s} {statistics.median(r['rps'] for r in rows):8.0f} req/s  p50 "
                   f"{statistics.median(r['p50_ms'] for r in rows):7.3f} ms  CPU µs/request: first thread "
                   f"{loop:6.1f}, second {writer:6.1f}")
    ratios = {
        "req/s": [y["rps"] / x["rps"] for x, y in slices],
        "p50": [y["p50_ms"] / x["p50_ms"] for x, y in slices],
    }
    for label, values in ratios.items():
        q1, q2, q3 = quartiles(values)
        out.append(f"  {b} ÷ {a} {label:6s} median {q2:.3f}  (quartiles {q1:.3f}-{q3:.3f}, {len(values)} pairs)")
    cpu = [sum(y["cpu"]) - sum(x["cpu"]) for x, y in slices]
    q1, q2, q3 = quartiles(cpu)
    out.append(f"  {b} − {a} CPU µs/request (both threads) median {q2:+.1f}  (quartiles {q1:+.1f} to {q3:+.1f})")
    return out


def start_sides(procs: Processes, workdir: Path, args: argparse.Namespace, upstream_port: int,
                order: tuple[int, ...]) -> tuple[list[Started], Callable[[int], None] | None]:
    """Side A's and side B's gateways, started in `order` (each from its tree, in its own cwd: its own
    ./dragoman.db), and, with --one-process, the switch that swaps a side's config into the one gateway."""
    names, trees = (args.a, args.b), (args.a_tree, args.b_tree)
    if args.one_process:
        folder = workdir / "b"
        folder.mkdir()
        gw_b = start_from(procs, folder, args.b, trees[1], upstream_port)
        (workdir / "a").mkdir()
        config = folder / f"{args.b}.yaml"
        texts = (GATEWAYS[args.a].write_config(workdir / "a", upstream_port).read_text(), config.read_text())
        if _unreloaded(texts[0]) != _unreloaded(texts[1]):
            raise SystemExit(f"--one-process: {args.a} and {args.b} differ in more than `loop:` (a reload applies "
                             "only that here: audit, tracing and governance need a restart)")
        gw_a = Started(args.a, gw_b.proc, gw_b.port, gw_b.cold_start_s, gw_b.log, gw_b.headers)

        def swap_in(side: int) -> None:
            reloaded(gw_b, config, texts[side])
            time.sleep(args.settle)  # the other side's writer tail, as after a slice

        return [gw_a, gw_b], swap_in
    started: dict[int, Started] = {}
    for side in order:
        folder = workdir / "ab"[side]
        folder.mkdir()
        started[side] = start_from(procs, folder, names[side], trees[side], upstream_port)
    return [started[0], started[1]], None


def start_from(procs: Processes, folder: Path, name: str, tree: Path, upstream_port: int) -> Started:
    """`name`'s gateway, running the dragoman package of checkout `tree` (gateways.REPO is its PYTHONPATH)."""
    gateways.REPO = tree
    try:
        return GATEWAYS[name].start(procs, folder, upstream_port, GATEWAY_CPUS, folder.name)
    finally:
        gateways.REPO = BENCH.parent


def run_round(gws: list[Started], switch: Callable[[int], None] | None, body: Path, args: argparse.Namespace,
              label: str) -> list[tuple[dict, dict]]:
    """Warm both sides, then `args.pairs` slice pairs in ABBA order; each pair as (A's slice, B's slice)."""
    for side, gw in enumerate(gws):
        if switch is not None:
            switch(side)
        load(gw, body, args.concurrency, 1.0)  # warm-up, not measured
    time.sleep(args.settle)
    slices = []
    for i in range(args.pairs):
        order = ((0, gws[0]), (1, gws[1])) if i % 2 == 0 else ((1, gws[1]), (0, gws[0]))  # ABBA
        got = {}
        for side, gw in order:
            if switch is not None:
                switch(side)
            got[side] = slice_of(gw, body, args.concurrency, args.slice, args.settle)
        slices.append((got[0], got[1]))
        print(f"{label}pair {i + 1}: " + "  ".join(f"{gw.name} {got[side]['rps']:.0f} req/s "
                                                   f"{sum(got[side]['cpu']):.1f} µs" for side, gw in order),
              flush=True)
    return slices


def main() -> None:
    ap = argparse.ArgumentParser(description="two gateways, interleaved slices, paired ratios")
    ap.add_argument("--a", default="dragoman-noloop", choices=sorted(GATEWAYS), help="the baseline")
    ap.add_argument("--b", default="dragoman", choices=sorted(GATEWAYS), help="the one compared with it")
    ap.add_argument("--a-tree", type=Path, default=BENCH.parent,
                    help="the checkout whose dragoman package side A runs (default: this one)")
    ap.add_argument("--b-tree", type=Path, default=BENCH.parent, help="the same for side B")
    ap.add_argument("--scenario", default="tools", choices=list(SCENARIO_NAMES))
    ap.add_argument("-c", "--concurrency", type=int, default=32)
    ap.add_argument("--pairs", type=int, default=12, help="slice pairs a round (each gateway gets this many slices)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="fresh gateway processes for each round, started B first in every other one (module "
                         "docstring); the pairs of every round are pooled")
    ap.add_argument("--slice", type=float, default=2.0, help="seconds of load per slice")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds after each slice (module docstring)")
    ap.add_argument("--one-process", action="store_true",
                    help="one gateway, --a's and --b's configs swapped in by reload before each slice")
    args = ap.parse_args()
    args.a_tree, args.b_tree = args.a_tree.resolve(), args.b_tree.resolve()
    if args.one_process and args.a_tree != args.b_tree:
        raise SystemExit("--one-process runs one gateway: one tree")
    os.sched_setaffinity(0, {int(LOAD_CPUS)})  # the runner and its loadgens beside the upstream, as in run.py
    workdir = BENCH / "results" / f"ab-{datetime.now():%Y%m%d-%H%M%S}"
    scenario = next(s for s in build_scenarios() if s.name == args.scenario)
    slices: list[tuple[dict, dict]] = []
    by_round: list[float] = []
    procs = Processes()
    try:
        workdir.mkdir(parents=True)
        upstream = start_upstream(procs, workdir, LOAD_CPUS)
        body = workdir / "body.json"
        body.write_bytes(scenario.anthropic)
        for r in range(args.rounds):
            folder = workdir / f"round{r + 1}"
            folder.mkdir()
            order = (0, 1) if r % 2 == 0 else (1, 0)
            gws, switch = start_sides(procs, folder, args, upstream.port, order)
            try:
                got = run_round(gws, switch, body, args, f"round {r + 1} " if args.rounds > 1 else "")
            finally:
                for gw in {id(g.proc): g for g in gws}.values():
                    procs.stop(gw.proc)
                for path in folder.glob("*/dragoman.db*"):
                    path.unlink()
            slices += got
            by_round.append(statistics.median(y["rps"] / x["rps"] for x, y in got))
    finally:
        procs.stop_all()
    a, b = _side_name(args.a, args.a_tree, args), _side_name(args.b, args.b_tree, args)
    lines = [f"{args.scenario} c={args.concurrency}, {args.rounds} round(s) of {args.pairs} pairs of {args.slice:g} s "
             "slices (ABBA):", *summary(a, b, slices)]
    if args.rounds > 1:
        lines.append(f"  {b} ÷ {a} req/s by round (median of its pairs): "
                     + ", ".join(f"{ratio:.3f}" for ratio in by_round))
    print("\n".join(lines))
    (workdir / "ab.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                 "slices": slices, "by_round": by_round, "summary": lines},
                                                indent=1))


def _side_name(name: str, tree: Path, args: argparse.Namespace) -> str:
    return name if args.a_tree == args.b_tree else f"{name}@{tree.name}"


if __name__ == "__main__":
    main()
