"""Batch files priced right (issue #11): the provider from the body or the model, the
documented batch discount for dates the catalog lacks, one call per Anthropic iteration."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from ctxbudget.cli.main import app
from ctxbudget.sources import get_importer, import_paths
from ctxbudget.store import open_store

DATA = Path(__file__).parent / "data" / "batch"
RESPONSES = Path(__file__).parents[1] / "core" / "data" / "responses"
M = Decimal(1_000_000)


def _import_and_report(tmp_path: Path, fmt: str, path: Path, *extra: str) -> dict[str, Any]:
    db = tmp_path / "u.duckdb"
    runner = CliRunner()
    res = runner.invoke(app, ["import", fmt, str(path), "--db", str(db), "--json", *extra])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["rejected"] == 0
    res = runner.invoke(app, ["report", "--by", "model", "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    return {r["key"]: r for r in json.loads(res.output)["rows"]}


def test_openai_batch_file_of_2024_is_priced_at_half_the_standard_rate(tmp_path: Path) -> None:
    rows = _import_and_report(tmp_path, "openai-batch", DATA / "openai_batch_2024.jsonl")
    r = rows["gpt-4o-mini-2024-07-18"]
    assert (r["calls"], r["input_tokens"], r["output_tokens"], r["unpriced_calls"]) == (
        2, 42, 20, 0)
    # gpt-4o-mini on 2024-12-23: $0.15 / $0.60 per million; batch = 50% (openai-batch-50)
    assert Decimal(r["cost_usd"]) == (42 * Decimal("0.075") + 20 * Decimal("0.30")) / M
    assert Decimal(r["cost_usd"]) * 2 == (42 * Decimal("0.15") + 20 * Decimal("0.60")) / M


def test_groq_batch_file_imports_priced(tmp_path: Path) -> None:
    with open_store(tmp_path / "g.duckdb") as st:
        stats = import_paths(get_importer("openai-batch"), [DATA / "groq_batch.jsonl"], st)
        assert stats.accepted == 1
        (prov,) = st.con.execute("SELECT provider FROM calls").fetchone() or ("",)
    assert prov == "groq"
    rows = _import_and_report(tmp_path, "openai-batch", DATA / "groq_batch.jsonl")
    r = rows["llama-3.3-70b-versatile"]
    assert r["unpriced_calls"] == 0
    # llama-3.3-70b-versatile: $0.59 / $0.79 per million, batch 50% (groq-batch-50)
    assert Decimal(r["cost_usd"]) == (48 * Decimal("0.295") + 8 * Decimal("0.395")) / M


def test_provider_option_forces_the_catalog_provider(tmp_path: Path) -> None:
    rows = _import_and_report(tmp_path, "openai-batch", DATA / "openai_batch_2024.jsonl",
                              "--provider", "azure")
    assert rows["gpt-4o-mini-2024-07-18"]["calls"] == 2
    with open_store(tmp_path / "u.duckdb") as st:
        assert st.con.execute("SELECT DISTINCT provider FROM calls").fetchall() == [("azure",)]


def test_anthropic_batch_compaction_result_is_one_call_per_iteration(tmp_path: Path) -> None:
    msg = json.loads((RESPONSES / "anthropic_compaction.json").read_text())
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"custom_id": "c1", "result": {"type": "succeeded",
                                                            "message": msg}}) + "\n")
    with open_store(tmp_path / "a.duckdb") as st:
        import_paths(get_importer("anthropic-batch"), [path], st)
        rows = st.con.execute(
            "SELECT request_id, input_tokens, cache_write_5m_tokens, output_tokens, meta "
            "FROM calls ORDER BY request_id").fetchall()
    mid = msg["id"]
    assert [r[:4] for r in rows] == [(mid, 229, 0, 5), (f"{mid}#0", 100, 55_096, 131)]
    assert json.loads(rows[1][4])["iteration_type"] == "compaction"
