"""``report --by task`` on 10M simulated calls vs a raw DuckDB query, pandas and LiteLLM.

Usage: ``python3 bench/bench_report.py [CALLS] [--keep DIR]`` (default 10,000,000 calls).

1. ``ctxbudget simulate`` writes CALLS calls of the seed example (30 days, three task
   types, 10% failures) to Parquet (plus the tasks file).
2. Each contender runs in its own subprocess (so its peak RSS is its own):
   - ``ctxbudget``: the library path of ``ctxbudget report --by task`` end to end: price
     table from the PriceBook, the per-task SQL (exact DECIMAL cost at each call's date),
     the total, per-type p50/p95 and the terminal table of the top 50 tasks;
     ``--no-waste`` (the wasted-cache-write window skipped) and with it.
   - ``cli``: the same as a command (``ctxbudget report --by task --no-waste``), process
     start and imports included.
   - ``raw duckdb``: a hand-written DuckDB query over the same Parquet: per-task sums and
     cost with the rates typed in as literals (what you would write by hand), to Arrow.
   - ``pandas``: read the Parquet columns, price each record (float), group by task —
     on a 100k-call sample, extrapolated linearly to CALLS (said so in the table).
   - ``litellm``: ``litellm.cost_per_token`` per record on a 100k-call sample, extrapolated.
3. Totals (tokens and cost) are compared between ctxbudget and raw DuckDB.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "seed-example.yaml"
PRICES = ROOT / "examples" / "prices-2026.yaml"
SAMPLE = 100_000
# the seed example's model at examples/prices-2026.yaml rates (USD per million tokens)
RATES = {"input": "3.00", "cache_read": "0.30", "write_5m": "3.75", "write_1h": "6.00",
         "output": "15.00"}


def run_ctxbudget(path: str, waste: bool) -> dict[str, object]:
    import io

    from rich.console import Console

    from ctxbudget.analyze.engine import DuckDBEngine
    from ctxbudget.analyze.metrics import compute_report
    from ctxbudget.analyze.source import open_source
    from ctxbudget.prices import PriceBook
    from ctxbudget.report.terminal import ReportView

    t = time.perf_counter()
    with open_source(data=path) as src:
        rep = compute_report(DuckDBEngine(src), "task", book=PriceBook(overrides=[PRICES]),
                             wasted=waste)
    Console(file=io.StringIO(), width=140).print(ReportView(rep, limit=50))
    secs = time.perf_counter() - t
    assert rep.total is not None
    return {"seconds": secs, "tasks": len(rep), "calls": rep.total.calls,
            "tokens": rep.total.prompt_tokens + rep.total.output_tokens,
            "cost": str(rep.total.cost_usd)}


def run_raw(path: str) -> dict[str, object]:
    import duckdb
    import pyarrow.compute as pc

    t = time.perf_counter()
    con = duckdb.connect()
    r = RATES
    table = con.sql(f"""
        SELECT task_id, count(*) AS calls,
          sum(input_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens
              + output_tokens) AS tokens,
          sum((input_tokens * {r['input']}::DECIMAL(18,9)
             + cache_read_tokens * {r['cache_read']}::DECIMAL(18,9)
             + cache_write_5m_tokens * {r['write_5m']}::DECIMAL(18,9)
             + cache_write_1h_tokens * {r['write_1h']}::DECIMAL(18,9)
             + output_tokens * {r['output']}::DECIMAL(18,9)) * 0.000001) AS cost
        FROM read_parquet('{path}') GROUP BY task_id ORDER BY cost DESC""").to_arrow_table()
    secs = time.perf_counter() - t
    return {"seconds": secs, "tasks": table.num_rows, "calls": pc.sum(table["calls"]).as_py(),
            "tokens": pc.sum(table["tokens"]).as_py(), "cost": str(pc.sum(table["cost"]).as_py())}


def _sample(path: str) -> object:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    return next(pf.iter_batches(batch_size=SAMPLE, columns=[
        "task_id", "input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
        "cache_write_1h_tokens", "output_tokens"]))


def run_pandas(path: str) -> dict[str, object]:
    batch = _sample(path)
    t = time.perf_counter()
    df = batch.to_pandas()  # type: ignore[attr-defined]
    r = {k: float(v) / 1e6 for k, v in RATES.items()}
    df["cost"] = (df.input_tokens * r["input"] + df.cache_read_tokens * r["cache_read"]
                  + df.cache_write_5m_tokens * r["write_5m"]
                  + df.cache_write_1h_tokens * r["write_1h"] + df.output_tokens * r["output"])
    per_task = df.groupby("task_id")["cost"].sum()
    secs = time.perf_counter() - t
    return {"seconds": secs, "rows": len(df), "tasks": len(per_task), "cost": per_task.sum()}


def run_litellm(path: str) -> dict[str, object]:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no network fetch at import
    import litellm

    batch = _sample(path).to_pylist()  # type: ignore[attr-defined]
    t = time.perf_counter()
    total = 0.0
    for row in batch:
        prompt = (row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_5m_tokens"]
                  + row["cache_write_1h_tokens"])
        p, c = litellm.cost_per_token(
            model="claude-sonnet-4-20250514", prompt_tokens=prompt,
            completion_tokens=row["output_tokens"],
            cache_read_input_tokens=row["cache_read_tokens"],
            cache_creation_input_tokens=row["cache_write_5m_tokens"]
            + row["cache_write_1h_tokens"])
        total += p + c
    secs = time.perf_counter() - t
    return {"seconds": secs, "rows": len(batch), "cost": total}


def run_cli(path: str) -> dict[str, object]:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ctxbudget.cli.main", "report", "--by", "task",
                    "--data", path, "--prices", str(PRICES), "--no-waste"],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "140"})
    return {"seconds": time.perf_counter() - t}


def child(name: str, path: str) -> None:
    fn = {"ctxbudget": lambda: run_ctxbudget(path, False),
          "ctxbudget+waste": lambda: run_ctxbudget(path, True), "raw": lambda: run_raw(path),
          "pandas": lambda: run_pandas(path), "litellm": lambda: run_litellm(path),
          "cli": lambda: run_cli(path)}[name]
    out = fn()
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if name == "cli":
        out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(out, default=str))


def measure(name: str, path: str) -> dict[str, object]:
    res = subprocess.run([sys.executable, __file__, "--child", name, path],
                         capture_output=True, text=True, check=True)
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
        return
    calls = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 10_000_000
    keep = sys.argv[sys.argv.index("--keep") + 1] if "--keep" in sys.argv else None
    tmp = tempfile.TemporaryDirectory() if keep is None else None
    folder = Path(keep or tmp.name)  # type: ignore[union-attr]
    path = folder / f"calls-{calls}.parquet"
    if not path.exists():
        from ctxbudget.plan.simulate import iter_simulate, write_parquet

        t = time.perf_counter()
        chunks, tasks_fn = iter_simulate(SPEC, tasks=-(-calls // 15), days=30, seed=1,
                                         failure_rate=0.1,
                                         task_types="support:2,research:1,coding:1")
        _, _, rows = write_parquet(chunks, tasks_fn, path)
        print(f"simulated {rows:,} calls in {time.perf_counter() - t:.1f} s -> {path}")
    res = {n: measure(n, str(path)) for n in
           ("raw", "ctxbudget", "ctxbudget+waste", "cli", "pandas", "litellm")}
    raw, ours = res["raw"], res["ctxbudget"]
    n_calls = int(raw["calls"])  # type: ignore[call-overload]
    same = (int(str(raw["tokens"])) == int(str(ours["tokens"]))
            and int(str(raw["calls"])) == int(str(ours["calls"]))
            and Decimal(str(raw["cost"])) == Decimal(str(ours["cost"])))
    base = float(raw["seconds"])  # type: ignore[arg-type]
    print(f"\nreport --by task on {n_calls:,} calls ({raw['tasks']:,} tasks), "
          f"2 cores; totals equal (calls, tokens, exact cost): {same}")
    print(f"  total cost ctxbudget {ours['cost']}  raw {raw['cost']}")
    print(f"{'contender':44s} {'seconds':>9s} {'vs raw':>7s} {'peak RSS MB':>12s}")
    rows = [("raw DuckDB SQL (literal rates) -> Arrow", raw),
            ("ctxbudget report --by task (library, --no-waste)", ours),
            ("ctxbudget report --by task (library, with waste)", res["ctxbudget+waste"]),
            ("ctxbudget report --by task --no-waste (CLI)", res["cli"])]
    for label, r in rows:
        s = float(r["seconds"])  # type: ignore[arg-type]
        print(f"{label:44s} {s:9.2f} {s / base:6.2f}x {float(r['maxrss_mb']):12.0f}")  # type: ignore[arg-type]
    for label, key in (("pandas (100k sample, extrapolated)", "pandas"),
                       ("LiteLLM cost_per_token (100k, extrapolated)", "litellm")):
        r = res[key]
        s = float(r["seconds"]) * n_calls / float(r["rows"])  # type: ignore[arg-type]
        print(f"{label:44s} {s:9.2f} {s / base:6.2f}x {float(r['maxrss_mb']):12.0f}")  # type: ignore[arg-type]
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
