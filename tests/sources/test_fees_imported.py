"""Imported responses with server-side tool fees, sampling iterations or modality detail:
the report's total equals ``ctxbudget usage FILE --cost`` on the same body, exactly.

The recorded real bodies of ``tests/core/data/responses`` are written in the formats the
importers read (a Claude Code log line, an Anthropic Message Batches result, an OpenAI
Batch output line) and imported with the CLI; the ``usage --cost`` side is priced at the
same date and service tier the importer stores."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: fees_parity

from typer.testing import CliRunner

from ctxbudget.cli.main import app
from ctxbudget.priced import price_response
from ctxbudget.store import open_store
from fees_parity import (
    ANTHROPIC,
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    assert_same_total,
    body,
    report_total,
    usage_cost,
)

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _import(fmt: str, path: Path, db: Path, *extra: str) -> None:
    r = CliRunner().invoke(app, ["import", fmt, str(path), "--db", str(db), "--json", *extra])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rejected"] == 0


def _line(b: dict[str, Any], n: int = 0) -> dict[str, Any]:
    return {"type": "assistant", "timestamp": AT.isoformat().replace("+00:00", "Z"),
            "sessionId": f"s{n}", "requestId": f"req_{n}", "uuid": f"u{n}", "message": b}


@pytest.mark.parametrize("name", ANTHROPIC)
def test_claude_code_line(name: str, tmp_path: Path) -> None:
    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)
    (folder / "s.jsonl").write_text(json.dumps(_line(body(name))) + "\n")
    _import("claude-code", tmp_path, tmp_path / "u.duckdb")
    assert_same_total(tmp_path / "u.duckdb", usage_cost(name, AT.date()))


def test_claude_code_iterations_fast_and_python_paths_agree(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A log with iteration lines and a web-search line next to plain lines: the fast
    parser (msgspec) leaves the iterations to the adapter's split, and imports the server
    tool counts itself; both ways store the same calls, buckets, detail and cost."""
    from ctxbudget.sources import claude_code

    lines = [_line(body(n), i) for i, n in enumerate(ANTHROPIC)]
    plain = body("anthropic_web_search.json")
    plain = {**plain, "id": "msg_plain", "usage": {**plain["usage"], "server_tool_use": {
        "web_search_requests": 0, "web_fetch_requests": 0}}}
    lines.append(_line(plain, 9))
    stores = {}
    for way in ("fast", "python"):
        root = tmp_path / way
        (root / "projects" / "p").mkdir(parents=True)
        # one file the fast path reads whole (no iterations), one it hands over
        (root / "projects" / "p" / "a.jsonl").write_text(
            "".join(json.dumps(x) + "\n" for x in (lines[0], lines[1], lines[4])))
        (root / "projects" / "p" / "b.jsonl").write_text(
            "".join(json.dumps(x) + "\n" for x in (lines[2], lines[3])))
        db = root / "u.duckdb"
        if way == "python":  # every file read line by line
            monkeypatch.setattr(claude_code.ClaudeCodeImporter, "import_fast",
                                lambda self, files, *a, **k: list(files))
        _import("claude-code", root, db)
        with open_store(db) as st:
            stores[way] = st.con.execute(
                "SELECT call_key, model, input_tokens, cache_read_tokens, cache_write_5m_tokens,"
                " cache_write_1h_tokens, output_tokens, reasoning_tokens, web_search_requests,"
                " web_fetch_requests, code_execution_requests FROM calls ORDER BY call_key"
            ).fetchall()
    assert stores["fast"] == stores["python"]
    # web search, web fetch, the advisor's 3 iterations (one at its own model), the
    # compaction's 2, the plain line
    assert len(stores["fast"]) == 1 + 1 + 3 + 2 + 1
    assert [r[1] for r in stores["fast"]].count("claude-opus-4-8") == 1
    assert sorted(r[8] for r in stores["fast"] if r[8] is not None) == [0, 0, 0, 1]
    expected = sum((Decimal(usage_cost(n, AT.date())["total_usd"]) for n in ANTHROPIC),
                   price_response(plain, at=AT).total_usd)
    for way in stores:
        assert Decimal(str(report_total(tmp_path / way / "u.duckdb")["cost_usd"])) == expected


@pytest.mark.parametrize("name", ANTHROPIC)
def test_anthropic_batch_result(name: str, tmp_path: Path) -> None:
    f = tmp_path / "results.jsonl"
    f.write_text(json.dumps({"custom_id": "item-1", "result": {
        "type": "succeeded", "message": body(name)}}) + "\n")
    os.utime(f, (AT.timestamp(), AT.timestamp()))  # the importer's call time
    _import("anthropic-batch", f, tmp_path / "u.duckdb")
    assert_same_total(tmp_path / "u.duckdb", usage_cost(name, AT.date(), service_tier="batch"))


@pytest.mark.parametrize("name", OPENAI_CHAT + OPENAI_RESPONSES)
def test_openai_batch_output_line(name: str, tmp_path: Path) -> None:
    b = body(name)
    created = b.get("created", b.get("created_at"))
    f = tmp_path / "out.jsonl"
    f.write_text(json.dumps({"id": "batch_req_1", "custom_id": "item-1", "error": None,
                             "response": {"status_code": 200, "request_id": "r1",
                                          "body": b}}) + "\n")
    _import("openai-batch", f, tmp_path / "u.duckdb")
    at = datetime.fromtimestamp(created, UTC).date() if isinstance(created, int) else AT.date()
    assert_same_total(tmp_path / "u.duckdb", usage_cost(name, at, service_tier="batch"))
