"""Ingest and import throughput against a raw DuckDB load of the same records.

    python3 bench/bench_ingest.py [--calls 1000000] [--tasks 200000] [--rows 1000000]
                                  [--keep DIR] [--skip-table]

1. A tracker spool of ``--calls`` call lines and ``--tasks`` task lines (the tracker's
   own line format, 4 files of finished processes) is folded into a fresh store by
   ``ctxbudget.ingest_spool`` (validation, quarantine, de-duplication, offsets), and,
   side by side, by one raw ``INSERT INTO calls/tasks SELECT ... FROM read_json(...)``
   into a fresh store with the same schema (no validation, no de-duplication).
2. A CSV table of ``--rows`` calls is imported by ``ctxbudget import table`` (the CLI,
   process start included) and by a raw ``INSERT INTO calls SELECT ... FROM
   read_csv(...)``.

Prints seconds, records per second and the ratio to the raw path; checks that both
stores hold the same number of rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ctxbudget.store import open_store  # noqa: E402
from ctxbudget.store.schema import CALL_COLUMNS  # noqa: E402
from ctxbudget.store.spool import ingest_spool  # noqa: E402

MODELS = ("claude-sonnet-4-5", "gpt-4o", "claude-haiku-4-5", "gpt-4.1-mini")


def make_spool(d: Path, calls: int, tasks: int) -> int:
    d.mkdir(parents=True, exist_ok=True)
    files = [open(d / f"99999999{i}-bench{i}.jsonl", "w") for i in range(4)]  # noqa: SIM115
    every = max(1, calls // max(1, tasks))
    t = 0
    size = 0
    try:
        for n in range(calls):
            f = files[n % 4]
            line = json.dumps({
                "k": "c", "rid": f"bench{n % 4}:{n}",
                "ts": f"2026-03-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:07.123456+00:00",
                "provider": "anthropic" if n % 2 == 0 else "openai", "model": MODELS[n % 4],
                "u": [n % 5000, (n * 7) % 90000, n % 300, 0, 50 + n % 900, 0],
                "status": "ok", "source": "track", "task_id": f"task-{n // every}",
                "session_id": f"s{n // 50}", "task_type": ("support", "coding")[n % 2],
                "request_id": f"req_{n:012d}", "latency_ms": 100.0 + n % 3000,
            }, separators=(",", ":")) + "\n"
            f.write(line)
            size += len(line)
            if n % every == every - 1 and t < tasks:
                tl = json.dumps({
                    "k": "t", "task_id": f"task-{t}", "task_type": ("support", "coding")[t % 2],
                    "outcome": "success", "started_at": "2026-03-01T00:00:00+00:00",
                    "ended_at": "2026-03-01T00:01:00+00:00", "session_id": f"s{t}",
                    "parent_id": None}, separators=(",", ":")) + "\n"
                f.write(tl)
                size += len(tl)
                t += 1
    finally:
        for f in files:
            f.close()
    return size


_JSON_COLS = ("{k: 'VARCHAR', rid: 'VARCHAR', ts: 'VARCHAR', provider: 'VARCHAR', "
              "model: 'VARCHAR', u: 'BIGINT[]', status: 'VARCHAR', source: 'VARCHAR', "
              "task_id: 'VARCHAR', session_id: 'VARCHAR', task_type: 'VARCHAR', "
              "request_id: 'VARCHAR', latency_ms: 'DOUBLE', service_tier: 'VARCHAR', "
              "turn: 'INTEGER', expected_cache_read_tokens: 'BIGINT', "
              "input_inclusive: 'BOOLEAN', components: 'JSON', prefix_fingerprint: 'JSON', "
              "meta: 'JSON', outcome: 'VARCHAR', started_at: 'VARCHAR', ended_at: 'VARCHAR', "
              "parent_id: 'VARCHAR'}")


def raw_spool(db: Path, spool: Path) -> None:
    import duckdb

    open_store(db).close()  # the same schema, empty
    con = duckdb.connect(str(db))
    src = f"read_json('{spool}/*.jsonl', format='newline_delimited', columns={_JSON_COLS})"
    names = ", ".join(n for n, _ in CALL_COLUMNS)
    con.execute("BEGIN")
    con.execute(f"CREATE TEMP TABLE spool AS SELECT * FROM {src}")
    con.execute(
        f"INSERT INTO calls ({names}) SELECT 'track:' || rid, ts::TIMESTAMPTZ, provider, model, "
        "task_id, session_id, task_type, request_id, u[1], u[2], u[3], u[4], u[5], u[6], "
        "latency_ms, status, source, service_tier, turn, components, prefix_fingerprint, "
        "expected_cache_read_tokens, input_inclusive, meta FROM spool WHERE k = 'c'")
    con.execute(
        "INSERT INTO tasks (task_id, task_type, outcome, started_at, ended_at, session_id, "
        "parent_id, source) SELECT task_id, task_type, outcome, started_at::TIMESTAMPTZ, "
        "ended_at::TIMESTAMPTZ, session_id, parent_id, 'track' FROM "
        "spool WHERE k = 't'")
    con.execute("COMMIT")
    con.close()


def make_csv(path: Path, rows: int) -> None:
    with open(path, "w") as f:
        f.write("ts,model,provider,input_tokens,cache_read_tokens,output_tokens,request_id,"
                "task_id,latency_ms\n")
        for n in range(rows):
            f.write(f"2026-03-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:07Z,{MODELS[n % 4]},"
                    f"{'anthropic' if n % 2 == 0 else 'openai'},{n % 5000},{(n * 7) % 90000},"
                    f"{50 + n % 900},req_{n:012d},task-{n // 5},{100 + n % 3000}\n")


def raw_csv(db: Path, csv: Path) -> None:
    import duckdb

    open_store(db).close()
    con = duckdb.connect(str(db))
    names = ", ".join(n for n, _ in CALL_COLUMNS)
    con.execute("BEGIN")
    con.execute(
        f"INSERT INTO calls ({names}) SELECT 'table:' || request_id, ts::TIMESTAMPTZ, "
        "provider, model, task_id, NULL, NULL, request_id, input_tokens, cache_read_tokens, "
        "0, 0, output_tokens, 0, latency_ms, 'ok', 'table', NULL, NULL, NULL, NULL, NULL, "
        f"false, NULL FROM read_csv('{csv}', header=true)")
    con.execute("COMMIT")
    con.close()


def _count(db: Path, table: str = "calls") -> int:
    with open_store(db, read_only=True) as s:
        return int(s.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def _timed(fn: object, *args: object) -> float:
    t0 = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--skip-table", action="store_true")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, float, int, float]] = []
    try:
        spool = work / "spool"
        if not spool.is_dir():
            size = make_spool(spool, a.calls, a.tasks)
            print(f"spool: {a.calls:,} calls + {a.tasks:,} tasks, {size / 2**20:.0f} MiB")
        for p in work.glob("*.duckdb*"):
            p.unlink()
        t_raw = _timed(raw_spool, work / "raw.duckdb", spool)
        t_ing = _timed(lambda: ingest_spool(work / "ing.duckdb", spool, retire=False))
        n_raw, n_ing = _count(work / "raw.duckdb"), _count(work / "ing.duckdb")
        k_raw, k_ing = _count(work / "raw.duckdb", "tasks"), _count(work / "ing.duckdb", "tasks")
        assert (n_raw, k_raw) == (n_ing, k_ing) == (a.calls, a.tasks), (n_raw, n_ing, k_raw,
                                                                          k_ing)
        recs = a.calls + a.tasks
        rows += [("raw DuckDB read_json + INSERT (spool)", t_raw, recs, 1.0),
                 ("ctxbudget ingest_spool", t_ing, recs, t_ing / t_raw)]
        if not a.skip_table:
            csv = work / "calls.csv"
            if not csv.exists():
                make_csv(csv, a.rows)
            t_rawc = _timed(raw_csv, work / "rawc.duckdb", csv)
            env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
            t_imp = _timed(lambda: subprocess.run(
                [sys.executable, "-m", "ctxbudget.cli.main", "import", "table", str(csv),
                 "--db", str(work / "imp.duckdb"), "--json"], env=env, check=True,
                capture_output=True))
            assert _count(work / "rawc.duckdb") == _count(work / "imp.duckdb") == a.rows
            rows += [("raw DuckDB read_csv + INSERT (table)", t_rawc, a.rows, 1.0),
                     ("ctxbudget import table (CLI)", t_imp, a.rows, t_imp / t_rawc)]
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'contender':44} {'seconds':>8} {'records/s':>12} {'x raw':>7}")
    for name, t, n, ratio in rows:
        print(f"{name:44} {t:8.2f} {n / t:12,.0f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
