"""Acceptance (#18): 4 tracking processes + `ingest` + 3 concurrent `report`s + an `import`,
all at once for 60 s: every command exits 0 and the store holds every call exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SECONDS = 60

_TRACKER = textwrap.dedent("""
    import sys, time
    from datetime import UTC, datetime
    import ctxbudget.track as tr
    from ctxbudget.usage import Call, Usage

    name, until = sys.argv[1], float(sys.argv[2])
    n = 0
    while time.time() < until:
        for _ in range(50):
            tr.record_call(Call(ts=datetime.now(UTC), provider="openai", model="gpt-4o",
                                usage=Usage(input_tokens=100 + n, output_tokens=7),
                                request_id=f"{name}-{n}", task_id=f"{name}-t{n // 10}"))
            n += 1
        time.sleep(0.02)
    tr.flush()
    print(n)
""")


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "CTXBUDGET_HOME": str(home)}


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ctxbudget.cli.main", *args],
                          env=_env(home), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_trackers_ingest_reports_and_import_for_60s(tmp_path: Path, data_dir: Path) -> None:
    home = tmp_path / "home"
    until = time.time() + SECONDS
    trackers = [subprocess.Popen([sys.executable, "-c", _TRACKER, f"p{i}", str(until)],
                                 env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for i in range(4)]
    results: dict[str, list[subprocess.CompletedProcess[str]]] = {}
    lock = threading.Lock()

    def loop(kind: str, args: list[str]) -> None:
        while time.time() < until:
            r = _cli(home, *args)
            with lock:
                results.setdefault(kind, []).append(r)

    claude = str(data_dir / "claude-code")
    loops = [("ingest", ["ingest"]), ("import", ["import", "claude-code", claude, "--reimport"])]
    loops += [(f"report{i}", ["report", "--json", "--by", "model"]) for i in range(3)]
    threads = [threading.Thread(target=loop, args=a) for a in loops]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorded = 0
    for p in trackers:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        recorded += int(out.strip())
    failed = [(k, r.returncode, r.stderr.strip()[-300:]) for k, rs in results.items()
              for r in rs if r.returncode != 0]
    runs = {k: len(v) for k, v in results.items()}
    print(f"\nruns per command in {SECONDS} s: {runs}; calls recorded: {recorded:,}")
    assert not failed, failed
    assert all(runs.get(k) for k, _ in loops), runs
    final = _cli(home, "ingest", "--json")
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["quarantine_total"] == 0
    # every tracked call exactly once, and the import idempotent across its re-runs
    import duckdb

    con = duckdb.connect(str(home / "usage.duckdb"), read_only=True)
    try:
        n, keys, rids = con.execute(
            "SELECT count(*), count(DISTINCT call_key), count(DISTINCT request_id) "
            "FROM calls WHERE source = 'track'").fetchall()[0]
        imported = con.execute(
            "SELECT count(*), count(DISTINCT call_key) FROM calls WHERE source <> 'track'"
        ).fetchall()[0]
    finally:
        con.close()
    assert n == keys == rids == recorded
    assert imported[0] == imported[1] > 0
    once = _cli(tmp_path / "other", "import", "claude-code", claude, "--json")
    assert once.returncode == 0, once.stderr
    assert imported[0] == json.loads(once.stdout)["accepted"]
