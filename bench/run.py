"""Run the benchmark matrix in one go: direct-to-upstream (the floor), a bare uvicorn + aiohttp forwarder,
Dragoman (defaults: SQLite audit on), Dragoman with audit off, Dragoman with the seed's cost-aware policy, and
LiteLLM's proxy, each scenario at each concurrency, several repeats; print a markdown table, write JSON to
bench/results/.

Pinning (2 cores): this runner, the fake upstream and the load generator on core 0; the gateway alone on
core 1. Each repeat starts each gateway afresh (that start is its cold start) and runs all its cells against
the one upstream; overheads compare a gateway with the direct cells of the same repeat.

    python bench/run.py                       # everything, 3 repeats x 3 s cells
    python bench/run.py --only dragoman,direct --quick
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateways import BENCH, GATEWAYS, Processes, Started, start_redis, start_upstream  # noqa: E402
from loadgen import core_busy_seconds, process_tree, tree_rss_bytes  # noqa: E402
from report import render, summarize  # noqa: E402
from scenarios import SCENARIO_NAMES, Scenario, build_scenarios  # noqa: E402
from validate import validate  # noqa: E402

TARGETS = (
    "direct", "forwarder", "dragoman", "dragoman-noaudit", "dragoman-noloop", "dragoman-policy", "dragoman-gov",
    "dragoman-gov-redis", "litellm",
)
GATEWAY_CPUS, LOAD_CPUS = "1", "0"
SETTLE_S = 3.0  # idle time after a gateway is ready, before its idle RSS is read and the load starts


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Dragoman benchmark: direct vs Dragoman vs LiteLLM")
    ap.add_argument("--only", default=",".join(TARGETS), help=f"comma list of {', '.join(TARGETS)}")
    ap.add_argument(
        "--scenarios", default=",".join(SCENARIO_NAMES), help=f"comma list of {', '.join(SCENARIO_NAMES)}"
    )
    ap.add_argument("--concurrency", default="1,32", help="comma list of connection counts")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds of measured load per cell")
    ap.add_argument("--warmup", type=float, default=0.5, help="seconds of unrecorded load before each cell")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the whole matrix; tables show medians")
    ap.add_argument("--max-requests", type=int, default=50_000, help="cap on measured requests per cell")
    ap.add_argument("--quick", action="store_true", help="1 repeat, 1 s cells, 0.2 s warm-up")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        help="before each gateway cell, wait up to this many seconds for other processes to leave the gateway's "
        "core below 15%% busy (a shared machine); 0: never wait",
    )
    ap.add_argument("--out", type=Path, default=BENCH / "results", help="where the JSON goes")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.duration, args.warmup = 1, 1.0, 0.2
    args.only = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = set(args.only) - set(TARGETS)
    if unknown:
        ap.error(f"unknown targets {sorted(unknown)}")
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIO_NAMES)
    if unknown:
        ap.error(f"unknown scenarios {sorted(unknown)}")
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    return args


def run_cell(
    args: argparse.Namespace,
    workdir: Path,
    port: int,
    path: str,
    body_file: Path,
    headers: tuple[tuple[str, str], ...],
    concurrency: int,
    server_pid: int,
    server_core: int | None,
    expect_tail: str,
) -> dict:
    """One loadgen run (a child process, so on the runner's core); its JSON summary."""
    cmd = [
        sys.executable,
        str(BENCH / "loadgen.py"),
        "--url",
        f"http://127.0.0.1:{port}{path}",
        "--body",
        str(body_file),
        "-c",
        str(concurrency),
        "-d",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "-n",
        str(args.max_requests),
        "--server-pid",
        str(server_pid),
        "--timeout",
        "60",
    ]
    for k, v in headers:
        cmd += ["-H", f"{k}: {v}"]
    if expect_tail:
        cmd += ["--expect-tail", expect_tail]
    if server_core is not None:
        cmd += ["--server-core", str(server_core)]
    done = subprocess.run(cmd, capture_output=True, timeout=args.duration + args.warmup + 180, cwd=workdir)
    if done.returncode != 0:
        return {"failed": f"loadgen exit {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}"}
    return json.loads(done.stdout)


def upstream_count(upstream_port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=5)
    try:
        conn.request("GET", "/stats")
        return json.loads(conn.getresponse().read())["requests"]
    finally:
        conn.close()


def wait_quiet(core: int, limit: float, threshold: float = 0.15, window: float = 0.5) -> dict:
    """Wait (up to `limit` s) until `core` is busy less than `threshold` over `window` with our gateway idle."""
    waited, busy = 0.0, 0.0
    while True:
        before = core_busy_seconds(core)
        time.sleep(window)
        busy = (core_busy_seconds(core) - before) / window
        if busy < threshold or waited >= limit:
            return {"quiet_wait_s": round(waited, 1), "core_busy_before": round(busy, 2)}
        waited += window


def run_target(
    args: argparse.Namespace,
    workdir: Path,
    scenarios: list[Scenario],
    target: str,
    port: int,
    server_pid: int,
    repeat: int,
    upstream_port: int,
    gateway_headers: tuple[tuple[str, str], ...] = (),
) -> list[dict]:
    cells = []
    server_core = None if args.no_pin or target == "direct" else int(GATEWAY_CPUS)
    chat = target == "direct" or GATEWAYS[target].speaks_chat
    for sc in scenarios:
        if target != "direct" and not GATEWAYS[target].supports(sc.name):
            continue  # no equivalent there (LiteLLM: no Responses route); the report shows "not run"
        body_file = workdir / f"{sc.name}.{sc.api if chat else 'anthropic'}.json"
        path = sc.direct_path if chat else "/v1/messages"
        headers = (("authorization", "Bearer sk-bench-upstream"),) if target == "direct" else gateway_headers
        problem = validate(
            port, path, body_file.read_bytes(), headers, sc.stream, anthropic=not chat, api=sc.api,
            tools=bool(sc.path_prefix),
        )
        for c in args.concurrency:
            cell = {"repeat": repeat, "target": target, "scenario": sc.name, "concurrency": c}
            if problem:
                cell["failed"] = f"validation: {problem}"
            else:
                # the last 256 bytes of every stream: Chat's [DONE], Responses' final usage, Anthropic's stop
                direct_tail = '"total_tokens"' if sc.api == "responses" else "[DONE]"
                tail = (direct_tail if chat else "message_stop") if sc.stream else ""
                if server_core is not None and args.wait_quiet > 0:
                    cell.update(wait_quiet(server_core, args.wait_quiet))
                before = upstream_count(upstream_port)
                cell.update(run_cell(args, workdir, port, path, body_file, headers, c, server_pid, server_core, tail))
                # warm-up requests count too, so the upstream must have seen at least the measured ones
                cell["upstream_requests"] = upstream_count(upstream_port) - before
                if "failed" not in cell and cell["upstream_requests"] < cell["requests"]:
                    cell["failed"] = (
                        f"upstream saw {cell['upstream_requests']} requests for "
                        f"{cell['requests']} answers: not every request was forwarded"
                    )
            print(f"  r{repeat} {target:9} {sc.name:7} c={c:<3} " + _brief(cell), file=sys.stderr, flush=True)
            cells.append(cell)
    return cells


def source_digest() -> str:
    """A short hash of dragoman/**/*.py as it is now: other people edit the gateway while a run goes on."""
    digest = hashlib.sha256()
    for path in sorted((BENCH.parent / "dragoman").rglob("*.py")):
        digest.update(str(path).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def git_head() -> str | None:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCH.parent)
    return done.stdout.strip() or None


def audit_routes(workdir: Path) -> dict:
    """What the audit store says the requests were routed by: {"route policy/branch": count} (dragoman-policy:
    proof that the policy chose the routes). Read after the gateway stopped (it flushes on SIGTERM)."""
    db = workdir / "dragoman.db"
    if not db.exists():
        return {}
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT route, policy, branch, status, count(*) FROM requests GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC"
            ).fetchall()
            # what the correctness loop concluded (proof that the tools scenarios' calls were checked and joined)
            verdicts = conn.execute(
                "SELECT route, coalesce(verdict, '-'), coalesce(next_turn, '-'), count(*), sum(tool_calls) "
                "FROM requests GROUP BY 1, 2, 3 ORDER BY 4 DESC"
            ).fetchall()
    except sqlite3.Error as exc:
        return {"audit_routes_error": str(exc)}
    return {
        "audit_routes": {f"{r} {p or '-'}/{b or '-'} {st}": n for r, p, b, st, n in rows},
        "audit_verdicts": {f"{r} verdict={v} next_turn={t}": [n, calls] for r, v, t, n, calls in verdicts},
    }


def drop_audit_store(workdir: Path) -> dict:
    """Delete the audit DB Dragoman writes (./dragoman.db as the bench configures it, ~600 bytes a request); report its size
    (none for dragoman-noaudit)."""
    size = 0
    for path in workdir.glob("dragoman.db*"):
        size += path.stat().st_size
        path.unlink()
    return {"audit_store_mb": round(size / 2**20, 1)} if size else {}


def log_errors(log: Path) -> dict:
    """Errors a gateway logged while answering (a stream can be relayed whole and still end in a traceback)."""
    lines = log.read_text(errors="replace").splitlines()
    hits = [i for i, line in enumerate(lines) if "Traceback" in line or " ERROR " in line or line.startswith("ERROR")]
    if not hits:
        return {"log_error_lines": 0}
    first = hits[0]
    print(
        f"  {log.name}: {len(hits)} error lines, first:\n    " + "\n    ".join(lines[first : first + 12]),
        file=sys.stderr,
    )
    return {"log_error_lines": len(hits), "log_first_error": "\n".join(lines[first : first + 20])}


def _brief(cell: dict) -> str:
    if "failed" in cell:
        return "FAILED " + cell["failed"][:200]
    if not cell.get("requests"):
        return f"no answers; errors {cell.get('errors')}"
    cpu = cell.get("server_cpu_ms_per_req")
    foreign = cell.get("server_core_foreign_share")
    return (
        f"p50 {cell['p50_ms']:.3f} ms  p95 {cell['p95_ms']:.3f} ms  {cell['rps']:>8.1f} rps  "
        f"cpu/req {cpu} ms  ttfb {cell['ttfb_p50_ms']:.3f} ms  errors {cell['errors']}"
        + (f"  other load on gateway core {foreign:.0%}" if foreign is not None else "")
        + (f"  (waited {cell['quiet_wait_s']:g} s for quiet)" if cell.get("quiet_wait_s") else "")
    )


def run_matrix(args: argparse.Namespace, workdir: Path, procs: Processes, meta: dict) -> dict:
    pin = not args.no_pin
    scenarios = [s for s in build_scenarios() if s.name in args.scenarios]
    meta["direct_body_made_by"] = {s.name: s.chat_by for s in scenarios}
    meta["not_run"] = {
        t: [s.name for s in scenarios if not GATEWAYS[t].supports(s.name)]
        for t in args.only
        if t != "direct" and any(not GATEWAYS[t].supports(s.name) for s in scenarios)
    }
    for sc in scenarios:
        (workdir / f"{sc.name}.anthropic.json").write_bytes(sc.anthropic)
        (workdir / f"{sc.name}.{sc.api}.json").write_bytes(sc.chat)
    upstream = start_upstream(procs, workdir, LOAD_CPUS if pin else None)
    # Redis for dragoman-gov-redis, on the load core: the gateway's core stays the gateway's alone
    redis_url = start_redis(procs, workdir, LOAD_CPUS if pin else None) if "dragoman-gov-redis" in args.only else None
    cells, starts, skipped = [], [], {}
    for target in args.only:
        if target != "direct" and (why := GATEWAYS[target].available()):
            skipped[target] = why
            print(f"skipping {target}: {why}", file=sys.stderr)
    for repeat in range(1, args.repeats + 1):
        for target in (t for t in args.only if t not in skipped):
            if target == "direct":
                cells += run_target(
                    args, workdir, scenarios, target, upstream.port, upstream.proc.pid, repeat, upstream.port
                )
                continue
            try:
                gw: Started = GATEWAYS[target].start(
                    procs, workdir, upstream.port, GATEWAY_CPUS if pin else None, f"r{repeat}", redis_url
                )
            except RuntimeError as exc:
                starts.append({"repeat": repeat, "target": target, "failed": str(exc)[-2000:]})
                print(f"  r{repeat} {target}: failed to start\n{exc}", file=sys.stderr)
                continue
            ready_rss = tree_rss_bytes(process_tree(gw.proc.pid)) / 2**20
            time.sleep(SETTLE_S)  # work a server defers past its health check (Dragoman: tokenizer tables)
            idle_rss = tree_rss_bytes(process_tree(gw.proc.pid)) / 2**20
            starts.append(
                {
                    "repeat": repeat,
                    "target": target,
                    "cold_start_s": round(gw.cold_start_s, 3),
                    "ready_rss_mb": round(ready_rss, 1),
                    "source": source_digest() if target.startswith("dragoman") else None,
                    "idle_rss_mb": round(idle_rss, 1),
                }
            )
            print(
                f"  r{repeat} {target:9} ready in {gw.cold_start_s:.2f} s, RSS {ready_rss:.0f} MB then, "
                f"{idle_rss:.0f} MB {SETTLE_S:g} s later",
                file=sys.stderr,
                flush=True,
            )
            try:
                cells += run_target(
                    args, workdir, scenarios, target, gw.port, gw.proc.pid, repeat, upstream.port, gw.headers
                )
            finally:
                procs.stop(gw.proc)
                starts[-1].update(log_errors(gw.log))
                starts[-1].update(audit_routes(workdir))
                starts[-1].update(drop_audit_store(workdir))
    return {"meta": meta, "skipped": skipped, "starts": starts, "cells": cells}


def _meta(args: argparse.Namespace) -> dict:
    litellm_py = BENCH / ".litellm-venv" / "bin" / "python"
    litellm_version = None
    if litellm_py.exists():
        probe = subprocess.run(
            [str(litellm_py), "-c", "from importlib.metadata import version; print(version('litellm'))"],
            capture_output=True,
            text=True,
        )
        litellm_version = probe.stdout.strip() or None
    return {
        "command": "python bench/run.py " + " ".join(sys.argv[1:]),
        "git_head": git_head(),
        "dragoman_source_at_start": source_digest(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "pinning": None if args.no_pin else {"gateway": GATEWAY_CPUS, "upstream+loadgen+runner": LOAD_CPUS},
        "litellm": litellm_version,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "repeats": args.repeats,
        "concurrency": args.concurrency,
        "scenarios": args.scenarios,
    }


def main() -> None:
    args = parse_args()
    if not args.no_pin:
        if (os.cpu_count() or 1) < 2:
            sys.exit("pinning needs 2 cores; pass --no-pin")
        os.sched_setaffinity(0, {int(LOAD_CPUS)})  # inherited by the upstream and every loadgen
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = args.out / f"run-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    procs = Processes()

    def _terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    started = time.perf_counter()
    try:
        results = run_matrix(args, workdir, procs, _meta(args))
    finally:
        procs.stop_all()
    results["meta"]["wall_s"] = round(time.perf_counter() - started, 1)
    results["meta"]["dragoman_source_at_end"] = source_digest()
    results["summary"] = {k: v for k, v in summarize(results).items() if k != "_raw"}
    out = args.out / f"run-{stamp}.json"
    out.write_text(json.dumps(results, indent=1))
    (args.out / "latest.json").write_text(json.dumps(results, indent=1))
    print(render(results))
    print(f"\nJSON: {out}  (logs and bodies in {workdir})")


if __name__ == "__main__":
    main()
