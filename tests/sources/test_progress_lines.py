"""Claude Code sub-agent calls recorded only inside ``type: "progress"`` lines (issue #11
point 8) are counted, once.

The folder is the shared sample project (``shared/data/claude-code``) laid out as newer
Claude Code versions write it: in session ``fe5e1c67`` (an ``/orchestrator`` run whose
sub-agents are real ``Task`` calls) every sub-agent line (``isSidechain: true``) is
replaced by the ``progress`` line that carries it in ``data.message`` (the shape
ccusage 20 reads: ``data.message.{timestamp, requestId, isSidechain, message.usage}``),
and half of them are also written, as plain lines, to the sub-agent's own transcript
``<session>/subagents/agent-<id>.jsonl`` (the same call in two files). Nothing is
added or lost, so ``ccusage@20.0.24 claude daily --offline --json`` prints the
shared reference figures on it (checked live below when the ccusage binary is
installed, as ``bench/bench_import.py`` installs it), and so must ``report --by day``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app

from .test_report_from import _check_equal, _daily

SESSION = "fe5e1c67-53e7-4862-81ae-d0e013e3270b"
CCUSAGE = Path("/tmp/ccusage-bench/node_modules/.bin/ccusage")


def make_progress_folder(data_dir: Path, root: Path) -> tuple[int, int]:
    """Write the folder under ``root``; return (progress lines, lines also in the
    sub-agent transcript)."""
    src = data_dir / "claude-code" / "projects" / "sample-project"
    dst = root / "projects" / "sample-project"
    dst.mkdir(parents=True)
    for f in src.glob("*.jsonl"):
        if f.stem != SESSION:
            shutil.copy(f, dst / f.name)
    main: list[str] = []
    sub: list[str] = []
    n_progress = 0
    for raw in (src / f"{SESSION}.jsonl").read_text().splitlines():
        d = json.loads(raw)
        if d.get("isSidechain") is True and d.get("type") == "assistant":
            inner = {k: d[k] for k in ("type", "message", "requestId", "uuid", "timestamp",
                                       "isSidechain") if k in d}
            progress = {
                "parentUuid": d.get("parentUuid"), "isSidechain": False,
                "userType": "external", "cwd": d.get("cwd"), "sessionId": d["sessionId"],
                "version": "2.1.9", "gitBranch": "", "type": "progress",
                "data": {"type": "agent_progress", "agentId": "a5c0d2e", "prompt": "",
                         "message": inner, "normalizedMessages": []},
                "toolUseID": f"agent_msg_{d['uuid']}", "parentToolUseID": "toolu_orchestrator",
                "uuid": f"p-{d['uuid']}", "timestamp": d["timestamp"],
            }
            main.append(json.dumps(progress, separators=(",", ":")))
            n_progress += 1
            if n_progress % 2:
                sub.append(json.dumps({**d, "agentId": "a5c0d2e"}, separators=(",", ":")))
        else:
            main.append(raw)
    (dst / f"{SESSION}.jsonl").write_text("\n".join(main) + "\n")
    agents = dst / SESSION / "subagents"
    agents.mkdir(parents=True)
    (agents / "agent-a5c0d2e.jsonl").write_text("\n".join(sub) + "\n")
    return n_progress, len(sub)


@pytest.fixture
def folder(data_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "claude"
    n, both = make_progress_folder(data_dir, root)
    assert n > 20 and both > 10  # the sub-agent calls really moved into progress lines
    return root


def test_report_by_day_counts_progress_calls_once(folder: Path, data_dir: Path,
                                                  tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["report", str(folder), "--from", "claude-code", "--by", "day",
                                 "--db", str(tmp_path / "u.duckdb"), "--json"])
    assert r.exit_code == 0, r.output
    _check_equal(json.loads(r.stdout)["rows"], _daily(data_dir))


def test_python_path_reads_progress_lines_too(folder: Path, data_dir: Path,
                                              tmp_path: Path) -> None:
    from ctxbudget.sources import get_importer
    from ctxbudget.sources._base import ImportStats
    from ctxbudget.sources._runner import import_files
    from ctxbudget.store import open_store

    imp = get_importer("claude-code")
    files = imp.discover(folder)
    stats = ImportStats(format="claude-code")
    with open_store(tmp_path / "py.duckdb") as st:
        import_files(imp, files, st, stats)
        py = st.con.execute("SELECT * EXCLUDE (meta) FROM calls ORDER BY call_key").fetchall()
    with open_store(tmp_path / "fast.duckdb") as st:
        from ctxbudget.sources import import_paths

        fast_stats = import_paths(imp, [folder], st)
        fast = st.con.execute("SELECT * EXCLUDE (meta) FROM calls ORDER BY call_key").fetchall()
    assert fast_stats.engine == "msgspec"
    assert py == fast and len(py) == 197


def test_progress_line_without_usage_is_not_a_call(tmp_path: Path) -> None:
    f = tmp_path / "projects" / "p" / "s.jsonl"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"type": "progress", "sessionId": "s", "timestamp":
                             "2026-01-01T00:00:00Z",
                             "data": {"type": "agent_progress", "agentId": "a",
                                      "message": {"type": "user", "message": {
                                          "role": "user", "content": "hi"}}}}) + "\n"
                 + json.dumps({"type": "progress", "data": {"type": "hook_progress",
                                                            "hookName": "x"}}) + "\n")
    r = CliRunner().invoke(app, ["import", "claude-code", str(tmp_path), "--db",
                                 str(tmp_path / "u.duckdb"), "--json"])
    assert r.exit_code == 0
    s = json.loads(r.stdout)
    assert s["accepted"] == 0 and s["skipped"] == {"not an API call": 2}


@pytest.mark.skipif(not CCUSAGE.exists(), reason="ccusage@20.0.24 not installed "
                    "(bench/bench_import.py installs it in /tmp/ccusage-bench)")
def test_ccusage_prints_the_reference_on_this_folder(folder: Path, data_dir: Path) -> None:
    """The folder is faithful: ccusage itself counts the progress calls once."""
    out = subprocess.run([str(CCUSAGE), "claude", "daily", "--offline", "--json"],
                         env={**os.environ, "CLAUDE_CONFIG_DIR": str(folder), "TZ": "UTC"},
                         capture_output=True, text=True, timeout=120, check=True).stdout
    ref = json.loads((data_dir / "claude-code" / "ccusage-daily-offline.json").read_text())
    assert json.loads(out)["daily"] == ref["daily"]
