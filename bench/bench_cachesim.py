"""Benchmark: prefix-cache simulation throughput (requests/s and blocks/s).

Runs every engine of ``ctxbudget.analyze.cachesim`` on the Mooncake trace
(``../shared/data/traces/mooncake_synthetic_trace.jsonl``) and on a scaled copy
(the trace repeated N times with disjoint block ids and shifted times, so the
steady state dominates), for unlimited capacity, an LRU of 3M / 50M tokens and a
5-minute TTL. The peer is the pure-Python ``OrderedDict`` LRU (what one would
write by hand); ratios are against it, measured in the same process.

    python3 bench/bench_cachesim.py [--scale 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ctxbudget.analyze.cachesim import Trace, load_mooncake, simulate_cache

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"


def scaled(tr: Trace, n: int) -> Trace:
    """``tr`` repeated ``n`` times: copy i has ids shifted by i*n_ids, times by i*span."""
    span = float(tr.ts_s[-1] - tr.ts_s[0]) + 1.0
    lens = np.diff(tr.offsets)
    offs = np.concatenate(([0], np.cumsum(np.tile(lens, n)))).astype(np.int64)
    return replace(
        tr,
        ts_s=np.concatenate([tr.ts_s + i * span for i in range(n)]),
        offsets=offs,
        blocks=np.concatenate([tr.blocks + i * tr.n_ids for i in range(n)]),
        block_tokens=np.tile(tr.block_tokens, n),
        prompt_tokens=np.tile(tr.prompt_tokens, n),
        output_tokens=np.tile(tr.output_tokens, n),
        n_ids=tr.n_ids * n,
    )


def best_of(fn: object, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    path = DATA / "mooncake_synthetic_trace.jsonl"
    t0 = time.perf_counter()
    tr = load_mooncake(path)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    tr = load_mooncake(path)
    t_load2 = time.perf_counter() - t0
    print(f"load {path.name}: {tr.requests:,} requests, {len(tr.blocks):,} blocks; "
          f"first load {t_load*1e3:.0f} ms (imports), warm {t_load2*1e3:.1f} ms "
          f"= {tr.requests / t_load2:,.0f} requests/s parsed")
    simulate_cache(tr, capacity_tokens=1000, engine="numba")  # compile / load the JIT cache

    cases = [("unlimited", None, None), ("LRU 3M tok", None, 3_000_000),
             ("LRU 50M tok", None, 50_000_000), ("TTL 5m", 300.0, None)]
    for label, trace in (("mooncake x1", tr), (f"mooncake x{args.scale}", scaled(tr, args.scale))):
        print(f"\n{label}: {trace.requests:,} requests, {len(trace.blocks):,} blocks")
        print(f"{'case':<12} {'engine':<7} {'ms':>9} {'requests/s':>13} {'blocks/s':>14} "
              f"{'hit ratio':>9} {'vs python':>9}")
        for name, ttl, cap in cases:
            rep = 1 if trace is not tr else args.repeat
            py = best_of(lambda t=trace, c=cap, s=ttl: simulate_cache(
                t, ttl_s=s, capacity_tokens=c, engine="python"), 1)
            for engine in ("python", "numpy", "numba"):
                if engine == "numpy" and cap is not None:
                    continue
                res = simulate_cache(trace, ttl_s=ttl, capacity_tokens=cap, engine=engine)
                dt = py if engine == "python" else best_of(
                    lambda t=trace, c=cap, s=ttl, e=engine: simulate_cache(
                        t, ttl_s=s, capacity_tokens=c, engine=e), rep)
                print(f"{name:<12} {engine:<7} {dt*1e3:9.2f} {trace.requests/dt:13,.0f} "
                      f"{len(trace.blocks)/dt:14,.0f} {res.token_hit_ratio:9.4f} {py/dt:8.1f}x")


if __name__ == "__main__":
    main()
