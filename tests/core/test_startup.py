"""A light command imports only what it uses (issue #14: start-up).

Each case runs the CLI's ``main()`` in a fresh interpreter and lists the heavy
modules present when it returns: ``--version`` needs no CLI framework at all, the
pricing and counting commands need neither DuckDB, Arrow, numpy nor an HTTP client
(the price catalog is read without ``genai_prices``' update client). Timings are
measured by ``bench/bench_import.py``, never asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Modules a light command must not import.
ANALYTICS = ("duckdb", "pyarrow", "numpy", "pandas", "plotly", "pyspark", "msgspec")
NETWORK = ("httpx", "httpx2", "anthropic", "openai", "asyncio")
CLI = ("typer", "click", "rich", "pydantic")

PROBE = r"""
import json, sys
sys.argv = ["ctxbudget", *json.loads(sys.argv[1])]
from ctxbudget.cli.main import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
roots = sorted({m.split(".")[0] for m in sys.modules})
sys.stderr.write("\n" + json.dumps({"code": code, "modules": roots}) + "\n")
"""


def _run(args: list[str]) -> tuple[int, set[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["TIKTOKEN_CACHE_DIR"] = str(ROOT.parent / "shared" / "data" / "tiktoken")
    p = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True,
                       text=True, timeout=120, env=env, cwd=ROOT)
    last = json.loads(p.stderr.strip().splitlines()[-1])
    return int(last["code"] or 0), set(last["modules"])


def test_version_imports_no_cli_framework() -> None:
    code, mods = _run(["--version"])
    assert code == 0
    assert mods & {*CLI, *ANALYTICS, *NETWORK, "genai_prices", "tiktoken", "yaml"} == set()


@pytest.mark.parametrize("args", [
    ["cost", "--model", "claude-sonnet-4-5", "--provider", "anthropic", "--input", "3"],
    ["prices", "sonnet-4-5"],
    ["count", "--model", "gpt-4o", "README.md"],
    ["plan", "examples/support-agent.yaml"],
    ["import", "--help"],
    ["report", "--help"],
])
def test_light_commands_import_no_analytics_or_http(args: list[str]) -> None:
    code, mods = _run(args)
    assert code == 0
    heavy = mods & {*ANALYTICS, *NETWORK}
    assert heavy == set(), f"{args[0]} imported {heavy}"


def test_probe_sees_heavy_imports() -> None:
    """The probe can fail: a command that reads the store does import DuckDB."""
    code, mods = _run(["report", "--db", str(ROOT / "no-such-dir" / "x.duckdb")])
    assert "duckdb" in mods
    assert "typer" in mods
    del code


def test_daily_report_from_the_summary_imports_no_duckdb_or_cli(tmp_path: Path) -> None:
    """``report --from claude-code --by day`` answered by the day summary (the daily
    re-run) runs without DuckDB, Arrow, numpy, the CLI framework or the price catalog."""
    import shutil

    data = ROOT.parent / "shared" / "data" / "claude-code" / "projects"
    if not data.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    shutil.copytree(data, tmp_path / "claude" / "projects")
    args = ["report", "--from", "claude-code", str(tmp_path / "claude"), "--by", "day",
            "--db", str(tmp_path / "u.duckdb"), "--json"]
    code, mods = _run(args)  # the first run: SQL, then the summary is written
    assert code == 0 and "duckdb" in mods
    f = sorted((tmp_path / "claude").rglob("*.jsonl"))[0]
    with f.open("a") as fh:  # a new line: the re-run imports it through the summary
        fh.write(f.read_text().splitlines()[-1] + "\n")
    code, mods = _run(args)
    assert code == 0
    heavy = mods & {*ANALYTICS, *NETWORK, "typer", "click", "pydantic", "genai_prices"} \
        - {"msgspec"}
    assert heavy == set(), f"the daily re-run imported {heavy}"
    code, mods = _run(["report", "--by", "day", "--db", str(tmp_path / "u.duckdb"),
                       "--format", "csv"])
    assert code == 0 and "duckdb" not in mods  # the summary and its pending calls
    code, mods = _run(["report", "--by", "model", "--db", str(tmp_path / "u.duckdb")])
    assert code == 0 and "duckdb" in mods  # another report: the store (pending folded in)
