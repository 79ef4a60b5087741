"""The core CLI commands: cost, usage, prices."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ctxbudget.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "prices-2026.yaml"
ACCEPTANCE = ["cost", "--model", "claude-sonnet-4-5", "--provider", "anthropic",
              "--input", "20000", "--cache-read", "60000", "--cache-write-5m", "20000",
              "--output", "5000", "--at", "2026-06-01", "--json"]


def run(args: list[str], stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, args, input=stdin)


def run_json(args: list[str], stdin: str | None = None) -> Any:
    r = run(args, stdin)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_cost_acceptance_json() -> None:
    d = run_json(ACCEPTANCE)
    assert d["total_usd"] == "0.228"
    assert (d["provider"], d["model"], d["at"]) == ("anthropic", "claude-sonnet-4-5", "2026-06-01")
    by = {b["bucket"]: b for b in d["buckets"]}
    assert by["cache_read_tokens"] == {"bucket": "cache_read_tokens", "tokens": 60000,
                                       "rate_mtok": "0.3", "usd": "0.018"}
    assert by["cache_write_5m_tokens"]["usd"] == "0.075"
    assert d["tier_applied"] is False


def test_cost_with_example_prices() -> None:
    d = run_json(["cost", "--prices", str(EXAMPLE), "--model", "claude-sonnet-4-6",
                  "--provider", "anthropic", "--input", "100000", "--at", "2026-06-01",
                  "--json"])
    assert d["total_usd"] == "0.30"
    assert d["source"].startswith("overrides:prices-2026.yaml")


def test_cost_table_output() -> None:
    r = run(ACCEPTANCE[:-1])
    assert r.exit_code == 0
    assert "0.228" in r.stdout
    assert "cache_read_tokens" in r.stdout


def test_cost_service_tier() -> None:
    std = run_json(["cost", "--model", "gpt-4.1", "--provider", "openai", "--input", "1000000",
                    "--at", "2026-11-01", "--json"])
    batch = run_json(["cost", "--model", "gpt-4.1", "--provider", "openai", "--input", "1000000",
                      "--at", "2026-11-01", "--service-tier", "batch", "--json"])
    assert (Decimal(std["total_usd"]), Decimal(batch["total_usd"])) == (2, 1)
    assert batch["service_tier"] == "batch"


def test_unknown_model_one_line_exit_2_subprocess() -> None:
    p = subprocess.run([sys.executable, "-m", "ctxbudget.cli.main", "cost", "--model",
                        "claude-sonet-4-5", "--provider", "anthropic", "--input", "10"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert "claude-sonet-4-5" in lines[0]
    assert "claude-sonnet-4-5" in lines[0]  # a near match
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["cost", "--model", "gpt-4o", "--at", "2024-13-01"], "--at"),
        (["cost", "--model", "gpt-4o", "--at", "yesterday"], "--at"),
        (["prices", "gpt-4o", "--at", "01/02/2026"], "--at"),
    ],
)
def test_bad_date_exit_2(args: list[str], needle: str) -> None:
    r = run(args)
    assert r.exit_code == 2
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_bad_prices_file_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("prices:\n  - model: x\n    input_mtok: -3\n    output_mtok: 1\n")
    r = run(["cost", "--model", "x", "--prices", str(bad)])
    assert r.exit_code == 2
    assert str(bad) in r.stderr and "input_mtok" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- usage


def _anthropic_body(data_dir: Path, i: int) -> dict[str, Any]:
    doc = yaml.safe_load((data_dir / "api-responses" / "test_anthropic_cache_real_api.yaml")
                         .read_text(encoding="utf-8"))
    body: dict[str, Any] = doc["interactions"][i]["response"]["parsed_body"]
    return body


def test_usage_file_json(data_dir: Path, tmp_path: Path) -> None:
    f = tmp_path / "resp.json"
    f.write_text(json.dumps(_anthropic_body(data_dir, 1)))
    d = run_json(["usage", "--provider", "anthropic", str(f), "--json"])
    assert d["input_tokens"] == 3
    assert d["cache_read_tokens"] == 1111
    assert d["cache_write_5m_tokens"] == 418
    assert d["output_tokens"] == 33
    assert d["prompt_tokens"] == 1532
    assert d["source_input_inclusive"] is False
    assert d["request_id"] == "msg_01KPaKTJSqAKoZri7Ujrny58"


def test_usage_stdin(data_dir: Path) -> None:
    body = _anthropic_body(data_dir, 0)
    d = run_json(["usage", "--provider", "anthropic", "-", "--json"], stdin=json.dumps(body))
    assert (d["input_tokens"], d["cache_read_tokens"], d["output_tokens"]) == (3, 1111, 406)
    # an OpenAI usage object on stdin
    d = run_json(["usage", "-p", "openai", "-", "--json"], stdin=json.dumps(
        {"prompt_tokens": 4020, "completion_tokens": 4,
         "prompt_tokens_details": {"cached_tokens": 4012}}))
    assert (d["input_tokens"], d["cache_read_tokens"], d["source_input_inclusive"]) == \
        (8, 4012, True)


def test_usage_table(data_dir: Path) -> None:
    r = run(["usage", "--provider", "anthropic", "-"],
            stdin=json.dumps(_anthropic_body(data_dir, 1)))
    assert r.exit_code == 0
    assert "cache_write_5m_tokens" in r.stdout and "1,111" in r.stdout


def test_usage_errors(tmp_path: Path) -> None:
    r = run(["usage", "--provider", "openai", "-"],
            stdin='{"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}')
    assert r.exit_code == 2
    assert "cached_tokens" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.json"
    bad.write_text('{"usage": \n  {')
    r = run(["usage", "--provider", "anthropic", str(bad)])
    assert r.exit_code == 2
    assert f"{bad}:" in r.stderr and "JSON" in r.stderr
    r = run(["usage", "--provider", "anthropic", str(tmp_path / "missing.json")])
    assert r.exit_code == 2
    assert "missing.json" in r.stderr
    r = run(["usage", "--provider", "cohere", "-"], stdin="{}")
    assert r.exit_code == 2
    assert "cohere" in r.stderr


# --------------------------------------------------------------------------- prices


def test_prices_pattern_json() -> None:
    rows = run_json(["prices", "sonnet-4-5", "--at", "2026-06-01", "--json"])
    assert rows
    ours = [r for r in rows if (r["provider"], r["model"]) == ("anthropic", "claude-sonnet-4-5")]
    assert len(ours) == 1
    row = ours[0]
    assert (row["input_mtok"], row["output_mtok"], row["cache_read_mtok"]) == ("3", "15", "0.3")
    assert row["tiers"][0]["above_prompt_tokens"] == 200000
    assert row["source"].startswith("genai-prices")
    assert all("sonnet-4-5" in r["model"].lower() or "sonnet-4-5" in r["provider"]
               for r in rows)


def test_prices_with_overrides_table() -> None:
    r = CliRunner().invoke(app, ["prices", "gemini-3.5", "--prices", str(EXAMPLE)],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "gemini-3.5-flash" in r.stdout and "overrides" in r.stdout


def test_version_and_bare_invocation() -> None:
    from typer.testing import CliRunner

    from ctxbudget import __version__
    from ctxbudget.cli.main import app

    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == __version__
    res = CliRunner().invoke(app, [])
    assert res.exit_code == 0 and "Usage" in res.output and "cost" in res.output
