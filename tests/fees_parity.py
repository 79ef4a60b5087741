"""What the fee / iteration / modality parity tests compare (issue #11, one code path).

For a recorded real response body (``tests/core/data/responses``), the total that
``ctxbudget usage FILE --cost --json`` prints must equal the ``report --json`` total of a
store holding that response however it got there: tracked through a real SDK, through
the gateway, or imported. Importable from any test module (``tests`` is on
``sys.path`` through its ``conftest.py``).
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from ctxbudget.cli.main import app

RESPONSES = Path(__file__).parent / "core" / "data" / "responses"

#: The recorded bodies with server-side tool fees, sampling iterations or modality
#: detail, by the API that returns them.
ANTHROPIC = ("anthropic_web_search.json", "anthropic_web_fetch.json",
             "anthropic_advisor.json", "anthropic_compaction.json")
OPENAI_CHAT = ("openai_chat_audio_input.json",)
OPENAI_RESPONSES = ("openai_responses_web_search.json",)
#: OpenAI-compatible Chat bodies: (file, catalog provider).
COMPATIBLE = (("openrouter_web_search.json", "openrouter"),
              ("openrouter_usage.json", "openrouter"), ("xai_web_search.json", "x-ai"))
GEMINI = ("gemini_grounding.json", "gemini_audio_input.json", "gemini_video_input.json",
          "gemini_image_output.json")


def body(name: str) -> dict[str, Any]:
    return dict(json.loads((RESPONSES / name).read_text()))


def _run(args: list[str]) -> dict[str, Any]:
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return dict(json.loads(r.stdout))


def usage_cost(name: str, at: date, *, provider: str | None = None,
               service_tier: str | None = None) -> dict[str, Any]:
    """``ctxbudget usage FILE --cost --json`` on a recorded body, priced at ``at``."""
    args = ["usage", str(RESPONSES / name), "--cost", "--json", "--at", at.isoformat()]
    if provider:
        args += ["--catalog-provider", provider]
    if service_tier:
        args += ["--service-tier", service_tier]
    return _run(args)


def report_total(db: Path) -> dict[str, Any]:
    """The total row of ``ctxbudget report --db DB --by model --json``."""
    out = _run(["report", "--db", str(db), "--by", "model", "--json"])
    total = out["total"]
    assert total is not None
    total["unpriced_fees"] = out["unpriced_fees"]
    return dict(total)


def assert_same_total(db: Path, priced: dict[str, Any]) -> None:
    """The store's report total equals ``usage --cost``'s, exactly, and an unpriced fee
    there is an unpriced fee here (never $0)."""
    total = report_total(db)
    assert Decimal(str(total["cost_usd"])) == Decimal(priced["total_usd"]), (total, priced)
    fees = sum((Decimal(f["usd"]) for f in priced["tool_fees"] if f["usd"] is not None),
               Decimal(0))
    assert Decimal(str(total["tool_fees_usd"])) == fees
    unpriced = [(f["tool"], f["requests"]) for f in priced["tool_fees"] if f["usd"] is None]
    assert [(u["tool"], u["requests"]) for u in total["unpriced_fees"]] == unpriced
    assert total["unpriced_fee_calls"] == (1 if unpriced else 0)
