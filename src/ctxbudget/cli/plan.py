"""``ctxbudget plan`` (projection of a budget spec) and ``ctxbudget simulate`` (synthetic logs)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import console, fail, handles_errors, print_json


def _usd(d: Decimal, places: int = 4) -> str:
    return f"${d:,.{places}f}"


def _render(p: Any) -> None:
    from rich.table import Table

    con = console()
    title = p.name or p.spec_path or "plan"
    con.print(f"[bold]{title}[/bold]  model {p.model}, history policy {p.policy}, "
              f"window {p.window or '?'} ({p.window_source}), output reserve {p.output_reserve}")

    t = Table(title="Fixed vs variable (tokens per call)")
    for c in ("component", "kind", "turn 1", f"peak (turn {p.peak_turn})", "source"):
        t.add_column(c, justify="right" if c.startswith(("turn", "peak")) else "left")
    first, peak = p.turns[0], p.turns[p.peak_turn - 1]
    for f in p.fixed:
        t.add_row(f.name, "fixed", f"{f.tokens:,}", f"{f.tokens:,}",
                  f.source + ("" if f.exact else " (estimate)"))
    for name in ("history", "retrieved", "tool_outputs", "user_message", "output"):
        t.add_row(name, "output" if name == "output" else "variable",
                  f"{first.components.get(name, 0):,}", f"{peak.components.get(name, 0):,}", "")
    t.add_row("context (fixed + variable)", "", f"{first.context_tokens:,}",
              f"{peak.context_tokens:,}", f"fixed {p.fixed_tokens:,}", style="bold")
    con.print(t)

    t = Table(title=f"Per turn: {p.model}, {p.policy} (fixed {p.fixed_tokens:,} per call)")
    acc = Decimal(0)
    cum: list[Decimal] = []
    for r in p.turns:
        acc += r.cost_usd
        cum.append(acc)
    columns: list[tuple[str, Any]] = [
        ("turn", lambda r: str(r.turn)),
        ("history", lambda r: f"{r.components.get('history', 0):,}"),
        ("retrieved", lambda r: f"{r.components.get('retrieved', 0):,}"),
        ("tool out", lambda r: f"{r.components.get('tool_outputs', 0):,}"),
        ("user", lambda r: f"{r.components.get('user_message', 0):,}"),
        ("context", lambda r: f"{r.context_tokens:,}"),
        ("calls", lambda r: str(r.calls)),
        ("read", lambda r: f"{r.usage.cache_read_tokens:,}"),
        ("write", lambda r: f"{r.usage.cache_write_tokens:,}"),
        ("input", lambda r: f"{r.usage.input_tokens:,}"),
        ("output", lambda r: f"{r.usage.output_tokens:,}"),
        ("cost", lambda r: _usd(r.cost_usd)),
        ("no cache", lambda r: _usd(r.cost_uncached_usd)),
        ("cumul.", lambda r: _usd(cum[r.turn - 1])),
    ]
    # drop columns that are the same on every turn (shown in the table above), to fit
    keep = [(h, f) for h, f in columns
            if h in ("turn", "context", "cost", "cumul.") or len({f(r) for r in p.turns}) > 1]
    for h, _ in keep:
        t.add_column(h, justify="right")
    for r in p.turns:
        t.add_row(*(f(r) for _, f in keep))
    con.print(t)

    s = p.session
    t = Table(title=f"Session of {s.turns} turns ({s.calls} calls) and cost per task")
    for c in ("", "with caching", "without caching", "savings"):
        t.add_column(c, justify="right")
    t.add_row("prompt tokens", f"{s.prompt_tokens:,}", f"{s.prompt_tokens:,}", "")
    t.add_row("input cost (prompt only)", _usd(s.input_cost_usd), _usd(s.input_cost_uncached_usd),
              f"{s.input_savings_pct:.1f}%")
    t.add_row("session cost (incl. output)", _usd(s.cost_usd), _usd(s.cost_uncached_usd),
              f"{s.savings_pct:.1f}%")
    k = p.task
    t.add_row(f"expected per task ({p.distribution.kind})", _usd(k.expected_usd),
              _usd(k.expected_uncached_usd), "")
    t.add_row(f"p50 / p90 / p99 per task (turns {k.p50_turns}/{k.p90_turns}/{k.p99_turns})",
              f"{_usd(k.p50_usd)} / {_usd(k.p90_usd)} / {_usd(k.p99_usd)}", "", "")
    if p.tasks_per_day:
        t.add_row(f"per month ({p.tasks_per_day:g} tasks/day x {p.days_per_month:g} days)",
                  _usd(k.month_usd, 2), _usd(k.month_uncached_usd, 2), "")
    con.print(t)

    t = Table(title="Models (right-size)")
    for c in ("model", "caching", "min cacheable", "break-even reuses", "session",
              "cache saves", "per task", "p90", "per month", "x cheapest", "overflow turn"):
        t.add_column(c, justify="left" if c in ("model", "caching") else "right")
    for m in p.models:
        ci = m.caching
        t.add_row(m.model, f"{ci.mode} {ci.ttl}" + (" (below min)" if ci.below_minimum else ""),
                  f"{ci.min_cacheable_tokens:,}",
                  "-" if ci.break_even_reuses is None else str(ci.break_even_reuses),
                  _usd(m.session.cost_usd), f"{m.session.savings_pct:.1f}%",
                  _usd(m.task.expected_usd), _usd(m.task.p90_usd),
                  _usd(m.task.month_usd, 2), f"{m.relative_cost:.2f}",
                  str(m.overflow_turn or "-"))
    con.print(t)

    if len(p.policies) > 1:
        t = Table(title=f"History policies ({p.model})")
        for c in ("policy", "peak context", "last-turn cost", "session", "no cache",
                  "cache read tokens", "cache write tokens", "per task"):
            t.add_column(c, justify="left" if c == "policy" else "right")
        for q in p.policies:
            t.add_row(q.policy, f"{max(q.context_tokens):,}", _usd(q.cost_per_turn_usd[-1]),
                      _usd(q.session.cost_usd), _usd(q.session.cost_uncached_usd),
                      f"{sum(q.cache_read_tokens):,}", f"{sum(q.cache_write_tokens):,}",
                      _usd(q.task.expected_usd))
        con.print(t)

    if p.allocation:
        t = Table(title=f"Allocation at the peak turn {p.peak_turn} "
                        f"({p.allocation_source}, window {p.window:,})")
        for c in ("bucket", "target %", "target", "actual", "status", "first turn over"):
            t.add_column(c, justify="left" if c in ("bucket", "status") else "right")
        for a in p.allocation:
            t.add_row(a.label, f"{a.target_pct:g}%", f"{a.target_tokens:,}",
                      f"{a.actual_tokens:,}",
                      "[red]over[/red]" if a.status == "over" else "ok",
                      str(a.first_turn_over or "-"))
        con.print(t)
    if p.overflow_turn is not None:
        con.print(f"[red]window overflows at turn {p.overflow_turn}[/red]")
    if p.overflow_component is not None:
        con.print(f"first component over: {p.overflow_component} at turn "
                  f"{p.overflow_component_turn} ({p.overflow_rule})")
    for w in p.warnings:
        con.print(f"[yellow]warning:[/yellow] {w}")


@handles_errors
def plan(
    spec: Annotated[Path | None, typer.Argument(help="Budget spec YAML (see docs/plan.md).")]
    = None,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    window: int | None = typer.Option(None, "--window", min=1, help="Context window override."),
    preset: str | None = typer.Option(
        None, "--preset", help="Allocation preset: seed-32k, retrieval-heavy, conversational, "
                               "agentic."),
    turns: int | None = typer.Option(None, "--turns", min=1, help="Force a fixed turn count."),
    prices: Annotated[list[Path] | None,
                      typer.Option("--prices", help="Extra price overrides.")] = None,
    chart: Annotated[Path | None, typer.Option(
        "--chart", help="Write a chart: FILE.html (self-contained) or FILE.png.")] = None,
    schema: bool = typer.Option(False, "--schema", help="Print the spec's JSON Schema and exit."),
) -> None:
    """Project a budget spec: per-turn context and cost, caching, allocation, models, policies."""
    from ..plan import project, spec_json_schema

    if schema:
        print_json(spec_json_schema())
        return
    if spec is None:
        fail("give a budget spec file (or --schema)")
        return
    if chart is not None:
        from ..plan.chart import check_chart_path

        check_chart_path(chart)
    p = project(spec, window=window, preset=preset, turns=turns, prices=tuple(prices or ()))
    if chart is not None:
        from ..plan.chart import write_chart

        write_chart(p, chart)
    if as_json:
        print_json(p.as_dict())
        return
    _render(p)
    if chart is not None:
        console().print(f"chart written to {chart}")


@handles_errors
def simulate(
    spec: Annotated[Path, typer.Argument(help="Budget spec YAML.")],
    tasks: int = typer.Option(..., "--tasks", min=0, help="Number of tasks (sessions)."),
    days: float = typer.Option(1.0, "--days", min=0.0, help="Days the tasks are spread over."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same logs)."),
    failure_rate: float = typer.Option(0.0, "--failure-rate", min=0.0, max=1.0,
                                       help="Share of tasks whose outcome is failure."),
    inject: Annotated[list[str] | None, typer.Option(
        "--inject", help="Regression, e.g. 'system_prompt+30%@day5[:TYPE]', "
                         "'cache-break@day3-3' (see docs/plan.md).")] = None,
    task_types: str | None = typer.Option(
        None, "--task-types", help="Task types and shares: 'support:3,research:1'."),
    start: str | None = typer.Option(None, "--start", help="Day 1 (YYYY-MM-DD, default "
                                                           "2026-01-01)."),
    model: str | None = typer.Option(None, "--model", help="Which spec model (default: first)."),
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write calls to FILE.parquet (tasks to FILE.tasks.parquet).")] = None,
    db: Annotated[Path | None, typer.Option("--db", help="Insert into a DuckDB store.")] = None,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Generate synthetic call logs from a spec (Parquet or a store)."""
    import time
    from datetime import UTC, datetime

    from ..plan.simulate import iter_simulate, write_parquet
    from ._common import parse_day

    if (out is None) == (db is None):
        fail("give exactly one of --out FILE.parquet or --db DB")
    day = parse_day(start, "--start")
    t0 = datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
    began = time.perf_counter()
    chunks, tasks_fn = iter_simulate(spec, tasks=tasks, days=days, seed=seed,
                                     failure_rate=failure_rate, inject=list(inject or []),
                                     task_types=task_types, start=t0, model=model)
    if out is not None:
        _, tasks_path, rows = write_parquet(chunks, tasks_fn, out)
        where = {"calls_file": str(out), "tasks_file": str(tasks_path)}
    else:
        assert db is not None
        rows = _write_store(chunks, tasks_fn, db)
        where = {"db": str(db)}
    secs = time.perf_counter() - began
    summary = {**where, "tasks": tasks, "calls": rows, "seconds": round(secs, 3),
               "calls_per_second": round(rows / secs) if secs > 0 else None}
    if as_json:
        print_json(summary)
    else:
        console().print(f"{rows:,} calls of {tasks:,} tasks written to "
                        f"{', '.join(where.values())} in {secs:.2f} s")


def _write_store(chunks: Any, tasks_fn: Any, db: Path) -> int:
    """Insert simulated calls (Store.insert_arrow, per chunk) and tasks into a store."""
    from ..store import open_store

    rows = 0
    with open_store(db) as store:
        for table in chunks:
            rows += store.insert_arrow(table)
        store.con.register("_sim_tasks", tasks_fn())
        try:
            store.con.execute(
                "INSERT OR REPLACE INTO tasks (task_id, task_type, outcome, started_at, "
                "ended_at, session_id, parent_id, source) SELECT task_id, task_type, outcome, "
                "started_at, ended_at, session_id, parent_id, source FROM _sim_tasks")
        finally:
            store.con.unregister("_sim_tasks")
    return rows


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
    app.command("simulate")(simulate)
