"""``ctxbudget pack``: JSON output, spec input, one-line errors with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ctxbudget.cli.main import app

INPUT = {
    "system": "You are a support agent.",
    "tools": [{"name": "lookup", "description": "find an order",
               "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}}}],
    "messages": [
        {"role": "user", "content": "where is my order 42?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup",
                                           "input": {"id": "42"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "shipped yesterday"}]},
        {"role": "assistant", "content": "It shipped yesterday."}],
    "chunks": [{"id": "faq-1", "text": "Orders ship in 2 days. Tracking by email.", "score": 0.8}],
    "user": "and when will it arrive?",
    "volatile": "today: 2026-11-28",
}


def _write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "in.json"
    p.write_text(json.dumps(data), encoding="utf-8")
    return p


def test_pack_json_anthropic(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["pack", str(_write(tmp_path, INPUT)), "--window", "8000",
                                 "--model", "gpt-4.1", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    body, ledger = out["body"], out["ledger"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant",
                                                     "user"]
    assert body["messages"][-1]["content"][-1]["text"] == "and when will it arrive?"
    assert ledger["total_tokens"] == sum(ledger["components"].values()) <= ledger["limit"]
    assert len(ledger["prefix_fingerprint"]) == 9


def test_pack_openai_responses_with_spec(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("window: 16000\noutput_reserve: 1000\nmodels: [gpt-4.1]\n"
                    "allocation:\n  preset: seed-32k\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["pack", str(_write(tmp_path, INPUT)), "--spec", str(spec),
                                 "--provider", "openai", "--api", "responses", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["body"]["max_output_tokens"] == 1000
    assert out["ledger"]["limit"] == 15000
    assert out["ledger"]["budgets"]["retrieved"] == 4000  # 25% of 16000
    kinds = [i.get("type", i.get("role")) for i in out["body"]["input"]]
    assert kinds == ["system", "user", "function_call", "function_call_output", "assistant",
                     "user"]


def test_pack_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["pack", str(tmp_path / "missing.json"), "--window", "100"])
    assert r.exit_code == 2 and "missing.json" in r.stderr and "Traceback" not in r.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"messages": [\n  oops]}', encoding="utf-8")
    r = runner.invoke(app, ["pack", str(bad), "--window", "100"])
    assert r.exit_code == 2 and "bad.json:2" in r.stderr
    r = runner.invoke(app, ["pack", str(_write(tmp_path, {"mesages": []})), "--window", "100"])
    assert r.exit_code == 2 and "mesages" in r.stderr
    r = runner.invoke(app, ["pack", str(_write(tmp_path, INPUT)), "--window", "100",
                            "--output-reserve", "50", "--model", "gpt-4.1"])
    assert r.exit_code == 1 and "over the limit of 50" in r.stderr
    r = runner.invoke(app, ["pack", str(_write(tmp_path, {"messages": [{"role": "sys"}]})),
                            "--window", "10000"])
    assert r.exit_code == 2 and "in.json: messages[0]: role must be" in r.stderr
    r = runner.invoke(app, ["pack", str(_write(tmp_path, INPUT))])
    assert r.exit_code == 2 and "--window" in r.stderr
