"""Tracking overhead on the calling thread, vs the obvious peers, in one run.

    python3 bench/bench_track.py [--calls 100000]

Rows (per call, measured on the calling thread with perf_counter_ns around each call):

* ``enqueue``: ``ctxbudget.track.record_call(call)`` with a prebuilt Call — the only
  work the calling thread does for durability (the writer thread does the rest);
* ``build+enqueue``: the tracker's full after-call path (``finish_call``: Call built
  from adapted usage, task roll-up, enqueue) plus ``before_call`` (context capture),
  without a task, inside a task, and inside a task with a ``max_calls`` cap;
* peers: writing the same record synchronously as a JSON line (``json.dumps`` +
  ``write`` + ``flush`` per call, what a naive logger does) and through the stdlib
  ``logging`` ``FileHandler``.

Then: writer throughput (records/s serialized + written by the background thread)
and ingestion throughput (spool → DuckDB, records/s). Ratios are vs the naive JSON
line peer. The target for the calling thread is < 20 µs per call (p50).

Then the **crash-loss window under CPU-bound threads** (``--kills N`` per row, 0 skips
it): a child process tracks calls in a tight loop on its main thread while ``busy``
other threads spin in pure Python (they hold the GIL most of every 5 ms switch
interval and starve the writer thread); the parent SIGKILLs it at a random moment
1-2.5 s in and counts what reached the spool. "window" is the kill time minus the
enqueue time of the first lost record (the child logs every enqueue time in a shared
map). Each scenario runs with the writer's caller-side catch-up off
(``max_lag=inf``: the behaviour before it existed) and at its default
(``max_lag = 2 * flush_interval`` = 0.4 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import mmap
import os
import random
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path


def _pct(xs: list[int], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] / 1000.0


def measure(fn: Callable[[int], object], n: int) -> tuple[float, float, float]:
    for i in range(min(2000, n)):  # warm-up
        fn(i)
    out = []
    pc = time.perf_counter_ns
    for i in range(n):
        t0 = pc()
        fn(i)
        out.append(pc() - t0)
    return _pct(out, 0.5), _pct(out, 0.99), statistics.fmean(out) / 1000.0


_RING = 1 << 20  # enqueue times kept per record index (mod _RING)


def crash_child(spool: str, shm: str, max_lag: float, busy: int, work: int) -> None:
    """Track calls forever on the main thread; ``busy`` threads spin. Logs each enqueue."""
    import ctxbudget.track as tr
    from ctxbudget.adapters import AdaptedUsage
    from ctxbudget.track._core import before_call, finish_call
    from ctxbudget.usage import Usage

    tr.configure(spool_dir=spool, max_lag=max_lag)
    with open(shm, "r+b") as f:
        mm = mmap.mmap(f.fileno(), 8 + 8 * _RING)

    def spin() -> None:
        x = 0
        while True:
            x += 1

    for _ in range(busy):
        threading.Thread(target=spin, daemon=True).start()
    i = 0
    now = time.time
    pack = struct.pack
    while True:
        for _ in range(work):  # the app's own CPU work between calls
            pass
        p = before_call("anthropic", "anthropic", {"model": "claude-sonnet-4-5"})
        finish_call(p, AdaptedUsage(Usage(input_tokens=i), input_inclusive=False))
        j = 8 + 8 * (i % _RING)
        mm[j:j + 8] = pack("d", now())
        i += 1
        mm[:8] = pack("q", i)


def crash_once(max_lag: float, busy: int, work: int) -> tuple[int, int, float]:
    """(enqueued, lost, window seconds) of one SIGKILL."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    shm = tmp / "enqueued"
    shm.write_bytes(b"\0" * (8 + 8 * _RING))
    proc = subprocess.Popen([sys.executable, __file__, "--crash-child", str(tmp / "spool"),
                             str(shm), str(max_lag), str(busy), str(work)])
    with shm.open("r+b") as f:
        mm = mmap.mmap(f.fileno(), 8 + 8 * _RING)
    try:
        deadline = time.monotonic() + 120
        while struct.unpack("q", mm[:8])[0] < 1000:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("crash child did not start")
            time.sleep(0.01)
        time.sleep(random.uniform(1.0, 2.5))
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        enqueued = struct.unpack("q", mm[:8])[0]
        landed = 0
        for fn in (tmp / "spool").glob("*.jsonl"):
            for line in fn.read_bytes().split(b"\n"):
                with contextlib.suppress(ValueError):  # the torn tail
                    landed += json.loads(line)["k"] == "c"
        # the record being enqueued at the kill may have landed before its counter update
        lost = max(0, enqueued - landed)
        if lost == 0:
            return enqueued, 0, 0.0
        j = 8 + 8 * (landed % _RING)
        return enqueued, lost, killed_at - struct.unpack("d", mm[j:j + 8])[0]
    finally:
        mm.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def crash_table(kills: int) -> None:
    print(f"\ncrash-loss window under CPU-bound threads: SIGKILL at a random moment, {kills} "
          f"kills per row, {os.cpu_count()} CPUs (load avg {os.getloadavg()[0]:.1f})")
    print(f"{'app threads':34} {'writer':24} {'lost p50':>9} {'lost max':>9} "
          f"{'window p50':>11} {'window max':>11}")
    for busy, work, label in ((1, 0, "calls in a tight loop + 1 spinner"),
                              (3, 200, "calls + work + 3 spinners")):
        for max_lag, mode in ((float("inf"), "no catch-up (before)"),
                              (0.4, "max_lag 0.4 s (default)")):
            res = [crash_once(max_lag, busy, work) for _ in range(kills)]
            lost = [r[1] for r in res]
            win = [r[2] for r in res]
            print(f"{label:34} {mode:24} {statistics.median(lost):9.0f} {max(lost):9d} "
                  f"{statistics.median(win):10.3f}s {max(win):10.3f}s", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--crash-child":
        a = sys.argv[2:]
        crash_child(a[0], a[1], float(a[2]), int(a[3]), int(a[4]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--kills", type=int, default=8, help="SIGKILLs per crash-window row")
    ap.add_argument("--only-crash", action="store_true")
    args = ap.parse_args()
    if args.only_crash:
        crash_table(args.kills)
        return
    n = args.calls
    tmp = Path(tempfile.mkdtemp(prefix="bench-track-"))
    os.environ["CTXBUDGET_HOME"] = str(tmp)

    import ctxbudget
    import ctxbudget.track as tr
    from ctxbudget.adapters import AdaptedUsage
    from ctxbudget.store.spool import ingest_spool
    from ctxbudget.track._core import before_call, finish_call
    from ctxbudget.usage import Call, Usage

    tr.configure(spool_dir=tmp / "spool")
    usage = Usage(input_tokens=1200, cache_read_tokens=3000, output_tokens=250)
    adapted = AdaptedUsage(usage, input_inclusive=False, model="claude-sonnet-4-5-20250929",
                           request_id="msg_bench")
    call = Call(ts=datetime.now(UTC), provider="anthropic", model="claude-sonnet-4-5",
                usage=usage, task_id="bench", request_id="msg_bench")

    def enqueue(i: int) -> None:
        tr.record_call(call)

    def sdk_path(i: int) -> None:
        p = before_call("anthropic", "anthropic", {"model": "claude-sonnet-4-5"})
        finish_call(p, adapted)

    rows: list[tuple[str, tuple[float, float, float]]] = []
    rows.append(("ctxbudget enqueue (prebuilt Call)", measure(enqueue, n)))
    rows.append(("ctxbudget before+finish, no task", measure(sdk_path, n)))
    with ctxbudget.task("bench", type="bench"):
        rows.append(("ctxbudget before+finish, in a task", measure(sdk_path, n)))
    with ctxbudget.task("bench-capped", max_calls=10**9):
        rows.append(("ctxbudget before+finish, task with max_calls", measure(sdk_path, n)))
    tr.flush()

    # peers: synchronous JSON line per call; stdlib logging to a file
    fh = open(tmp / "naive.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def naive(i: int) -> None:
        fh.write(json.dumps({"ts": call.ts.isoformat(), "provider": call.provider,
                             "model": call.model, "task_id": call.task_id,
                             "request_id": call.request_id, **usage.as_dict()}) + "\n")
        fh.flush()

    rows.append(("peer: json.dumps + write + flush", measure(naive, n)))
    fh.close()
    log = logging.getLogger("bench.peer")
    log.propagate = False
    handler = logging.FileHandler(tmp / "peer.log")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    def stdlib_logging(i: int) -> None:
        log.info("call %s %s %s %s", call.provider, call.model, call.request_id,
                 usage.as_dict())

    rows.append(("peer: logging.FileHandler", measure(stdlib_logging, n)))
    handler.close()

    ref = next(r for name, r in rows if name.startswith("peer: json"))[0]
    print(f"\ncalling-thread cost per call, {n:,} calls per row, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs (load avg "
          f"{os.getloadavg()[0]:.1f})")
    print(f"{'path':48} {'p50 µs':>8} {'p99 µs':>8} {'mean µs':>8} {'p50 vs naive':>13}")
    for name, (p50, p99, mean) in rows:
        print(f"{name:48} {p50:8.2f} {p99:8.2f} {mean:8.2f} {p50 / ref:12.2f}x")

    # writer throughput: enqueue N records, time until all are written
    w = tr.stats()
    t0 = time.perf_counter()
    for _ in range(n):
        tr.record_call(call)
    tr.flush()
    dt = time.perf_counter() - t0
    written = tr.stats()["written"] - w["written"]
    size = sum(f.stat().st_size for f in (tmp / "spool").glob("*")) / 1e6
    print(f"\nwriter: {written:,} records enqueued+serialized+written in {dt:.2f} s "
          f"({written / dt:,.0f}/s); spool {size:.1f} MB")

    t0 = time.perf_counter()
    rep = ingest_spool(tmp / "usage.duckdb", tmp / "spool")
    dt = time.perf_counter() - t0
    print(f"ingest: {rep.calls:,} calls into DuckDB in {dt:.2f} s ({rep.calls / dt:,.0f}/s), "
          f"rejected {rep.rejected}")
    stats = tr.stats()
    print(f"stats: written {stats['written']:,}, dropped {stats['dropped']}, "
          f"tracking_errors {stats['tracking_errors']}, overflow_writes "
          f"{stats['overflow_writes']}")
    if args.kills:
        crash_table(args.kills)


if __name__ == "__main__":
    main()
