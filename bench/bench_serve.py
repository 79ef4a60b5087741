"""Dashboard page loads on a big store: ``ctxbudget serve`` (real uvicorn server, HTTP over
loopback) against the raw DuckDB query a hand-written page would run for the same data.

    python bench/bench_serve.py 10000000 [--keep DIR] [--requests 40]

Builds (or reuses, with ``--keep``) a simulated store of about N calls
(examples/support-agent.yaml, 16 calls per task on average), starts ``ctxbudget serve``
on it, and prints per page: p50 / p95 / max seconds over ``--requests`` loads (each a
full HTTP GET of the rendered page), next to the raw query's time where there is one
(per task: ``SELECT ... FROM calls WHERE task_id = ?``; overview: ``SELECT day, SUM(...)
GROUP BY day`` without prices). Also the one-off time to compute the snapshot at start.
The pages are served from the snapshot (computed once per data version, in the
background); task and call pages read only their sessions' row range of the store.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from ctxbudget.cli.main import main; main()"]


def build(calls: int, folder: Path) -> Path:
    db = folder / f"sim{calls}.duckdb"
    if db.exists():
        return db
    tasks = max(1, calls // 16)
    days = max(1, min(30, tasks // 2000))
    t = time.perf_counter()
    subprocess.run([*CLI, "simulate", str(ROOT / "examples" / "support-agent.yaml"),
                    "--tasks", str(tasks), "--days", str(days), "--seed", "7",
                    "--failure-rate", "0.1", "--db", str(db)], check=True)
    print(f"store built in {time.perf_counter() - t:.1f} s: {db}", file=sys.stderr)
    return db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> float:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        r.read()
        assert r.status == 200, (url, r.status)
    return time.perf_counter() - t


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("calls", type=int, nargs="?", default=1_000_000)
    ap.add_argument("--keep", type=Path, help="folder to keep / reuse the store in")
    ap.add_argument("--requests", type=int, default=40)
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-serve-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = build(args.calls, folder)

    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    n_calls = con.execute("SELECT COUNT(*) FROM calls").fetchall()[0][0]
    keys = [r[0] for r in con.execute(
        "SELECT task_id FROM calls USING SAMPLE 200 ROWS").fetchall()]
    day = con.execute("SELECT CAST(MAX(ts) AS DATE) FROM calls").fetchall()[0][0]
    ttype = con.execute("SELECT task_type FROM calls LIMIT 1").fetchall()[0][0]
    rnd = random.Random(1)
    tasks = [rnd.choice(keys) for _ in range(args.requests)]
    calls_of = {k: con.execute("SELECT call_key FROM calls WHERE task_id = ? LIMIT 1",
                               [k]).fetchall()[0][0] for k in set(tasks)}
    raw: dict[str, list[float]] = {"task": [], "overview": []}
    for k in tasks:
        t = time.perf_counter()
        con.execute("SELECT * FROM calls WHERE task_id = ? ORDER BY ts", [k]).fetchall()
        raw["task"].append(time.perf_counter() - t)
    for _ in range(max(3, args.requests // 8)):
        t = time.perf_counter()
        con.execute("SELECT CAST(ts AS DATE), COUNT(*), SUM(input_tokens), "
                    "SUM(output_tokens) FROM calls GROUP BY 1").fetchall()
        raw["overview"].append(time.perf_counter() - t)
    con.close()

    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([*CLI, "serve", "--db", str(db), "--port", str(port)],
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            get(base + "/healthz")
            break
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(proc.stderr.read() if proc.stderr else "serve failed") from None
            time.sleep(0.2)
    startup = time.perf_counter() - t0
    try:
        pages = {
            "overview /": ["/"] * args.requests,
            "day /day/D": [f"/day/{day}"] * args.requests,
            "tasks, by cost": ["/tasks"] * args.requests,
            "tasks, type + sort calls": [f"/tasks?type={quote(ttype)}&sort=calls"]
            * args.requests,
            "tasks, failures, page 3": ["/tasks?outcome=failure&offset=100"] * args.requests,
            "task /task/K": [f"/task/{quote(k, safe='')}" for k in tasks],
            "call + audit /call/C?task=K": [
                f"/call/{quote(calls_of[k], safe='')}?task={quote(k)}" for k in tasks],
        }
        rows = []
        for name, urls in pages.items():
            get(base + urls[0])  # warm
            ts = [get(base + u) for u in urls]
            peer = raw["task"] if name.startswith(("task /", "call")) else \
                raw["overview"] if name.startswith("overview") else None
            rows.append((name, ts, peer))
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"\nctxbudget serve on {n_calls:,} calls ({db}); {args.requests} loads per page; "
          f"start-up incl. snapshot {startup:.1f} s\n")
    head = ("page", "p50 s", "p95 s", "max s", "raw query p50 s", "p95 / raw p50")
    print(f"| {' | '.join(head)} |")
    print("|" + "---|" * len(head))
    for name, ts, peer in rows:
        p = statistics.median(peer) if peer else None
        print(f"| {name} | {statistics.median(ts):.3f} | {pct(ts, 0.95):.3f} | {max(ts):.3f} | "
              f"{'' if p is None else f'{p:.3f}'} | "
              f"{'' if p is None else f'{pct(ts, 0.95) / p:.1f}x'} |")


if __name__ == "__main__":
    main()
