"""Audit path micro-benchmarks: what a request pays on the event loop, and how fast the writer drains.

    python bench/bench_audit.py                       # SQLite in a temp dir
    python bench/bench_audit.py --store postgresql://postgres@127.0.0.1:5432/bench

Measures, best of --repeat runs:
- submit(): the only audit call on the event loop (target: a few µs);
- building an AuditRecord the way the server would (also on the event loop);
- the writer thread's per-record preparation (price, redact, metrics) and store throughput (records/s);
- the correctness loop's next-turn update of a record written a moment before (µs per record, drains of 64, as the
  writer sends them: `UPDATE … WHERE request_id IN (…)`).
The store figures are taken with the gateway's request ids (time-ordered) and, on the default SQLite store (a fresh
file for each), with random ones (what it made before): the store's request_id index takes every insert at its
end, or on a random page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dragoman.exchange.lifecycle import new_request_id
from dragoman.observe.metrics import Metrics
from dragoman.observe.pricing import Pricer
from dragoman.observe.record import AuditRecord, Candidate
from dragoman.observe.stores import Followups, SignalUpdate, open_store
from dragoman.observe.writer import AuditWriter


class _NullStore:
    def write(self, records) -> None:
        pass

    def close(self) -> None:
        pass


def make_record(i: int) -> AuditRecord:
    now = time.time()
    return AuditRecord(
        time=now, request_id=f"req_{i:024x}", key_id="key_0123456789ab", developer="alice", team="web", repo="shop",
        session="8b7d1f0e-3c2a-4e5f-9a1b-2c3d4e5f6a7b", requested_model="claude-sonnet-4-5", policy="default",
        input_estimate=24_000, candidates=[Candidate(route="gpt-5-via-gateway", upstream="openai", model="gpt-5",
                                                     status=200, latency_ms=2100.0)],
        route="gpt-5-via-gateway", upstream_model="gpt-5", provider="openai", status=200, stream=True,
        latency_total_ms=2200.0, ttfb_ms=450.0, upstream_ms=2100.0, overhead_ms=1.2, input_tokens=3000,
        output_tokens=800, cache_read_tokens=20_000, reasoning_tokens=256,
        notes=["cache_control dropped", "context_management dropped"], stream_events=180,
    )


def bench_submit(n: int, repeat: int) -> tuple[float, float]:
    """ns per submit() and per AuditRecord build, measured inside a running event loop."""
    records = [make_record(i) for i in range(n)]

    async def run() -> tuple[float, float]:
        best_submit = best_build = float("inf")
        for _ in range(repeat):
            writer = AuditWriter(_NullStore(), queue_size=n + 1, batch=n + 1, flush_interval=60.0)
            t0 = time.perf_counter_ns()
            for record in records:
                writer.submit(record)
            best_submit = min(best_submit, (time.perf_counter_ns() - t0) / n)
            writer.close(5)
            t0 = time.perf_counter_ns()
            for i in range(n):
                make_record(i)
            best_build = min(best_build, (time.perf_counter_ns() - t0) / n)
        return best_submit, best_build

    return asyncio.run(run())


def bench_prepare(n: int) -> float:
    """µs per record of the writer thread's work before the store: price, redact, metrics."""
    metrics, pricer = Metrics(), Pricer()
    records = [make_record(i) for i in range(n)]
    t0 = time.perf_counter()
    for record in records:
        record.cost_usd = pricer.price(record)
        record.redacted()
        metrics.observe_request(record)
    return (time.perf_counter() - t0) / n * 1e6


def _random_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def bench_throughput(url: str, n: int, batch: int, request_id=new_request_id) -> tuple[float, float]:
    """Records per second from first submit to close() returning (everything committed); then µs per next-turn
    update of the last records written (each the turn before of a next one), in drains of 64."""
    store = open_store(url)
    writer = AuditWriter(store, queue_size=n + 1, batch=batch, flush_interval=0.05, sink=Metrics())
    records = [make_record(i) for i in range(n)]
    for record in records:
        record.request_id = request_id()
    t0 = time.perf_counter()
    for record in records:
        writer.submit(record)
    assert writer.close(120), "records were dropped"
    rate = n / (time.perf_counter() - t0)
    ids = [record.request_id for record in records[-6400:]]
    t0 = time.perf_counter()
    for at in range(0, len(ids), 64):
        store.write([], Followups(signals=[SignalUpdate(i, "next_turn", "ok", ()) for i in ids[at : at + 64]]))
    update_us = (time.perf_counter() - t0) / len(ids) * 1e6
    store.close()
    return rate, update_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="store URL for the throughput run (default: SQLite in a temp dir)")
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    submit_ns, build_ns = bench_submit(args.n, args.repeat)
    print(f"submit() on the event loop:      {submit_ns / 1000:8.2f} µs/record")
    print(f"AuditRecord build (server side): {build_ns / 1000:8.2f} µs/record")
    print(f"writer-thread prepare:           {bench_prepare(min(args.n, 50_000)):8.2f} µs/record (price, redact, metrics)")
    kinds = (("the gateway's", new_request_id), ("random", _random_request_id))
    for ids, request_id in kinds if args.store is None else kinds[:1]:  # one store given: one run into it
        url = args.store or f"sqlite:///{tempfile.mkdtemp(prefix='dragoman-bench-')}/audit.db"
        rate, update_us = bench_throughput(url, args.n, args.batch, request_id)
        print(f"writer throughput ({url.split(':', 1)[0]}, batch {args.batch}, {ids} ids): {rate:10,.0f} records/s; "
              f"next-turn update {update_us:.2f} µs/record")


if __name__ == "__main__":
    main()
