"""Turn a run's cells into medians over repeats and a markdown report.

python bench/report.py bench/results/latest.json     # re-render a saved run
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

SCENARIO_TITLES = {
    "small": "~2 KB Anthropic request, JSON answer",
    "cc78k": "78 KB Claude Code first turn (claude_code_2.1.197_first_turn.json, stream false), JSON answer",
    "stream": "~2 KB Anthropic request, streamed answer (upstream: 60 content chunks + finish + usage + [DONE])",
    "responses": "the stream request to a route with `upstream: {api: responses}`; upstream: OpenAI Responses SSE "
    "(created, in_progress, output_item.added, content_part.added, 60 output_text.delta, output_text.done, "
    "content_part.done, output_item.done, completed with usage)",
    "tools": "52 KB Claude Code turn after six parallel Reads (claude_code_2.1.332_after_parallel_reads.json, 12 "
    "tools, last turn 6 tool_results), answered by the same 6 Read tool calls (JSON, finish tool_calls)",
    "tools-stream": "the tools request streamed; upstream: one chunk per tool call + finish + usage + [DONE]",
}
STREAMED = ("stream", "responses", "tools-stream")
ALL_TARGETS = (
    "direct", "forwarder", "dragoman", "dragoman-noaudit", "dragoman-noloop", "dragoman-policy", "dragoman-gov",
    "dragoman-gov-redis", "litellm",
)

# Dragoman's targets (one worker): (label, scenario, concurrency, summary field, comparison, limit)
TARGETS = (
    ("p50 overhead, 2 KB, c=1", "small", 1, "overhead_ms", "<=", 0.5),
    ("p50 overhead, 78 KB, c=1", "cc78k", 1, "overhead_ms", "<=", 2.0),
    ("non-streamed req/s, 2 KB, c=32", "small", 32, "rps_per_core", ">=", 2500),
    ("non-streamed req/s, 78 KB, c=32 (no target; for reference)", "cc78k", 32, "rps_per_core", None, None),
    ("gateway CPU per streamed 60-chunk answer (c=1)", "stream", 1, "cpu_ms_per_req", "<=", 1.5),
    ("gateway CPU per streamed 60-chunk answer (c=32)", "stream", 32, "cpu_ms_per_req", "<=", 1.5),
    ("first byte after the upstream's (TTFB overhead), c=1", "stream", 1, "ttfb_overhead_ms", "<=", 1.0),
    ("Responses upstream: gateway CPU per streamed 60-delta answer (c=1)", "responses", 1, "cpu_ms_per_req", "<=", 1.5),
    ("Responses upstream: gateway CPU per streamed 60-delta answer (c=32)", "responses", 32, "cpu_ms_per_req", "<=", 1.5),
    ("Responses upstream: TTFB overhead, c=1", "responses", 1, "ttfb_overhead_ms", "<=", 1.0),
)
AUDIT_MIN_RATIO = 0.90  # issue 5: with auditing on (SQLite), throughput within 10 % of auditing off
POLICY_MAX_US = 50.0  # issue 4: policy evaluation and route choice add <= 50 us p50 (Claude Code fixture)

GATEWAY_CORES = 1  # each gateway is pinned to one core


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results: dict) -> dict:
    """Medians over repeats for each (target, scenario, concurrency), overheads against direct of the same repeat."""
    ok = [c for c in results["cells"] if "failed" not in c]
    direct = {(c["repeat"], c["scenario"], c["concurrency"]): c for c in ok if c["target"] == "direct"}
    groups: dict[tuple, list[dict]] = {}
    for c in results["cells"]:
        groups.setdefault((c["target"], c["scenario"], c["concurrency"]), []).append(c)
    cells = []
    for (target, scenario, conc), runs in groups.items():
        good = [r for r in runs if "failed" not in r]
        base = [direct.get((r["repeat"], scenario, conc)) for r in good]
        row = {
            "target": target,
            "scenario": scenario,
            "concurrency": conc,
            "repeats": len(good),
            "failed": [r["failed"] for r in runs if "failed" in r],
            "requests": sum(r["requests"] for r in good),
            "errors": sum(r["errors"] + r.get("tail_bad", 0) for r in good),
        }
        for field in ("p50_ms", "p95_ms", "p99_ms", "ttfb_p50_ms", "rps", "server_cpu_ms_per_req"):
            row[field] = _median([r[field] for r in good])
        row["rps_per_core"] = (
            row["rps"] / GATEWAY_CORES if row["rps"] is not None and target != "direct" else row["rps"]
        )
        row["cpu_ms_per_req"] = row.pop("server_cpu_ms_per_req")  # for direct: the fake upstream's CPU
        row["other_load_on_gateway_core"] = _median([r.get("server_core_foreign_share") for r in good])
        row["rss_peak_mb"] = max((r["server_rss_mb"] for r in good if r.get("server_rss_mb")), default=None)
        row["overhead_ms"] = _median([r["p50_ms"] - b["p50_ms"] for r, b in zip(good, base) if b])
        row["ttfb_overhead_ms"] = _median([r["ttfb_p50_ms"] - b["ttfb_p50_ms"] for r, b in zip(good, base) if b])
        cells.append(row)
    starts: dict[str, dict] = {}
    for s in results["starts"]:
        entry = starts.setdefault(
            s["target"], {"cold_start_s": [], "ready_rss_mb": [], "idle_rss_mb": [], "failed": [], "log_errors": 0}
        )
        entry["log_errors"] += s.get("log_error_lines", 0)
        if "failed" in s:
            entry["failed"].append(s["failed"][-300:])
        else:
            for key in ("cold_start_s", "ready_rss_mb", "idle_rss_mb"):
                entry[key].append(s.get(key))
    gateways = {
        name: {
            "cold_start_s": _median(e["cold_start_s"]),
            "ready_rss_mb": _median(e["ready_rss_mb"]),
            "idle_rss_mb": _median(e["idle_rss_mb"]),
            "starts": len(e["cold_start_s"]),
            "log_error_lines": e["log_errors"],
            "failed_starts": e["failed"],
        }
        for name, e in starts.items()
    }
    return {"cells": cells, "gateways": gateways, "_raw": results["cells"]}


def _f(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}{unit}"
    return f"{value:.{digits}f}{unit}"


def _scenario_table(
    summary: dict, scenario: str, concurrencies: list[int], targets: list[str], not_run: dict | None = None
) -> list[str]:
    rows = {(c["target"], c["concurrency"]): c for c in summary["cells"] if c["scenario"] == scenario}
    stream = scenario in STREAMED
    top = max(concurrencies)
    head = ["gateway"]
    for c in concurrencies:
        head += [f"p50 c={c} (ms)", f"p95 c={c} (ms)", f"overhead c={c} (ms)"]
    head += [f"req/s c={top} per gateway core"] + [f"CPU/req c={c} (ms)" for c in concurrencies]
    if stream:
        head += ["TTFB p50 c=1 (ms)", "TTFB overhead c=1 (ms)"]
    head += ["peak RSS (MB)", "other load on gateway core", "requests / errors"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for target in targets:
        cells = [rows.get((target, c)) for c in concurrencies]
        if not any(cells):
            if scenario in (not_run or {}).get(target, ()):
                lines.append(f"| {target} | not run: no equivalent |" + " |" * (len(head) - 2))
            continue
        failed = next((c["failed"][0] for c in cells if c and c["failed"] and not c["repeats"]), None)
        if failed:
            lines.append(f"| {target} | failed: {failed[:150]} |" + " |" * (len(head) - 2))
            continue
        line = [target]
        for c in cells:
            line += [
                _f(c and c["p50_ms"], 3),
                _f(c and c["p95_ms"], 3),
                "(floor)" if target == "direct" else _f(c and c["overhead_ms"], 3),
            ]
        top_cell = rows.get((target, top))
        line.append(_f(top_cell and top_cell["rps_per_core"], 0) + (" (upstream)" if target == "direct" else ""))
        for c in cells:
            line.append(_f(c and c["cpu_ms_per_req"], 3) + (" (upstream)" if target == "direct" else ""))
        if stream:
            c1 = rows.get((target, 1))
            line += [
                _f(c1 and c1["ttfb_p50_ms"], 3),
                "(floor)" if target == "direct" else _f(c1 and c1["ttfb_overhead_ms"], 3),
            ]
        line.append("—" if target == "direct" else _f(max((c["rss_peak_mb"] or 0) for c in cells if c), 0))
        shares = [c["other_load_on_gateway_core"] for c in cells if c and c["other_load_on_gateway_core"] is not None]
        line.append(f"{max(shares):.0%}" if shares else "—")
        line.append(f"{sum(c['requests'] for c in cells if c):,} / {sum(c['errors'] for c in cells if c)}")
        lines.append("| " + " | ".join(line) + " |")
    return lines


def _targets_table(summary: dict) -> list[str]:
    rows = {(c["target"], c["scenario"], c["concurrency"]): c for c in summary["cells"]}
    lines = ["| Dragoman target (one worker) | goal | measured | met |", "|---|---|---|---|"]
    for label, scenario, conc, field, op, limit in TARGETS:
        cell = rows.get(("dragoman", scenario, conc))
        value = cell.get(field) if cell else None
        goal = "—" if op is None else f"{op} {limit:g}"
        met = (
            "—"
            if value is None or op is None
            else ("yes" if (value <= limit if op == "<=" else value >= limit) else "**no**")
        )
        lines.append(f"| {label} | {goal} | {_f(value, 3)} | {met} |")
    audit = _audit_rows(results_cells(summary))
    for scenario, conc, on, off, ratio in audit:
        if conc != 32:
            continue
        met = "—" if ratio is None else ("yes" if ratio >= AUDIT_MIN_RATIO else "**no**")
        lines.append(
            f"| audit on ÷ off, req/s, {scenario} c={conc} (issue 5) | >= {AUDIT_MIN_RATIO:g} | {_f(ratio, 3)} | {met} |"
        )
    for scenario, conc, delta_p50, delta_cpu in _policy_rows(results_cells(summary)):
        if scenario != "cc78k" or conc != 1:
            continue
        us = None if delta_p50 is None else delta_p50 * 1000
        met = "—" if us is None else ("yes" if us <= POLICY_MAX_US else "**no** (see noise note)")
        lines.append(
            f"| policy adds to p50, 78 KB, c=1, end to end (issue 4; µs) | <= {POLICY_MAX_US:g} | {_f(us, 1)} | {met} |"
        )
    return lines


def results_cells(summary: dict) -> list[dict]:
    """The raw per-repeat cells summarize() was given (kept on the summary for paired comparisons)."""
    return summary.get("_raw", [])


def _paired(raw: list[dict], a: str, b: str, scenario: str, conc: int, fn) -> float | None:  # noqa: ANN001
    """median over repeats of fn(cell of a, cell of b), both from the same repeat."""
    ok = {(c["target"], c["repeat"]): c for c in raw if "failed" not in c and c["scenario"] == scenario
          and c["concurrency"] == conc and c.get("requests")}  # fmt: skip
    values = []
    for (target, repeat), cell in ok.items():
        other = ok.get((b, repeat))
        if target == a and other is not None:
            v = fn(cell, other)
            if v is not None:
                values.append(v)
    return _median(values)


def _audit_rows(raw: list[dict], off_target: str = "dragoman-noaudit", on_target: str = "dragoman") -> list[tuple]:
    """(scenario, c, req/s on, req/s off, median per-repeat ratio on/off): `on_target` against `off_target`
    (dragoman against audit off or the correctness loop off; governance on against dragoman)."""
    out = []
    keys = sorted({(c["scenario"], c["concurrency"]) for c in raw if c["target"] in (off_target, on_target)})
    for scenario, conc in keys:
        on = _median([c["rps"] for c in raw if c["target"] == on_target and c["scenario"] == scenario
                      and c["concurrency"] == conc and "failed" not in c])  # fmt: skip
        off = _median([c["rps"] for c in raw if c["target"] == off_target and c["scenario"] == scenario
                       and c["concurrency"] == conc and "failed" not in c])  # fmt: skip
        if on is None or off is None:
            continue
        ratio = _paired(raw, on_target, off_target, scenario, conc, lambda x, y: x["rps"] / y["rps"])
        out.append((scenario, conc, on, off, ratio))
    return out


def _cpu_delta(x: dict, y: dict) -> float | None:
    a, b = x.get("server_cpu_ms_per_req"), y.get("server_cpu_ms_per_req")
    return None if a is None or b is None else a - b


def _policy_rows(raw: list[dict]) -> list[tuple]:
    """(scenario, c, p50 policy − plain (ms), CPU/req policy − plain (ms)), paired per repeat, medians."""
    out = []
    keys = sorted({(c["scenario"], c["concurrency"]) for c in raw if c["target"] == "dragoman-policy"})
    for scenario, conc in keys:
        p50 = _paired(raw, "dragoman-policy", "dragoman", scenario, conc, lambda x, y: x["p50_ms"] - y["p50_ms"])
        cpu = _paired(raw, "dragoman-policy", "dragoman", scenario, conc, _cpu_delta)
        out.append((scenario, conc, p50, cpu))
    return out


def _audit_table(
    summary: dict, off_target: str = "dragoman-noaudit", what: str = "audit", on_target: str = "dragoman"
) -> list[str]:
    rows = _audit_rows(results_cells(summary), off_target, on_target)
    if not rows:
        return []
    lines = [
        f"| scenario | c | req/s {what} on ({on_target}) | req/s {what} off ({off_target}) | on ÷ off (median of "
        "per-repeat ratios) | CPU/req on − off (ms) | p50 on − off (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    raw = results_cells(summary)
    for scenario, conc, on, off, ratio in rows:
        cpu = _paired(raw, on_target, off_target, scenario, conc, _cpu_delta)
        p50 = _paired(raw, on_target, off_target, scenario, conc, lambda x, y: x["p50_ms"] - y["p50_ms"])
        lines.append(
            f"| {scenario} | {conc} | {_f(on, 0)} | {_f(off, 0)} | {_f(ratio, 3)} | {_f(cpu, 3)} | {_f(p50, 3)} |"
        )
    return lines


def _policy_table(summary: dict) -> list[str]:
    rows = _policy_rows(results_cells(summary))
    if not rows:
        return []
    cells = {(c["target"], c["scenario"], c["concurrency"]): c for c in summary["cells"]}
    lines = [
        "| scenario | c | p50 dragoman-policy (ms) | p50 dragoman (ms) | p50 policy − plain (µs, median of per-repeat "
        "differences) | CPU/req policy − plain (µs) | req/s policy ÷ plain |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario, conc, p50, cpu in rows:
        pol, plain = cells.get(("dragoman-policy", scenario, conc)), cells.get(("dragoman", scenario, conc))
        if not pol or not plain:
            continue
        ratio = pol["rps"] / plain["rps"] if pol["rps"] and plain["rps"] else None
        lines.append(
            f"| {scenario} | {conc} | {_f(pol['p50_ms'], 3)} | {_f(plain['p50_ms'], 3)} | "
            f"{_f(None if p50 is None else p50 * 1000, 1)} | {_f(None if cpu is None else cpu * 1000, 1)} | "
            f"{_f(ratio, 3)} |"
        )
    return lines


def _x(value: float | None) -> str:
    return "—" if value is None else (f"{value:,.0f}×" if value >= 100 else f"{value:.1f}×" if value >= 10 else f"{value:.2f}×")


def _headline(summary: dict, scenarios: list[str], concurrencies: list[int]) -> list[str]:
    """Dragoman (defaults) against direct and LiteLLM of the same run: ratios of the medians."""
    cells = {(c["target"], c["scenario"], c["concurrency"]): c for c in summary["cells"] if c["repeats"]}
    lines = [
        "| scenario | c | Dragoman p50 (ms) | p50 ÷ direct's | LiteLLM's p50 ÷ Dragoman's | Dragoman req/s | "
        "req/s ÷ direct's | req/s ÷ LiteLLM's | Dragoman CPU/req (ms) | LiteLLM's CPU/req ÷ Dragoman's |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    div = lambda a, b: a / b if a is not None and b else None  # noqa: E731
    for scenario in scenarios:
        for conc in concurrencies:
            d = cells.get(("dragoman", scenario, conc))
            if not d:
                continue
            base = cells.get(("direct", scenario, conc)) or {}
            lite = cells.get(("litellm", scenario, conc)) or {}
            lines.append(
                f"| {scenario} | {conc} | {_f(d['p50_ms'], 3)} | {_x(div(d['p50_ms'], base.get('p50_ms')))} | "
                f"{_x(div(lite.get('p50_ms'), d['p50_ms']))} | {_f(d['rps'], 0)} | "
                f"{_x(div(d['rps'], base.get('rps')))} | {_x(div(d['rps'], lite.get('rps')))} | "
                f"{_f(d['cpu_ms_per_req'], 3)} | {_x(div(lite.get('cpu_ms_per_req'), d['cpu_ms_per_req']))} |"
            )
    return lines


def _versus_forwarder(summary: dict) -> list[str]:
    """What Dragoman costs beyond the bare forwarder of the same run: translation, routing, the rest."""
    rows = {(c["target"], c["scenario"], c["concurrency"]): c for c in summary["cells"]}
    lines = [
        "| scenario | c | p50 Dragoman − forwarder (ms) | CPU/req Dragoman − forwarder (ms) "
        "| req/s Dragoman / forwarder |",
        "|---|---|---|---|---|",
    ]
    for (target, scenario, conc), d in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        f = rows.get(("forwarder", scenario, conc))
        if target != "dragoman" or not f or d["p50_ms"] is None or f["p50_ms"] is None:
            continue
        cpu = (d["cpu_ms_per_req"] - f["cpu_ms_per_req"]) if d["cpu_ms_per_req"] and f["cpu_ms_per_req"] else None
        ratio = d["rps"] / f["rps"] if d["rps"] and f["rps"] else None
        lines.append(f"| {scenario} | {conc} | {_f(d['p50_ms'] - f['p50_ms'], 3)} | {_f(cpu, 3)} | {_f(ratio, 2)} |")
    return lines if len(lines) > 2 else []


def _policy_routes(results: dict) -> str:
    total: dict[str, int] = {}
    for s in results["starts"]:
        if s["target"] == "dragoman-policy":
            for key, n in (s.get("audit_routes") or {}).items():
                total[key] = total.get(key, 0) + n
    return "; ".join(f"`{k}`: {n:,}" for k, n in sorted(total.items(), key=lambda kv: -kv[1]))


def render(results: dict) -> str:
    summary = summarize(results)  # recomputed, so an older saved run renders with the current columns
    meta = results["meta"]
    targets = [t for t in ALL_TARGETS if any(c["target"] == t for c in summary["cells"])]
    not_run = meta.get("not_run") or {}
    made_by = sorted(set((meta.get("direct_body_made_by") or {}).values())) or ["?"]
    out = [
        f"`{meta['command']}` — {meta['started']}, Python {meta['python']}, {meta['cpus']} CPUs, "
        f"pinning {meta['pinning']}, LiteLLM {meta['litellm']}, {meta['repeats']} repeat(s) × "
        f"{meta['duration_s']:g} s cells; medians over repeats; direct bodies made by {', '.join(made_by)}; "
        f"git HEAD {meta.get('git_head')}, dragoman source {meta.get('dragoman_source_at_start')}.",
        "",
    ]
    if any(c["target"] == "dragoman" for c in summary["cells"]):
        out += [
            "### Headline: Dragoman (defaults, audit on) against direct and LiteLLM, same run (ratios of the medians)",
            "",
        ]
        out += _headline(summary, meta["scenarios"], meta["concurrency"]) + [""]
    for scenario in meta["scenarios"]:
        out += [f"### {scenario}: {SCENARIO_TITLES.get(scenario, '')}", ""]
        out += _scenario_table(summary, scenario, meta["concurrency"], targets, not_run) + [""]
    if summary["gateways"]:
        out += [
            "### Start-up and memory",
            "",
            "| gateway | cold start (s, median) | RSS when ready (MB) | idle RSS, settled (MB) | starts ok | "
            "error lines in its log |",
            "|---|---|---|---|---|---|",
        ]
        for name, g in summary["gateways"].items():
            out.append(
                f"| {name} | {_f(g['cold_start_s'], 2)} | {_f(g['ready_rss_mb'], 0)} | "
                f"{_f(g['idle_rss_mb'], 0)} | {g['starts']}/{g['starts'] + len(g['failed_starts'])} | "
                f"{g.get('log_error_lines', '—')} |"
            )
        out.append("")
    if any(c["target"] == "dragoman" for c in summary["cells"]):
        out += ["### Dragoman against its targets", ""] + _targets_table(summary) + [""]
        audit = _audit_table(summary)
        if audit:
            out += ["### Audit on (SQLite, the default) vs off (`audit: {enabled: false}`), same run", ""]
            out += audit + [""]
        loop = _audit_table(summary, "dragoman-noloop", "loop")
        if loop:
            out += ["### Correctness loop on (the default) vs off (`loop: {enabled: false}`), audit on, same run", ""]
            out += loop + [""]
        for on_target, backend in (("dragoman-gov", "memory"), ("dragoman-gov-redis", "Redis")):
            gov = _audit_table(summary, "dragoman", "governance", on_target)
            if gov:
                out += [f"### Virtual key + budgets + limits ({backend}) on vs off (dragoman), same run", ""]
                out += gov + [""]
        policy = _policy_table(summary)
        if policy:
            out += [
                "### The seed's cost-aware policy, end to end (dragoman-policy − dragoman, same repeat; both audit on)",
                "",
            ]
            out += policy + [""]
            routed = _policy_routes(results)
            if routed:
                out += ["Routes the policy chose (from dragoman-policy's audit store, all repeats): " + routed, ""]
        versus = _versus_forwarder(summary)
        if versus:
            out += (
                ["### Dragoman beyond the bare forwarder (same run; forwarder: uvicorn + aiohttp, no translation)", ""]
                + versus
                + [""]
            )
    sources = {s.get("source") for s in results["starts"] if s["target"].startswith("dragoman") and s.get("source")}
    sources |= {meta.get("dragoman_source_at_start"), meta.get("dragoman_source_at_end")} - {None}
    if len(sources) > 1:
        out += [
            f"**Dragoman's source changed during this run** ({len(sources)} versions of dragoman/*.py seen: "
            f"{', '.join(sorted(sources))}): the repeats measured different code.",
            "",
        ]
    if results.get("skipped"):
        out += [f"Skipped: {name}: {why}" for name, why in results["skipped"].items()]
    return "\n".join(out)


if __name__ == "__main__":
    data = json.loads(
        Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "latest.json").read_text()
    )
    print(render(data))
