"""Import + daily report of a large Claude Code folder: ctxbudget vs ccusage vs raw DuckDB.

    python3 bench/bench_import.py [--size-mib 1024] [--repeat 3] [--dir DIR]

Generates (unless ``--dir`` is given) a ``~/.claude``-style folder of ``--size-mib``
MiB with ``make_claude_folder.py`` (copies of the shared sessions, unique ids, dates
spread over 60 days), then times, as separate processes, each ``--repeat`` times
interleaved (wall time median and min, peak RSS max):

* ``ctxbudget import claude-code DIR --db NEW`` + ``ctxbudget report --by day --json``
  (a fresh store each run);
* ``ccusage@20.0.24 claude daily --offline --json`` with ``CLAUDE_CONFIG_DIR=DIR``
  (installed with npm into /tmp/ccusage-bench if missing);
* a raw DuckDB ``read_json`` sum of the four token columns over the same files (no
  de-duplication, no store, no pricing: the floor for a DuckDB-based reader);
* ``cat`` of every file to /dev/null (the I/O floor).

It also checks that the token totals of ctxbudget and ccusage agree (and equal the
shared folder's totals times the number of copies), re-imports into an existing store
(unchanged files are skipped), and measures ctxbudget's peak RSS (import and report,
the larger) on folders a quarter of and twice the size, to show memory stays bounded
as the folder grows (the import holds at most ``BATCH_ROWS`` calls at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_claude_folder import make_folder

CCUSAGE_DIR = Path("/tmp/ccusage-bench")
CCUSAGE = CCUSAGE_DIR / "node_modules" / ".bin" / "ccusage"
TIME = shutil.which("time") or "/usr/bin/time"
BASE = {"input": 1040, "output": 56515, "cache_write": 198421, "cache_read": 4075332}

RAW_SQL = """
import duckdb, sys
con = duckdb.connect()
print(con.execute(
    "SELECT sum(message.usage.input_tokens), sum(message.usage.output_tokens), "
    "sum(message.usage.cache_creation_input_tokens), sum(message.usage.cache_read_input_tokens) "
    "FROM read_json(?, format='newline_delimited')", [sys.argv[1]]).fetchall())
"""


class M(tuple[float, float, int]):
    """(wall s, CPU s = user + sys, peak RSS KiB) of one or more processes."""

    def __add__(self, o: object) -> M:  # type: ignore[override]
        assert isinstance(o, M)
        return M((self[0] + o[0], self[1] + o[1], max(self[2], o[2])))


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[M, str]:
    """Wall time, CPU time and peak RSS of one process, and its stdout."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        p = subprocess.run([TIME, "-f", "%U %S %M", "-o", tf.name, *cmd], capture_output=True,
                           text=True, env={**os.environ, **(env or {})}, check=False)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
        u, s, rss = tf.read().strip().splitlines()[-1].split()
    return M((wall, float(u) + float(s), int(rss))), p.stdout


def ensure_ccusage() -> bool:
    if CCUSAGE.exists():
        return True
    if not shutil.which("npm"):
        return False
    CCUSAGE_DIR.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["npm", "install", "--silent", "ccusage@20.0.24"], cwd=CCUSAGE_DIR,
                       capture_output=True, check=False)
    return r.returncode == 0 and CCUSAGE.exists()


def ctxbudget_run(folder: Path, work: Path,
                  fresh: bool = True) -> tuple[M, dict[str, int], M, M]:
    db = work / "bench.duckdb"
    if fresh and db.exists():
        db.unlink()
    exe = [sys.executable, "-m", "ctxbudget.cli.main"]
    m1, out1 = timed([*exe, "import", "claude-code", str(folder), "--db", str(db), "--json"])
    m2, out2 = timed([*exe, "report", "--db", str(db), "--by", "day", "--json"])
    rows = json.loads(out2)["rows"]
    tot = {"input": sum(r["input_tokens"] for r in rows),
           "output": sum(r["output_tokens"] for r in rows),
           "cache_write": sum(r["cache_write_5m_tokens"] + r["cache_write_1h_tokens"]
                              for r in rows),
           "cache_read": sum(r["cache_read_tokens"] for r in rows)}
    del out1
    return m1 + m2, tot, m1, m2


def ccusage_run(folder: Path) -> tuple[M, dict[str, int]]:
    m, out = timed([str(CCUSAGE), "claude", "daily", "--offline", "--json"],
                      env={"CLAUDE_CONFIG_DIR": str(folder), "TZ": "UTC"})
    t = json.loads(out)["totals"]
    return m, {"input": t["inputTokens"], "output": t["outputTokens"],
                  "cache_write": t["cacheCreationTokens"], "cache_read": t["cacheReadTokens"]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=float, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, help="use this folder instead of generating one")
    a = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="ctxb-bench-"))
    try:
        if a.dir:
            folder, copies = a.dir, None
        else:
            folder = work / "claude"
            files, nbytes, copies = make_folder(folder, a.size_mib)
            print(f"generated {folder}: {files} files, {nbytes / 2**20:.0f} MiB, "
                  f"{copies} copies of the shared sessions")
        glob = str(folder / "projects" / "*" / "*.jsonl")
        file_list = sorted(str(p) for p in (folder / "projects").glob("*/*.jsonl"))
        have_cc = ensure_ccusage()
        runs: dict[str, list[M]] = {}
        totals: dict[str, dict[str, int]] = {}
        ours_name, cc_name, raw_name = ("ctxbudget import + report --by day",
                                        "ccusage@20.0.24 claude daily", "raw DuckDB read_json sum")
        for _ in range(a.repeat):
            m, totals["ctxbudget"], m_imp, m_rep = ctxbudget_run(folder, work)
            runs.setdefault(ours_name, []).append(m)
            runs.setdefault("  of which import", []).append(m_imp)
            runs.setdefault("  of which report --by day", []).append(m_rep)
            if have_cc:
                m, totals["ccusage"] = ccusage_run(folder)
                runs.setdefault(cc_name, []).append(m)
            m, _ = timed([sys.executable, "-c", RAW_SQL, glob])
            runs.setdefault(raw_name, []).append(m)
            m, _ = timed(["sh", "-c", 'xargs cat < "$0" > /dev/null',
                          _write_list(work, file_list)])
            runs.setdefault("cat > /dev/null", []).append(m)
        reimport = ctxbudget_run(folder, work, fresh=False)[0]
        rss_by_size: dict[float, int] = {}
        if not a.dir:
            for factor in (0.25, 2):
                sub = work / f"x{factor}"
                make_folder(sub, a.size_mib * factor)
                rss_by_size[a.size_mib * factor] = ctxbudget_run(sub, work)[0][2]
                shutil.rmtree(sub, ignore_errors=True)
            rss_by_size[a.size_mib] = max(x[2] for x in runs[ours_name])

        wall = {k: statistics.median(x[0] for x in v) for k, v in runs.items()}
        cpu = {k: statistics.median(x[1] for x in v) for k, v in runs.items()}
        print(f"\n{'command':38} {'wall s':>7} {'min':>6} {'CPU s':>6} {'RSS MiB':>8} "
              f"{'wall/ccusage':>13} {'wall/raw':>9} {'CPU/ccusage':>12} {'CPU/raw':>8}")
        for name, v in runs.items():
            cc_w, cc_c = wall.get(cc_name, float("nan")), cpu.get(cc_name, float("nan"))
            print(f"{name:38} {wall[name]:7.2f} {min(x[0] for x in v):6.2f} {cpu[name]:6.2f} "
                  f"{max(x[2] for x in v) / 1024:8.0f} {wall[name] / cc_w:12.2f}x "
                  f"{wall[name] / wall[raw_name]:8.2f}x {cpu[name] / cc_c:11.2f}x "
                  f"{cpu[name] / cpu[raw_name]:7.2f}x")
        print(f"{'ctxbudget re-import (unchanged)+report':38} {reimport[0]:7.2f} {'':6} "
              f"{reimport[1]:6.2f} {reimport[2] / 1024:8.0f}")
        if cc_name in wall:
            print("\nctxbudget speed-up over ccusage: "
                  f"wall {wall[cc_name] / wall[ours_name]:.2f}x, "
                  f"CPU {cpu[cc_name] / cpu[ours_name]:.2f}x (goal >= 3x)")
        else:
            print("\nccusage not available (npm missing)")
        print(f"ctxbudget / raw DuckDB: wall {wall[ours_name] / wall[raw_name]:.2f}x, "
              f"CPU {cpu[ours_name] / cpu[raw_name]:.2f}x (goal <= 1.3x)")
        if rss_by_size:
            print("ctxbudget peak RSS: " + ", ".join(
                f"{rss / 1024:.0f} MiB at {size:.0f} MiB input"
                for size, rss in sorted(rss_by_size.items())))
        if copies:
            want = {k: v * copies for k, v in BASE.items()}
            for tool, tot in totals.items():
                status = "ok" if tot == want else f"MISMATCH (want {want})"
                print(f"totals {tool}: {tot} {status}")
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
              "(wall times on a shared machine are inflated by other processes)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_list(work: Path, files: list[str]) -> str:
    p = work / "files.txt"
    p.write_text("\n".join(files) + "\n")
    return str(p)


if __name__ == "__main__":
    main()
