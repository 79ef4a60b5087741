"""claude-code importer: totals, idempotence, both engines agree, rejections, --strict."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app
from ctxbudget.sources import get_importer, import_paths
from ctxbudget.sources._base import ImportStats
from ctxbudget.sources._runner import import_files
from ctxbudget.store import open_store

SUMS = ("SELECT count(*), sum(input_tokens), sum(output_tokens), "
        "sum(cache_write_5m_tokens + cache_write_1h_tokens), sum(cache_read_tokens) FROM calls")
TOTALS = (197, 1040, 56515, 198421, 4075332)


def _snapshot(db: Path) -> list[tuple[object, ...]]:
    with open_store(db) as st:
        return st.con.execute("SELECT * FROM calls ORDER BY call_key").fetchall()


def _sums(db: Path) -> tuple[object, ...]:
    with open_store(db) as st:
        return tuple(st.con.execute(SUMS).fetchall()[0])


def test_cli_import_and_reimport_changes_nothing(data_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "u.duckdb"
    runner = CliRunner()
    r = runner.invoke(app, ["import", "claude-code", str(data_dir / "claude-code"), "--db", str(db),
                            "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert (s["files"], s["lines"], s["accepted"], s["duplicates"], s["rejected"]) == \
        (3, 520, 197, 108, 0)
    assert s["skipped"] == {"not an API call": 215}
    assert _sums(db) == TOTALS
    before = _snapshot(db)
    r2 = runner.invoke(app, ["import", "claude-code", str(data_dir / "claude-code"),
                             "--db", str(db), "--json"])
    assert r2.exit_code == 0
    assert json.loads(r2.stdout)["unchanged_files"] == 3
    assert _snapshot(db) == before
    r3 = runner.invoke(app, ["import", "claude-code", str(data_dir / "claude-code"),
                             "--db", str(db), "--json", "--reimport"])
    assert json.loads(r3.stdout)["accepted"] == 197
    assert _snapshot(db) == before


def test_python_path_equals_fast_path(data_dir: Path, tmp_path: Path) -> None:
    imp = get_importer("claude-code")
    files = imp.discover(data_dir / "claude-code")
    with open_store(tmp_path / "fast.duckdb") as st:
        stats = import_paths(imp, files, st)
        assert stats.engine == "msgspec"
    with open_store(tmp_path / "slow.duckdb") as st:
        slow = ImportStats(format="claude-code")
        import_files(get_importer("claude-code"), files, st, slow)
        assert (slow.lines, slow.calls, slow.duplicates, slow.skipped) == \
            (520, 305, 108, {"not an API call": 215})
    assert _snapshot(tmp_path / "fast.duckdb") == _snapshot(tmp_path / "slow.duckdb")


def _copy(data_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "claude"
    shutil.copytree(data_dir / "claude-code" / "projects", dst / "projects")
    for f in (dst / "projects").rglob("*.jsonl"):
        f.chmod(0o644)
    return dst


def test_malformed_lines_reported_and_nothing_else_lost(data_dir: Path, tmp_path: Path) -> None:
    root = _copy(data_dir, tmp_path)
    target = root / "projects" / "sample-project" / "5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl"
    lines = target.read_text().splitlines(keepends=True)
    good = json.loads(lines[-1])
    bad_usage = {**good, "uuid": "x",
                 "message": {"id": "msg_neg", "model": "claude-sonnet-4-20250514",
                             "usage": {"input_tokens": -3}}}
    # line 54: truncated JSON, line 55: negative tokens
    target.write_text("".join(lines) + lines[3][: len(lines[3]) // 2] + "\n"
                      + json.dumps(bad_usage) + "\n")
    db = tmp_path / "u.duckdb"
    r = CliRunner().invoke(app, ["import", "claude-code", str(root), "--db", str(db), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["rejected"] == 2
    assert [(Path(x["path"]).name, x["line"]) for x in s["rejections"]] == \
        [(target.name, 54), (target.name, 55)]
    assert "not valid JSON" in s["rejections"][0]["reason"]
    assert "negative" in s["rejections"][1]["reason"]
    assert s["engine"] == "msgspec+python"
    assert _sums(db) == TOTALS  # every good line of the damaged file still landed


def test_strict_stops_with_exit_2(data_dir: Path, tmp_path: Path) -> None:
    root = _copy(data_dir, tmp_path)
    target = next((root / "projects").rglob("1af7*.jsonl"))
    target.write_text(target.read_text() + '{"type": "assistant", "message": {"usage": \n')
    r = CliRunner().invoke(app, ["import", "claude-code", str(root), "--db",
                                 str(tmp_path / "u.duckdb"), "--strict"])
    assert r.exit_code == 2
    assert f"{target.name}:30:" in r.stderr
    assert "Traceback" not in r.stderr


def test_sidechain_synthetic_and_stdin(tmp_path: Path) -> None:
    base = {"type": "assistant", "sessionId": "s1", "timestamp": "2025-10-01T10:00:00.000Z",
            "uuid": "u1", "requestId": "req_1", "isSidechain": True,
            "message": {"id": "msg_1", "model": "claude-sonnet-4-5-20250929",
                        "usage": {"input_tokens": 5, "output_tokens": 7,
                                  "cache_creation_input_tokens": 30,
                                  "cache_creation": {"ephemeral_5m_input_tokens": 10,
                                                     "ephemeral_1h_input_tokens": 20}}}}
    synthetic = {**base, "uuid": "u2", "requestId": None, "isSidechain": False,
                 "message": {"id": "msg_2", "model": "<synthetic>",
                             "usage": {"input_tokens": 0, "output_tokens": 0}}}
    text = json.dumps(base) + "\n" + json.dumps(synthetic) + "\n"
    f = tmp_path / "s1.jsonl"
    f.write_text(text)
    for arg, inp in ((str(f), None), ("-", text)):
        db = tmp_path / f"u{arg == '-'}.duckdb"
        r = CliRunner().invoke(app, ["import", "claude-code", arg, "--db", str(db), "--json"],
                               input=inp)
        assert r.exit_code == 0, r.output
        s = json.loads(r.stdout)
        assert s["accepted"] == 1
        assert s["skipped"] == {"synthetic message (no API call)": 1}
        with open_store(db) as st:
            row = st.con.execute(
                "SELECT call_key, cache_write_5m_tokens, cache_write_1h_tokens, meta, task_id "
                "FROM calls").fetchall()
        assert row == [("claude-code:msg_1:req_1", 10, 20, '{"sidechain":true}', "s1")]


@pytest.mark.parametrize("bad", ["claude", "--map"])
def test_user_errors_exit_2(tmp_path: Path, bad: str) -> None:
    args = ["import", bad, str(tmp_path), "--db", str(tmp_path / "u.duckdb")] if bad != "--map" \
        else ["import", "claude-code", str(tmp_path), "--map", "x=y",
              "--db", str(tmp_path / "u.duckdb")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    assert "Traceback" not in r.output


def test_old_logs_without_cache_split(tmp_path: Path) -> None:
    """Old Claude Code lines lack ``cache_creation`` / ``isSidechain``: the fast path
    reads them (all writes are 5-minute writes)."""
    lines = [{"type": "assistant", "sessionId": "old", "timestamp": f"2025-03-0{i}T10:00:00Z",
              "requestId": f"req_{i}", "uuid": f"u{i}",
              "message": {"id": f"msg_{i}", "model": "claude-3-7-sonnet-20250219",
                          "usage": {"input_tokens": 10 * i, "output_tokens": i,
                                    "cache_creation_input_tokens": 100,
                                    "cache_read_input_tokens": 1000}}} for i in range(1, 4)]
    f = tmp_path / "projects" / "p" / "old.jsonl"
    f.parent.mkdir(parents=True)
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with open_store(tmp_path / "u.db") as st:
        stats = import_paths(get_importer("claude-code"), [tmp_path], st)
        assert stats.engine == "msgspec" and stats.accepted == 3
        assert st.con.execute(SUMS).fetchall()[0] == (3, 60, 6, 300, 3000)
        assert st.con.execute("SELECT sum(cache_write_5m_tokens) FROM calls").fetchall() == \
            [(300,)]


def _folder_copies(data_dir: Path, root: Path, copies: int) -> Path:
    """``copies`` copies of the shared sessions under ``root/projects``; copy 0 keeps the
    original ids, so every copy but the first repeats the same calls (duplicates)."""
    src = sorted((data_dir / "claude-code" / "projects").rglob("*.jsonl"))
    for k in range(copies):
        d = root / "projects" / f"p{k}"
        d.mkdir(parents=True)
        for f in src:
            shutil.copy(f, d / f.name)
    return root


def test_forked_workers_and_small_batches_equal_in_process(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool path (forced: no size threshold, tiny chunks, 2 workers) and several
    store batches (tiny BATCH_ROWS, the same calls repeated in later batches) give
    exactly the rows of the in-process single-batch path."""
    from ctxbudget.sources import claude_code

    root = _folder_copies(data_dir, tmp_path / "c", 4)
    with open_store(tmp_path / "one.duckdb") as st:
        one = import_paths(get_importer("claude-code"), [root], st)
    monkeypatch.setattr(claude_code, "FORK_MIN_BYTES", 0)
    monkeypatch.setattr(claude_code, "CHUNK_BYTES", 1)  # one file per worker task
    monkeypatch.setattr(claude_code, "BATCH_ROWS", 100)
    monkeypatch.setattr(claude_code, "_workers", lambda: 2)
    # threads left by other tests (servers, tracker writers) would disable the fork
    monkeypatch.setattr(claude_code.threading, "active_count", lambda: 1)
    from ctxbudget.sources import _claude_scan

    real_parse = _claude_scan.parse_files
    pids = tmp_path / "pids"
    pids.mkdir()

    def parse(paths: list[str], first: int = 0, *, mapped: bool = False) -> _claude_scan.Chunk:
        assert mapped  # workers map the files
        (pids / str(os.getpid())).touch()
        return real_parse(paths, first, mapped=mapped)

    monkeypatch.setattr(_claude_scan, "parse_files", parse)
    with open_store(tmp_path / "many.duckdb") as st:
        many = import_paths(get_importer("claude-code"), [root], st)
    ran_in = {int(p.name) for p in pids.iterdir()}
    assert ran_in and os.getpid() not in ran_in  # forked workers parsed every chunk
    assert one.as_dict() == many.as_dict()
    assert (one.files, one.calls, one.accepted) == (12, 4 * 305, 197)
    assert _snapshot(tmp_path / "one.duckdb") == _snapshot(tmp_path / "many.duckdb")
    assert _sums(tmp_path / "many.duckdb") == TOTALS


def test_irregular_files_go_to_the_python_path(tmp_path: Path) -> None:
    """Two JSON values on one line (msgspec would read both), a blank line, and a
    timestamp DuckDB cannot read: those files are read line by line, so the first is
    rejected as file:line, the blank line is skipped, the bad timestamp is rejected."""
    def call(n: int, ts: str = "2025-10-01T10:00:00.000Z") -> str:
        return json.dumps({"type": "assistant", "sessionId": "s", "timestamp": ts,
                           "uuid": f"u{n}", "requestId": f"req_{n}",
                           "message": {"id": f"msg_{n}", "model": "claude-sonnet-4-5",
                                       "usage": {"input_tokens": n, "output_tokens": 1}}})
    d = tmp_path / "projects" / "p"
    d.mkdir(parents=True)
    (d / "a.jsonl").write_text(call(1) + "\n" + call(2) + call(3) + "\n")
    (d / "b.jsonl").write_text(call(4) + "\n\n" + call(5) + "\n")
    (d / "c.jsonl").write_text(call(6) + "\n" + call(7, "yesterday") + "\n")
    (d / "d.jsonl").write_text(call(8) + "\n")
    with open_store(tmp_path / "u.db") as st:
        stats = import_paths(get_importer("claude-code"), [tmp_path], st)
        got = st.con.execute("SELECT input_tokens FROM calls ORDER BY 1").fetchall()
    assert [r[0] for r in got] == [1, 4, 5, 6, 8]
    assert stats.engine == "msgspec+python"
    assert [(Path(r.path).name, r.line) for r in stats.rejections] == [("a.jsonl", 2),
                                                                       ("c.jsonl", 2)]
    assert "not valid JSON" in stats.rejections[0].reason
    assert "timestamp" in stats.rejections[1].reason
    assert (stats.files, stats.lines, stats.accepted, stats.rejected) == (4, 7, 5, 2)


def test_store_refuses_a_batch_with_repeated_keys(tmp_path: Path) -> None:
    """The calls table has no key index: the writer checks the batch's keys instead."""
    from datetime import UTC, datetime

    from ctxbudget.errors import StoreError
    from ctxbudget.store.db import calls_to_arrow
    from ctxbudget.usage import Call, Usage

    c = Call(ts=datetime(2025, 1, 1, tzinfo=UTC), provider="anthropic", model="m",
             usage=Usage(input_tokens=1), request_id="r1", source="test")
    with open_store(tmp_path / "u.db") as st:
        with pytest.raises(StoreError, match="1 repeated"):
            st.insert_arrow(calls_to_arrow([c, c]))
        assert st.insert_arrow(calls_to_arrow([c])) == 1
        assert st.insert_arrow(calls_to_arrow([c])) == 1  # replaced, not added
        assert st.count_calls() == 1


def test_progress_bar_starts_no_thread() -> None:
    """The bar shown on a terminal must not start rich's refresh thread: the fast path
    forks its parser workers only from a single-threaded process."""
    import threading
    from contextlib import ExitStack

    from ctxbudget.cli.importer import PROGRESS_MIN_BYTES, _Bar

    before = threading.active_count()
    with ExitStack() as stack:
        bar = _Bar(stack)
        bar.start(PROGRESS_MIN_BYTES * 10)
        assert bar.progress is not None
        bar.advance(PROGRESS_MIN_BYTES)
        assert threading.active_count() == before


def test_a_dead_worker_does_not_lose_or_hang(data_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed mid-import (here: every worker exits at once) breaks the pool;
    its chunks and the rest are parsed in this process, nothing is lost."""
    from ctxbudget.sources import _claude_scan, claude_code

    root = _folder_copies(data_dir, tmp_path / "c", 2)
    with open_store(tmp_path / "ref.duckdb") as st:
        ref = import_paths(get_importer("claude-code"), [root], st)
    parent = os.getpid()
    real_parse = _claude_scan.parse_files

    def parse(paths: list[str], first: int = 0, *, mapped: bool = False) -> _claude_scan.Chunk:
        if os.getpid() != parent:
            (tmp_path / "died").touch()
            os._exit(3)
        assert not mapped  # this process reads, never maps
        return real_parse(paths, first, mapped=mapped)

    monkeypatch.setattr(_claude_scan, "parse_files", parse)
    monkeypatch.setattr(claude_code, "FORK_MIN_BYTES", 0)
    monkeypatch.setattr(claude_code, "CHUNK_BYTES", 1)
    monkeypatch.setattr(claude_code, "_workers", lambda: 2)
    # threads left by other tests (servers, tracker writers) would disable the fork
    monkeypatch.setattr(claude_code.threading, "active_count", lambda: 1)
    with open_store(tmp_path / "u.duckdb") as st:
        got = import_paths(get_importer("claude-code"), [root], st)
    assert (tmp_path / "died").exists()  # a worker really died
    assert got.as_dict() == ref.as_dict()
    assert _snapshot(tmp_path / "u.duckdb") == _snapshot(tmp_path / "ref.duckdb")
