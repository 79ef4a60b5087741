"""The projection: the seed's worked example, allocation presets, distributions, policies."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ctxbudget
from ctxbudget.cli.main import app
from ctxbudget.plan import project, turns_distribution
from ctxbudget.plan.spec import SessionSpec


def _json(args: list[str]) -> dict:  # type: ignore[type-arg]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)  # type: ignore[no-any-return]


def test_seed_example_acceptance(root_dir: Path) -> None:
    d = _json(["plan", str(root_dir / "examples" / "seed-example.yaml"), "--json"])
    assert d["fixed_tokens"] == 2200
    t15 = d["turns"][14]
    assert t15["turn"] == 15 and t15["variable_tokens"] == 12700
    assert t15["context_tokens"] == 14900
    assert t15["components"] == {"system_prompt": 400, "tools": 1600, "safety": 200,
                                 "history": 10000, "retrieved": 2500, "tool_outputs": 0,
                                 "user_message": 200, "output": 514}
    # exact session input (see docs/plan.md): 15 x 4,900 + 10,000 x 105 / 14 = 148,500
    s = d["session"]
    assert s["prompt_tokens"] == 148500
    assert s["input_cost_uncached_usd"] == "0.445500"
    # cached: 115,500 x 3 + 30,800 x 0.30 + 2,200 x 3.75 = 363,990 micro-dollars
    assert s["usage"]["input_tokens"] == 115500 and s["usage"]["cache_read_tokens"] == 30800
    assert s["usage"]["cache_write_5m_tokens"] == 2200
    assert s["input_cost_usd"] == "0.363990"


def test_seed_32k_allocation(root_dir: Path) -> None:
    d = _json(["plan", str(root_dir / "examples" / "seed-example.yaml"), "--window", "32000",
               "--preset", "seed-32k", "--json"])
    rows = {a["bucket"]: a for a in d["allocation"]}
    assert [a["target_tokens"] for a in d["allocation"]] == [4800, 8000, 9600, 6400, 3200]
    assert d["peak_turn"] == 15
    assert {b: r["actual_tokens"] for b, r in rows.items()} == {
        "system_tools": 2200, "retrieved": 2500, "history": 10000, "tool_outputs": 0,
        "user_output": 714}
    assert rows["history"]["status"] == "over" and rows["history"]["first_turn_over"] == 15
    assert rows["retrieved"]["status"] == "ok"
    assert d["overflow"] == {"turn": None, "component": "history", "component_turn": 15,
                             "rule": "the allocation bucket that exceeds its target first"}


def test_overflow_turn(write_spec: Callable[[str], Path]) -> None:
    p = project(write_spec("""\
prices: prices.yaml
models: [{model: test-sonnet, provider: anthropic}]
window: 10000
fixed: {system_prompt: {tokens: 1000}}
variable:
  history: {tokens_per_turn: 1000}
  retrieved: {chunks: 4, chunk_tokens: 500}
  output: {tokens: 500}
session: {turns: 10}
"""))
    # prompt at turn t = 1000 + 1000 (t-1) + 2000; + 500 reserve > 10000 from t = 8
    assert p.overflow_turn == 8
    assert p.overflow_component == "history" and p.overflow_component_turn == 8
    assert any("overflows at turn 8" in w for w in p.warnings)


def test_distributions_are_exact() -> None:
    d = turns_distribution(SessionSpec.model_validate(
        {"turns": {"distribution": "uniform", "min": 1, "max": 4}}))
    assert d.support == (1, 2, 3, 4) and d.mean == pytest.approx(2.5)
    assert (d.quantile(0.5), d.quantile(0.9), d.quantile(0.99)) == (2, 4, 4)
    n = turns_distribution(SessionSpec.model_validate(
        {"turns": {"distribution": "normal", "mean": 10, "sd": 2}}))
    assert sum(n.probs) == pytest.approx(1.0) and n.support[-1] == 18
    assert n.mean == pytest.approx(10.0, abs=1e-3) and n.quantile(0.5) == 10
    e = turns_distribution(SessionSpec.model_validate(
        {"turns": {"distribution": "empirical", "values": [3, 3, 5, 20]}}))
    assert e.support == (3, 5, 20) and e.probs == (0.5, 0.25, 0.25)
    assert e.quantile(0.9) == 20


def test_task_cost_distribution(write_spec: Callable[[str], Path]) -> None:
    p = project(write_spec("""\
prices: prices.yaml
models: [{model: test-sonnet, provider: anthropic}]
fixed: {system_prompt: {tokens: 2000}}
variable:
  history: {tokens_per_turn: 500}
  user_message: {tokens: 100}
  output: {tokens: 100}
session:
  turns: {distribution: empirical, values: [1, 2, 3, 10]}
  tasks_per_day: 100
"""))
    cum = []
    acc = Decimal(0)
    for t in p.turns:
        acc += t.cost_usd
        cum.append(acc)
    expected = (cum[0] + cum[1] + cum[2] + cum[9]) / 4
    assert p.task.expected_usd == expected.quantize(Decimal("0.0000000001"))
    assert (p.task.p50_turns, p.task.p90_turns, p.task.p99_turns) == (2, 10, 10)
    assert p.task.p50_usd == cum[1] and p.task.p99_usd == cum[9]
    assert p.task.month_usd == (p.task.expected_usd * 3000).quantize(Decimal("0.0000000001"))
    assert p.reference_turns == 2


def test_history_policies(root_dir: Path) -> None:
    p = project(root_dir / "examples" / "seed-example.yaml")
    by = {q.policy: q for q in p.policies}
    none = by["none"]
    slide = by["sliding_window(turns=6)"]
    summ = by["summarize(at=6000,to=1000)"]
    # a 6-turn window keeps the last 6 turns: history(t) - history(t - 6), with
    # history(t) = round(10000 (t-1) / 14)
    h = [round(10000 * (t - 1) / 14) for t in range(1, 16)]
    windows = [h[t - 1] - h[max(t - 7, 0)] for t in range(1, 16)]
    assert list(slide.context_tokens) == [2200 + 2500 + 200 + w for w in windows]
    assert max(slide.context_tokens) == 4900 + 4286
    assert slide.session.cost_usd < none.session.cost_usd
    # summarizing at 6,000 caps the history and costs one summary call
    assert max(summ.context_tokens) < max(none.context_tokens)
    assert sum(t.calls for t in project(root_dir / "examples" / "seed-example.yaml").turns) == 15
    # identical for the first turns, before any policy acts
    assert none.cost_per_turn_usd[:6] == slide.cost_per_turn_usd[:6]


def test_sliding_window_rewrites_history_cache(write_spec: Callable[[str], Path]) -> None:
    base = """\
prices: prices.yaml
models: [{{model: test-sonnet, provider: anthropic}}]
fixed: {{system_prompt: {{tokens: 2000}}}}
variable:
  history: {{tokens_per_turn: 500}}
  user_message: {{tokens: 100}}
session: {{turns: 6}}
caching: {{history: true}}
history_policies: [{policy}]
"""
    none = project(write_spec(base.format(policy="none")))
    slide = project(write_spec(base.format(policy="{sliding_window: {turns: 2}}")))
    # with no policy the rolling breakpoint reads the whole previous history
    assert [t.usage.cache_read_tokens for t in none.turns] == [0, 2000, 2500, 3000, 3500, 4000]
    # a sliding window drops the oldest turn: the history prefix changes, only fixed is read
    assert [t.usage.cache_read_tokens for t in slide.turns][3:] == [2000, 2000, 2000]
    assert [t.usage.cache_write_5m_tokens for t in slide.turns][3:] == [1000, 1000, 1000]


def test_python_api_callable_module(root_dir: Path) -> None:
    spec = root_dir / "examples" / "seed-example.yaml"
    a = ctxbudget.plan(spec)  # type: ignore[operator]
    b = ctxbudget.project(spec)  # type: ignore[attr-defined]
    assert a.as_dict() == b.as_dict()
    assert ctxbudget.load_spec(spec).spec.session.turns == 15  # type: ignore[attr-defined]


def test_chart_html_is_self_contained(root_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.html"
    r = CliRunner().invoke(app, ["plan", str(root_dir / "examples" / "seed-example.yaml"),
                                 "--chart", str(out), "--json"])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    import re

    assert not re.search(r"<script[^>]+src=", html) and "Plotly.newPlot" in html
    assert len(html) > 1_000_000  # plotly.js inlined
    assert "sliding_window(turns=6)" in html


def test_chart_png_without_kaleido(root_dir: Path, tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("kaleido") is not None:
        pytest.skip("kaleido is installed here")
    r = CliRunner().invoke(app, ["plan", str(root_dir / "examples" / "seed-example.yaml"),
                                 "--chart", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and ".html" in r.output and not (tmp_path / "x.png").exists()


def test_rich_render(root_dir: Path) -> None:
    r = CliRunner().invoke(app, ["plan", str(root_dir / "examples" / "seed-example.yaml"),
                                 "--window", "32000", "--preset", "seed-32k"])
    assert r.exit_code == 0, r.output
    for text in ("Per turn", "Allocation at the peak turn 15", "History policies",
                 "Models (right-size)", "claude-haiku-4-5"):
        assert text in r.output


def test_docs_walkthrough_numbers_are_current(root_dir: Path, tmp_path: Path) -> None:
    """docs/plan.md quotes these figures; recompute them so the walkthrough cannot drift."""
    doc = (root_dir / "docs" / "plan.md").read_text(encoding="utf-8")
    spec = root_dir / "examples" / "seed-example.yaml"
    p = project(spec)
    s = p.session
    assert (s.prompt_tokens, s.usage.input_tokens, s.usage.cache_read_tokens) == (
        148500, 115500, 30800)
    assert (s.input_cost_uncached_usd, s.input_cost_usd) == (Decimal("0.4455"),
                                                             Decimal("0.36399"))
    assert (s.cost_uncached_usd, s.cost_usd) == (Decimal("0.56115"), Decimal("0.47964"))
    for text in ("148,500", "$0.445500", "$0.363990", "$0.561150", "$0.479640", "18.3%",
                 "115,500 input + 30,800 read + 2,200 written", "9,186", "$0.4025", "$0.4162",
                 "$0.1496"):
        assert text in doc, text
    by = {q.policy: q for q in p.policies}
    assert max(by["sliding_window(turns=6)"].context_tokens) == 9186
    assert round(by["sliding_window(turns=6)"].session.cost_usd, 4) == Decimal("0.4025")
    assert round(by["summarize(at=6000,to=1000)"].session.cost_usd, 4) == Decimal("0.4162")
    assert round(p.models[1].session.cost_usd, 4) == Decimal("0.1496")
    # the agent-style variant: history cached with a rolling breakpoint
    text = spec.read_text().replace("history: false ", "history: true ").replace(
        "prices: prices-2026.yaml", f"prices: {root_dir / 'examples' / 'prices-2026.yaml'}")
    (tmp_path / "hist.yaml").write_text(text)
    h = project(tmp_path / "hist.yaml").session
    assert (h.usage.input_tokens, h.usage.cache_read_tokens, h.usage.cache_write_tokens) == (
        40500, 95800, 12200)
    assert h.input_cost_usd == Decimal("0.19599") and "$0.19599" in doc
    assert f"{h.input_savings_pct:.1f}%" == "56.0%" and "56.0%" in doc
