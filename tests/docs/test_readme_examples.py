"""The figures the README quotes are what the commands print today."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from ctxbudget.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _run(*args: str) -> str:
    res = CliRunner().invoke(app, list(args), env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    return res.output


def test_cost_example_matches_readme() -> None:
    out = json.loads(_run("cost", "--model", "claude-sonnet-4-5", "--provider", "anthropic",
                          "--input", "20000", "--cache-read", "60000", "--cache-write-5m", "20000",
                          "--output", "5000", "--json"))
    assert out["total_usd"] == "0.228"
    assert "│ total                 │ 105,000 │        │ 0.228 │" in README
    seed = json.loads(_run("cost", "--prices", str(ROOT / "examples" / "prices-2026.yaml"),
                           "--model", "claude-sonnet-4-6", "--input", "100000", "--json"))
    assert seed["total_usd"] == "0.30"


def test_plan_example_matches_readme() -> None:
    out = json.loads(_run("plan", str(ROOT / "examples" / "seed-example.yaml"), "--json"))
    t15 = out["turns"][14]
    session = out["session"]
    quoted = {
        '"fixed_tokens": 2200': out["fixed_tokens"] == 2200,
        '"variable_tokens": 12700': t15["variable_tokens"] == 12700,
        '"context_tokens": 14900': t15["context_tokens"] == 14900,
        '"prompt_tokens": 148500': session["prompt_tokens"] == 148500,
        f'"cost_usd": "{session["cost_usd"]}"': True,
        f'"input_cost_usd": "{session["input_cost_usd"]}"': True,
        f'"input_cost_uncached_usd": "{session["input_cost_uncached_usd"]}"': True,
    }
    flat = re.sub(r"\s+", " ", README)
    for text, ok in quoted.items():
        assert ok, text
        assert text in flat, f"README no longer quotes {text}"


def test_usage_cost_example_matches_readme() -> None:
    data = ROOT / "tests" / "core" / "data" / "responses" / "anthropic_compaction.json"
    out = json.loads(_run("usage", str(data), "--cost", "--json", "--at", "2026-06-01"))
    assert out["usage"]["cache_write_5m_tokens"] == 55_096
    assert f'`"total_usd": "{out["total_usd"]}"`' in README
    assert "55,096" in README and "229 input + 5 output" in README
