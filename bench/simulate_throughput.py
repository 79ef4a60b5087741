"""Throughput of ``ctxbudget simulate`` (vectorized) vs the per-object path.

Peer: the same calls built as one ``Call`` object each and converted with
``ctxbudget.store.calls_to_arrow`` (what a naive simulator would do). Both run in
this process, on the seed example. Usage: ``python3 bench/simulate_throughput.py
[TASKS]`` (default 100,000 tasks = 1.5M calls).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ctxbudget.plan.simulate import iter_simulate, simulate, write_parquet
from ctxbudget.store import calls_to_arrow
from ctxbudget.usage import Call, Usage

SPEC = Path(__file__).resolve().parents[1] / "examples" / "seed-example.yaml"
BUCKETS = ("input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
           "cache_write_1h_tokens", "output_tokens")


def main() -> None:
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    simulate(SPEC, tasks=10, days=1)  # warm up imports and the price book

    t = time.perf_counter()
    chunks, tasks_fn = iter_simulate(SPEC, tasks=tasks, days=30, seed=1)
    rows = sum(c.num_rows for c in chunks)
    tasks_fn()
    gen_s = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        chunks, tasks_fn = iter_simulate(SPEC, tasks=tasks, days=30, seed=1)
        _, _, rows_pq = write_parquet(chunks, tasks_fn, Path(d) / "calls.parquet")
        pq_s = time.perf_counter() - t

    # peer: one Call object per call, then calls_to_arrow (on a 100k-call sample)
    sample, _ = simulate(SPEC, tasks=max(1, 100_000 // 15), days=30, seed=1)
    cols = {b: sample.column(b).to_pylist() for b in BUCKETS}
    base = datetime(2026, 1, 1, tzinfo=UTC)
    t = time.perf_counter()
    objs = [Call(ts=base + timedelta(seconds=i), provider="anthropic",
                 model="claude-sonnet-4-6", task_id=f"t{i // 15}", request_id=f"r{i}",
                 source="simulate", turn=i % 15 + 1,
                 usage=Usage(**{b: cols[b][i] for b in BUCKETS}),
                 components={"system_prompt": 400, "history": i % 15})
            for i in range(sample.num_rows)]
    calls_to_arrow(objs)
    peer_s = time.perf_counter() - t
    peer_rate = sample.num_rows / peer_s

    print(f"{'path':<44} {'calls':>10} {'seconds':>8} {'calls/s':>12} {'vs peer':>8}")
    for name, n, s in (("simulate (Arrow tables in memory)", rows, gen_s),
                       ("simulate --out calls.parquet (zstd)", rows_pq, pq_s),
                       ("peer: Call objects + calls_to_arrow", sample.num_rows, peer_s)):
        rate = n / s
        print(f"{name:<44} {n:>10,} {s:>8.2f} {rate:>12,.0f} {rate / peer_rate:>7.1f}x")


if __name__ == "__main__":
    main()
