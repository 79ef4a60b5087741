"""Append-aware imports (issue #14 point 2): a grown Claude Code / Codex log is read
from where the last import stopped, a rewritten one whole; the store ends exactly as
an import of the final files into an empty store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ctxbudget.sources import get_importer, import_paths
from ctxbudget.sources._base import ImportStats
from ctxbudget.sources._runner import import_files
from ctxbudget.store import open_store


def _snapshot(db: Path) -> list[tuple[object, ...]]:
    with open_store(db) as st:
        return st.con.execute("SELECT * EXCLUDE (meta), meta FROM calls "
                              "ORDER BY call_key").fetchall()


def _import(fmt: str, root: Path, db: Path, **kw: Any) -> ImportStats:
    with open_store(db) as st:
        return import_paths(get_importer(fmt), [root], st, **kw)


def _split_points(lines: list[bytes]) -> int:
    """A line index that falls between two streamed copies of one message."""
    seen: dict[str, int] = {}
    for n, raw in enumerate(lines):
        d = json.loads(raw)
        msg = d.get("message") or {}
        if isinstance(msg, dict) and msg.get("usage") and msg.get("id"):
            key = f"{msg['id']}:{d.get('requestId')}"
            if key in seen and n - seen[key] >= 1:
                return n  # copies at seen[key] (old part) and n (new part)
            seen[key] = n
    raise AssertionError("no streamed message with two copies")


@pytest.fixture
def claude_dir(data_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "claude"
    shutil.copytree(data_dir / "claude-code" / "projects", root / "projects")
    return root


def test_claude_code_append_equals_whole_import(claude_dir: Path, tmp_path: Path) -> None:
    files = sorted((claude_dir / "projects").rglob("*.jsonl"))
    full = {f: f.read_bytes() for f in files}
    cuts = {}
    for f, data in full.items():
        lines = data.splitlines(keepends=True)
        cut = _split_points(lines)  # a streamed call spans the old and the new part
        cuts[f] = cut
        f.write_bytes(b"".join(lines[:cut]))
    db = tmp_path / "u.duckdb"
    first = _import("claude-code", claude_dir, db)
    assert first.files == 3 and first.appended_files == 0
    for f, data in full.items():
        f.write_bytes(data)
    again = _import("claude-code", claude_dir, db)
    assert again.appended_files == 3 and again.unchanged_files == 0
    assert again.engine == "msgspec"
    # only the new lines were read
    assert again.lines == sum(len(d.splitlines()) - cuts[f] for f, d in full.items())
    ref = tmp_path / "ref.duckdb"
    _import("claude-code", claude_dir, ref)
    assert _snapshot(db) == _snapshot(ref)
    # nothing new: every file unchanged
    third = _import("claude-code", claude_dir, db)
    assert third.unchanged_files == 3 and third.files == 0


def test_rewritten_or_truncated_file_is_read_whole(claude_dir: Path, tmp_path: Path) -> None:
    f = sorted((claude_dir / "projects").rglob("*.jsonl"))[0]
    data = f.read_bytes()
    lines = data.splitlines(keepends=True)
    db = tmp_path / "u.duckdb"
    f.write_bytes(b"".join(lines[: len(lines) // 2]))
    _import("claude-code", claude_dir, db)
    # rewritten: a different first half, then more lines (larger than before)
    f.write_bytes(b"".join(lines[len(lines) // 2:] + lines[: len(lines) // 2]))
    st = _import("claude-code", claude_dir, db)
    assert st.appended_files == 0 and st.files == 1 and st.lines == len(lines)
    # truncated
    f.write_bytes(b"".join(lines[:3]))
    st = _import("claude-code", claude_dir, db)
    assert st.appended_files == 0 and st.files == 1 and st.lines == 3


def test_append_through_the_python_path_numbers_lines_from_the_start(
        claude_dir: Path, tmp_path: Path) -> None:
    f = sorted((claude_dir / "projects").rglob("*.jsonl"))[0]
    lines = f.read_bytes().splitlines(keepends=True)
    db = tmp_path / "u.duckdb"
    f.write_bytes(b"".join(lines[:10]))
    _import("claude-code", claude_dir, db)
    f.write_bytes(b"".join(lines[:10]) + b"{not json\n" + b"".join(lines[10:]))
    st = _import("claude-code", claude_dir, db)
    assert st.appended_files == 1 and st.engine == "python"
    assert [(r.line, r.reason.split(" (")[0]) for r in st.rejections] == [(11, "not valid JSON")]
    assert st.lines == len(lines) - 10 + 1
    # the Python path's append keeps the copy the fast path keeps
    f.write_bytes(b"".join(lines))
    ref = tmp_path / "ref.duckdb"
    _import("claude-code", claude_dir, ref)
    _import("claude-code", claude_dir, db)  # rejected before: read whole
    assert _snapshot(db) == _snapshot(ref)


def _codex_lines(sid: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"timestamp": "2025-10-01T10:00:00.000Z", "type": "session_meta",
         "payload": {"id": sid, "cwd": "/w"}},
        {"timestamp": "2025-10-01T10:00:01.000Z", "type": "turn_context",
         "payload": {"cwd": "/w", "model": "gpt-5-codex"}},
    ]
    total = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0,
             "reasoning_output_tokens": 0, "total_tokens": 0}
    for n in range(1, 7):
        total = {k: v + n * 10 for k, v in total.items()}
        total["total_tokens"] = total["input_tokens"] + total["output_tokens"]
        # only the running total (no last_token_usage): each call is a difference
        out.append({"timestamp": f"2025-10-01T10:0{n}:00.000Z", "type": "event_msg",
                    "payload": {"type": "token_count", "info": {"total_token_usage": total}}})
        if n == 3:  # a repeated event (same running total) on the boundary below
            out.append(out[-1])
    return out


def test_codex_append_resumes_session_model_and_running_total(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    root.mkdir()
    f = root / "rollout-2025-10-01T10-00-00-abc.jsonl"
    lines = [json.dumps(x) + "\n" for x in _codex_lines("sess-1")]
    f.write_text("".join(lines[:6]))  # up to the repeated event
    db = tmp_path / "u.duckdb"
    first = _import("codex", root, db)
    assert first.accepted == 3
    f.write_text("".join(lines))
    again = _import("codex", root, db)
    assert again.appended_files == 1 and again.lines == len(lines) - 6
    ref = tmp_path / "ref.duckdb"
    _import("codex", root, ref)
    assert _snapshot(db) == _snapshot(ref)
    with open_store(db) as st:
        rows = st.con.execute("SELECT session_id, model, count(*), sum(input_tokens + "
                              "cache_read_tokens) FROM calls GROUP BY ALL").fetchall()
    assert rows == [("sess-1", "gpt-5-codex", 6, 210)]


def test_python_reader_stops_at_the_size_it_saw(claude_dir: Path, tmp_path: Path) -> None:
    """The offset recorded is the bytes read, so a line written during an import is
    read by the next one (never skipped)."""
    f = sorted((claude_dir / "projects").rglob("*.jsonl"))[0]
    lines = f.read_bytes().splitlines(keepends=True)
    f.write_bytes(b"".join(lines[:5]))
    imp = get_importer("claude-code")
    stats = ImportStats(format="claude-code")
    with open_store(tmp_path / "u.duckdb") as st:
        import_files(imp, [f], st, stats)
        size = st.con.execute("SELECT size_bytes FROM imports").fetchall()[0][0]
    assert size == sum(len(x) for x in lines[:5])


def test_appended_lesser_copy_does_not_replace_the_stored_one(
        claude_dir: Path, tmp_path: Path) -> None:
    """ccusage's rule across the old and new parts: a sidechain replay of a main-chain
    call (more tokens) or a copy with fewer tokens never replaces the stored copy."""
    f = sorted((claude_dir / "projects").rglob("*.jsonl"))[0]
    lines = f.read_bytes().splitlines(keepends=True)
    calls = [json.loads(x) for x in lines]
    n, main = next((n, d) for n, d in enumerate(calls)
                   if (d.get("message") or {}).get("usage") and not d.get("isSidechain"))
    replay = json.loads(json.dumps(main))
    replay["isSidechain"] = True
    replay["message"]["usage"]["output_tokens"] += 1000
    fewer = json.loads(json.dumps(main))
    fewer["message"]["usage"]["output_tokens"] = 0
    fewer["message"]["usage"]["input_tokens"] = 0
    extra = (json.dumps(replay) + "\n" + json.dumps(fewer) + "\n").encode()
    db = tmp_path / "u.duckdb"
    _import("claude-code", claude_dir, db)
    before = _snapshot(db)
    f.write_bytes(b"".join(lines) + extra)
    st = _import("claude-code", claude_dir, db)
    assert st.appended_files == 1 and st.lines == 2 and st.engine == "msgspec"
    assert _snapshot(db) == before
    ref = tmp_path / "ref.duckdb"
    _import("claude-code", claude_dir, ref)
    assert _snapshot(ref) == before
    del n
