"""The daily run: ctxbudget vs ccusage on Claude Code folders of several sizes.

    python3 bench/bench_import.py [--sizes 1,16,64,1024] [--repeat 3] [--keep DIR]

For each size (MiB) a ``~/.claude``-style folder is generated with
``make_claude_folder.py`` (copies of the shared sessions, unique ids, 60 days), then,
each command a separate process with ``CLAUDE_CONFIG_DIR`` set and ``TZ=UTC``:

* **first run** — ``ccusage@20.0.24 claude daily --offline --json`` (installed with
  npm into /tmp/ccusage-bench if missing) and ``ctxbudget report --from claude-code
  --by day --json`` into a new store (import + report in one process);
* **re-run, unchanged** — both again (ccusage reads everything again; ctxbudget sees
  every file unchanged);
* **re-run after an append** — new lines, 1% of the folder's lines, appended to 5
  files (copies of lines already there with new message and request ids: new calls on
  the same days), then both again. ``--repeat`` rounds, each appending again.

The first run answers with SQL (DuckDB) and writes the day summary; the re-runs answer
from it (``"engine": "summary"``: no DuckDB, only the appended bytes parsed) — the
path is printed after each row's name. Every ctxbudget row's token totals must equal
ccusage's on the same folder state
(printed: ``ok`` or the difference) and the cost is compared too. Wall times are
the best and the median of the rounds; the machine is shared (the load average is
printed). Also printed: ``ctxbudget --version`` and ``report --by day`` on the store
of the shared Claude Code data, best of 5.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_claude_folder import DATA, make_folder

CCUSAGE_DIR = Path("/tmp/ccusage-bench")
CCUSAGE = CCUSAGE_DIR / "node_modules" / ".bin" / "ccusage"
TIME = shutil.which("time") or "/usr/bin/time"
CTXB = [sys.executable, "-m", "ctxbudget.cli.main"]


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """(wall s, CPU s, peak RSS MiB, stdout) of one process."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        p = subprocess.run([TIME, "-f", "%U %S %M", "-o", tf.name, *cmd], capture_output=True,
                           text=True, env={**os.environ, **(env or {})}, check=False)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
        u, s, rss = tf.read().strip().splitlines()[-1].split()
    return wall, float(u) + float(s), int(rss) // 1024, p.stdout


def ensure_ccusage() -> bool:
    if CCUSAGE.exists():
        return True
    if not shutil.which("npm"):
        return False
    CCUSAGE_DIR.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["npm", "install", "--silent", "ccusage@20.0.24"], cwd=CCUSAGE_DIR,
                       capture_output=True, check=False)
    return r.returncode == 0 and CCUSAGE.exists()


def ensure_bytecode() -> str:
    """Compile the ctxbudget package the runs import, as ``pip install`` does: a checkout
    run with ``PYTHONDONTWRITEBYTECODE`` set (as on this machine) would otherwise compile
    every module from source in every process (~0.1 s). Returns what was done."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("ctxbudget")
    if spec is None or not spec.submodule_search_locations:
        return "ctxbudget not found"
    where = next(iter(spec.submodule_search_locations))
    ok = compileall.compile_dir(where, quiet=1)
    return f"bytecode of {where} {'up to date' if ok else 'NOT compiled'}"


Totals = tuple[int, int, int, int, float]


def ccusage(folder: Path) -> tuple[float, float, Totals]:
    wall, cpu, _, out = timed([str(CCUSAGE), "claude", "daily", "--offline", "--json"],
                              env={"CLAUDE_CONFIG_DIR": str(folder), "TZ": "UTC"})
    t = json.loads(out)["totals"]
    return wall, cpu, (t["inputTokens"], t["outputTokens"], t["cacheCreationTokens"],
                       t["cacheReadTokens"], float(t["totalCost"]))


#: Which path answered each ctxbudget run ("summary" or "duckdb"), for the table.
ENGINES: list[str] = []


def ctxbudget(folder: Path, db: Path) -> tuple[float, float, Totals]:
    wall, cpu, _, out = timed([*CTXB, "report", "--from", "claude-code", "--by", "day",
                               "--db", str(db), "--json"],
                              env={"CLAUDE_CONFIG_DIR": str(folder), "TZ": "UTC"})
    doc = json.loads(out)
    ENGINES.append(doc["engine"])
    rows = doc["rows"]
    return wall, cpu, (sum(r["input_tokens"] for r in rows),
                       sum(r["output_tokens"] for r in rows),
                       sum(r["cache_write_5m_tokens"] + r["cache_write_1h_tokens"]
                           for r in rows),
                       sum(r["cache_read_tokens"] for r in rows),
                       float(sum(float(r["cost_usd"]) for r in rows)))


_IDS = re.compile(r"(msg_[A-Za-z0-9]+|req_[A-Za-z0-9]+)")


def append_lines(folder: Path, round_: int, files: int = 5, share: float = 0.01) -> int:
    """Append ``share`` of the folder's lines to its ``files`` largest files: copies of
    their first lines with new message / request ids. Returns lines appended."""
    all_files = sorted(folder.rglob("*.jsonl"), key=lambda p: p.stat().st_size, reverse=True)
    total = 0
    for f in all_files:
        with f.open("rb") as fh:
            total += sum(block.count(b"\n") for block in iter(lambda fh=fh: fh.read(1 << 20), b""))
    want = max(files, round(total * share))
    done = 0
    for n, f in enumerate(all_files[:files]):
        k = want // files + (1 if n < want % files else 0)
        src = f.read_text(encoding="utf-8").splitlines()
        new = [_IDS.sub(lambda m: f"{m.group(1)}a{round_}", src[i % len(src)])
               for i in range(k)]
        with f.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(new) + "\n")
        done += k
    return done


def check(ours: Totals, ref: Totals) -> str:
    if ours[:4] != ref[:4]:
        return f"MISMATCH tokens {ours[:4]} vs {ref[:4]}"
    return f"ok (cost diff ${abs(ours[4] - ref[4]):.6f})"


def best_of(cmd: list[str], n: int = 5) -> float:
    return min(timed(cmd)[0] for _ in range(n))


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,16,64,1024", help="MiB, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="work here and keep the folders")
    a = ap.parse_args(argv)
    if not ensure_ccusage():
        raise SystemExit("ccusage@20.0.24 could not be installed (npm missing?)")
    compiled = ensure_bytecode()
    work = a.keep or Path(tempfile.mkdtemp(prefix="ctxb-bench-"))
    rows: list[tuple[str, ...]] = []
    try:
        shared_db = work / "shared.duckdb"
        subprocess.run([*CTXB, "import", "claude-code", str(DATA), "--db", str(shared_db)],
                       check=True, capture_output=True)
        version = best_of([*CTXB, "--version"])
        shared_report = best_of([*CTXB, "report", "--db", str(shared_db), "--by", "day",
                                 "--json"])
        for size in (float(s) for s in a.sizes.split(",")):
            folder = work / f"claude-{size:g}"
            shutil.rmtree(folder, ignore_errors=True)
            files, nbytes, _ = make_folder(folder, size)
            db = work / f"store-{size:g}.duckdb"
            db.unlink(missing_ok=True)
            label = f"{nbytes / 2**20:.0f} MiB, {files} files"
            cw, cc, ct = ccusage(folder)
            ow, oc, ot = ctxbudget(folder, db)
            rows.append((label, f"first run ({ENGINES[-1]})", f"{cw:.2f}", f"{ow:.2f}",
                         f"{cw / ow:.2f}x", f"{cc:.2f}", f"{oc:.2f}", check(ot, ct)))
            same: list[tuple[float, float, float, float]] = []
            grown: list[tuple[float, float, float, float]] = []
            status = []
            appended = 0
            same_eng: set[str] = set()
            grown_eng: set[str] = set()
            for r in range(a.repeat):
                cw, cc, ct = ccusage(folder)
                ow, oc, ot = ctxbudget(folder, db)
                same.append((cw, ow, cc, oc))
                same_eng.add(ENGINES[-1])
                status.append(check(ot, ct))
                appended = append_lines(folder, r)
                cw, cc, ct = ccusage(folder)
                ow, oc, ot = ctxbudget(folder, db)
                grown.append((cw, ow, cc, oc))
                grown_eng.add(ENGINES[-1])
                status.append(check(ot, ct))
            ok = next((s for s in status if not s.startswith("ok")), status[-1])
            for name, runs in ((f"re-run, unchanged ({'+'.join(sorted(same_eng))})", same),
                               (f"re-run, +{appended:,} lines in 5 files "
                                f"({'+'.join(sorted(grown_eng))})", grown)):
                cw = min(x[0] for x in runs)
                ow = min(x[1] for x in runs)
                rows.append((label, name, f"{cw:.2f}", f"{ow:.2f}", f"{cw / ow:.2f}x",
                             f"{statistics.median(x[2] for x in runs):.2f}",
                             f"{statistics.median(x[3] for x in runs):.2f}", ok))
                rows.append(("", "  (median wall)",
                             f"{statistics.median(x[0] for x in runs):.2f}",
                             f"{statistics.median(x[1] for x in runs):.2f}", "", "", "", ""))
            if a.keep is None:
                shutil.rmtree(folder, ignore_errors=True)
        head = ("folder", "run", "ccusage s", "ctxbudget s", "speed-up", "cc CPU",
                "ctxb CPU", "totals vs ccusage")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        for r in [head, *rows]:
            print("  ".join(c.ljust(w) if i < 2 or i == 7 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        print(f"\nwall: best of {a.repeat} rounds (first run: one run); CPU: median; "
              "(summary) / (duckdb): which path of ctxbudget answered (docs/cli.md, "
              "'The day summary')")
        print(f"ctxbudget --version: {version:.3f} s (best of 5; goal < 0.1 s); {compiled}")
        print(f"ctxbudget report --by day on the shared Claude Code store: {shared_report:.3f} s "
              "(best of 5: the first run writes the day summary, the others read it; "
              "goal < 0.25 s)")
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
              "(a shared machine: wall times are inflated by other processes)")
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
