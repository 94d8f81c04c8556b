"""The dashboard's queries on 1,000,000 audit records, in SQLite and in PostgreSQL: median time of each, and the
plan each uses (EXPLAIN), so "the pages stay fast" is a measured claim.

    python bench/bench_dashboard.py                                  # both stores, 1M records each
    python bench/bench_dashboard.py --records 200000 --stores sqlite
    python bench/bench_dashboard.py --pg postgresql://postgres@127.0.0.1:5432/bench   # else a throwaway cluster

Records spread over the last 30 days (~33,000 a day): 50 developers, 20 repos, 5 teams, 4 routes, 4 models. The
store is seeded in batches straight through its connection (SQLite executemany, PostgreSQL COPY), then every
query the dashboard's pages make runs --repeat times."""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dragoman.observe import stats as stats_sql_module  # noqa: E402
from dragoman.observe import stores  # noqa: E402
from dragoman.observe.record import AuditRecord, Candidate  # noqa: E402
from dragoman.observe.stores import COST_GROUPS, open_store  # noqa: E402

DAY = 86400.0
BATCH = 20_000


def records(n: int, now: float, seed: int = 7) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    routes = ["gpt5", "gpt5-mini", "local", "claude"]
    models = ["gpt-5", "gpt-5-mini", "qwen3-coder", "claude-sonnet-4-5"]
    rows = []
    for i in range(n):
        r = rng.randrange(4)
        failed = rng.random() < 0.03
        rec = AuditRecord(
            time=now - 30 * DAY + 30 * DAY * i / n, request_id=f"req_{i:024x}", key_id=f"key_{rng.randrange(50)}",
            developer=f"dev{rng.randrange(50)}", team=f"team{rng.randrange(5)}", repo=f"repo{rng.randrange(20)}",
            session=f"s{rng.randrange(5000)}", requested_model="claude-sonnet-4-5", policy="default",
            input_estimate=24_000, candidates=[Candidate(route=routes[r], upstream="up", model=models[r], status=200)],
            route=routes[r], upstream_model=models[r], provider="openai", status=502 if failed else 200,
            stream=True, latency_total_ms=2200.0, ttfb_ms=450.0, upstream_ms=2199.0,
            overhead_ms=rng.lognormvariate(-1.0, 0.5), input_tokens=rng.randrange(500, 9000),
            output_tokens=rng.randrange(50, 2000), cache_read_tokens=20_000, cost_usd=None if failed else rng.random() / 50,
            notes=["cache_control dropped"], stream_events=180, verdict="pass", shape="tool_use")
        rows.append(stores.record_values(rec))
    return rows


def seed(store: Any, rows: list[tuple[Any, ...]]) -> float:
    t0 = time.perf_counter()
    if store.dialect == "sqlite":
        conn = store._conn()
        sql = stores.insert_sql("?")
        for start in range(0, len(rows), BATCH):
            conn.execute("BEGIN")
            conn.executemany(sql, rows[start:start + BATCH])
            conn.execute("COMMIT")
    else:
        conn = store._conn()
        with conn.cursor() as cur, cur.copy(f"COPY requests ({', '.join(stores.COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.execute("ANALYZE requests")
    return time.perf_counter() - t0


def queries(store: Any, now: float) -> dict[str, tuple[Callable[[], Any], tuple[str, list[Any]] | None]]:
    """name → (the call the dashboard makes, its SQL for EXPLAIN)."""
    ph = "?" if store.dialect == "sqlite" else "%s"
    pg = store.dialect != "sqlite"
    newest = store.latest_id()
    out: dict[str, tuple[Callable[[], Any], tuple[str, list[Any]] | None]] = {}
    for label, span, bucket in (("24h/1h", DAY, 3600.0), ("7d/6h", 7 * DAY, 21600.0), ("30d/1d", 30 * DAY, DAY)):
        since = now - span - (now - span) % bucket
        out[f"stats {label}"] = (lambda s=since, b=bucket: store.query_stats(s, now, b),
                                 stats_sql_module.stats_sql(ph, pg, since, now, bucket))
    for by in COST_GROUPS:
        for label, span in (("24h", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY)):
            out[f"costs by {by} {label}"] = (lambda b=by, s=now - span: store.query_costs(b, s, None),
                                             stores.costs_sql(ph, by, now - span, None))
    out["requests page (newest 100)"] = (lambda: store.query_requests(None, 100),
                                         stores.requests_sql(ph, None, 100, None, None, None))
    out["requests page developer=dev7"] = (lambda: store.query_requests({"developer": "dev7"}, 100),
                                           stores.requests_sql(ph, {"developer": "dev7"}, 100, None, None, None))
    out["requests page status=5xx"] = (lambda: store.query_requests({"status": "5xx"}, 100),
                                       stores.requests_sql(ph, {"status": "5xx"}, 100, None, None, None))
    rid = f"req_{123_456:024x}"
    out["request detail"] = (lambda: store.query_requests({"request_id": rid}, 1),
                             stores.requests_sql(ph, {"request_id": rid}, 1, None, None, None))
    out["feed start (latest id)"] = (store.latest_id, (stores.LATEST_ID_SQL, []))
    out["feed tail (after id)"] = (lambda: store.query_requests(None, 100, after_id=newest - 20),
                                   stores.requests_sql(ph, None, 100, None, None, newest - 20))
    return out


def plan(store: Any, sql: str, params: list[Any]) -> str:
    conn = store._conn()
    if store.dialect == "sqlite":
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        return "; ".join(row[-1] for row in rows)
    rows = conn.execute("EXPLAIN " + sql, params).fetchall()
    return "; ".join(r[0].strip() for r in rows if "Scan" in r[0] or "Index" in r[0])[:160]


def run(url: str, name: str, rows: list[tuple[Any, ...]], now: float, repeat: int) -> None:
    store = open_store(url)
    try:
        took = seed(store, rows)
        print(f"\n### {name}: {len(rows):,} records seeded in {took:.1f} s\n")
        print("| query | median ms | plan |\n|---|---:|---|")
        for label, (call, sql) in queries(store, now).items():
            call()  # warm the cache once, as a page that was opened before
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                call()
                times.append((time.perf_counter() - t0) * 1000)
            shown = plan(store, *sql) if sql else ""
            print(f"| {label} | {statistics.median(times):.1f} | {shown} |", flush=True)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg", help="a PostgreSQL database to use (emptied first: give a throwaway one)")
    args = parser.parse_args()
    now = time.time()
    t0 = time.perf_counter()
    rows = records(args.records, now)
    print(f"built {len(rows):,} records in {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory(prefix="dragoman-bench-dash-") as tmp:
        if "sqlite" in args.stores:
            run(f"sqlite:///{tmp}/audit.db", "SQLite", rows, now, args.repeat)
        if "postgres" in args.stores:
            url = args.pg
            if url is None:
                from tests.observe_pg import cluster

                url = cluster().new_database()
            run(url, "PostgreSQL", rows, now, args.repeat)


if __name__ == "__main__":
    main()
