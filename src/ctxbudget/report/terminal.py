"""Terminal renderers: views implementing rich's ``__rich_console__`` protocol.

Analyze results stay plain dataclasses; these wrappers turn them into tables, so
``ctxbudget.analyze`` never imports rich. Tests render them to a string with
``Console(file=io.StringIO(), width=100, color_system=None)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .formats import Column, Grid

if TYPE_CHECKING:  # annotations only: a report's table needs no rules or signals code
    from ..analyze._results import Report
    from ..analyze.rules import CheckResult
    from ..analyze.signals import Signal

__all__ = ["CheckView", "ReportView", "SignalsView", "check_csv_rows", "check_markdown",
           "check_rows", "fmt_metric", "fmt_outcome", "fmt_pct", "fmt_usd", "render_text",
           "report_grids", "signals_csv_rows", "signals_markdown"]


def fmt_usd(v: Decimal | float | None, places: int = 4, missing: str = "unpriced") -> str:
    """Dollars for display; ``missing`` says why there is no figure."""
    if v is None:
        return missing
    return f"${float(v):,.{places}f}"


def _no_success(row: object) -> str:
    """Why cost per successful task is missing: nothing priced, no outcome recorded at
    all (tasks tracked without outcomes), or no success among the recorded ones."""
    if getattr(row, "cost_usd", 1) is None:
        return "unpriced"
    outcomes = sum(int(getattr(row, a, 0) or 0) for a in (
        "success_tasks", "failure_tasks", "partial_tasks", "blocked_tasks", "successes",
        "failures", "partials", "blocked"))
    return "no outcomes recorded" if outcomes == 0 else "no successes"


def fmt_pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _int(v: int) -> str:
    return f"{v:,}"


def _tok(v: int) -> str:
    """Compact token count for tables (exact figures are in --json)."""
    if v < 100_000:
        return f"{v:,}"
    if v < 10_000_000:
        return f"{v / 1000:,.1f}k"
    return f"{v / 1_000_000:,.2f}M"


def report_grids(r: Report, limit: int | None = 50) -> list[Grid]:
    """The report's tables: the ``--by`` rows (first ``limit``) with the total, and the
    cost per task by type."""
    title = f"cost by {r.by}  ({r.source}, {r.engine}"
    if r.filters.tz != "UTC":
        title += f", days in {r.filters.tz}"
    title += ")"
    task = r.by == "task"
    names = ([r.by, "type", "outcome", "calls"] if task else [r.by, "calls", "tasks"])
    names += ["prompt", "output", "cost", "hit"]
    names += ["out/in"] if task else ["wasted", "fail$", "$/succ"]
    unpriced = bool(r.total is not None and r.total.unpriced_calls)
    if unpriced:
        names.insert(names.index("cost") + 1, "unpriced")

    def cells(g: Any, key: str) -> tuple[str, ...]:
        out = ([key, g.task_type or "-", fmt_outcome(g.outcome, g.blocked_by, key),
                _int(g.calls)]
               if task
               else [key, _int(g.calls), _int(g.tasks)])
        out += [_tok(g.prompt_tokens), _tok(g.output_tokens), fmt_usd(g.cost_usd)]
        if unpriced:
            out.append(_int(g.unpriced_calls) if g.unpriced_calls else "-")
        out.append(fmt_pct(g.cache_hit_rate))
        out += ([fmt_ratio(g.output_input_ratio)] if task else
                [fmt_pct(g.wasted_write_share), fmt_pct(g.failed_spend_share),
                 fmt_usd(g.cost_per_success_usd, missing=_no_success(g))])
        return tuple(out)

    rows = [cells(g, g.key) for g in r.top(limit)]
    if r.total is not None:
        tot = list(cells(r.total, "total"))
        if task:
            tot[1:3] = ["", ""]
        rows.append(tuple(tot))
    grids = [Grid(title=title, rows=rows, bold_last=r.total is not None,
                  columns=tuple(Column(c, "left" if c in (r.by, "type", "outcome") else "right")
                                for c in names))]
    if r.types:
        blocked = any(s.blocked for s in r.types)
        tcols = ("type", "tasks", "p50", "p95", "max", "p95 tok", "ok", "failed",
                 *(("blocked",) if blocked else ()), "fail$", "$/succ")
        grids.append(Grid(
            title="cost per task by type",
            columns=tuple(Column(c, "left" if c == "type" else "right") for c in tcols),
            # no task (the calls outside any task): no per-task figure to show
            rows=[(s.task_type, _int(s.tasks),
                   *(fmt_usd(v, missing="unpriced" if s.tasks else "-")
                     for v in (s.p50_cost_usd, s.p95_cost_usd, s.max_cost_usd)),
                   "-" if s.p95_tokens is None else _tok(s.p95_tokens),
                   _int(s.successes), _int(s.failures),
                   *((_int(s.blocked),) if blocked else ()), fmt_pct(s.failed_spend_share),
                   fmt_usd(s.cost_per_success_usd,
                           missing=_no_success(s) if s.tasks else "-"))
                  for s in r.types]))
    return grids


def fmt_outcome(outcome: str | None, blocked_by: dict[str, Any] | None = None,
                task: str | None = None) -> str:
    """A task's outcome; ``blocked`` names the cap (``blocked: max_cost_usd 0.50``, and
    ``of TASK`` when the cap of another task, an ancestor of ``task``, blocked it)."""
    if outcome is None:
        return "-"
    if outcome != "blocked" or not blocked_by:
        return outcome
    text = f"blocked: {blocked_by.get('cap', '?')} {blocked_by.get('limit', '')}".rstrip()
    owner = blocked_by.get("task_id")
    if task is not None and owner and owner != task:
        text += f" of {owner}"
    return text


def report_notes(r: Report, limit: int | None = 50) -> list[str]:
    """Lines said under the report's tables (markup: rich)."""
    notes = []
    if limit is not None and len(r) > limit:
        notes.append(f"({len(r) - limit} more rows; --format json or csv prints all)")
    if r.usage_missing_calls:
        notes.append(f"[yellow]usage missing:[/] {r.usage_missing_calls:,} calls were recorded "
                     "without usage from the provider (e.g. an OpenAI stream without "
                     "stream_options.include_usage): their tokens and cost are the "
                     "tracker's reservation estimate, or 0 when it made none")
    for u in r.unpriced_models:
        notes.append(f"[yellow]unpriced:[/] {u['calls']:,} calls of {u['provider']}/"
                     f"{u['model']} have no price (cost shown without them; add a "
                     "--prices overrides file)")
    if r.total is not None and r.total.tool_fees_usd:
        notes.append(f"server-side tool fees (web search, web fetch...): "
                     f"{fmt_usd(r.total.tool_fees_usd)} of the cost")
    for u in r.unpriced_fees:
        what = (f"{u['calls']:,} calls with billed counters ctxbudget cannot price "
                f"({', '.join(sorted(u['names']))})" if u["tool"] == "other"
                else f"{u['requests']:,} {u['tool']} requests have no fee")
        notes.append(f"[yellow]unpriced fee:[/] {u['provider']}/{u['model']}: {what} "
                     "(not in the cost; add tool_fees to a --prices overrides file)")
    return notes


@dataclass(frozen=True, slots=True)
class ReportView:
    """A :class:`~ctxbudget.analyze.metrics.Report` as rich tables."""

    report: Report
    limit: int | None = 50

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        r = self.report
        if len(r) == 0:
            yield f"no calls in {r.source or 'the selected data'} for the selected range"
            return
        yield from report_grids(r, self.limit)
        yield from report_notes(r, self.limit)


@dataclass(frozen=True, slots=True)
class SignalsView:
    signals: Sequence[Signal]

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.panel import Panel

        if not self.signals:
            yield "[green]no warning signals[/]"
            return
        for s in self.signals:
            lines = [f"[bold]{s.title}[/]"]
            for k, v in s.evidence.items():
                if k == "days":
                    continue
                lines.append(f"  {k}: {_fmt(v)}")
            if s.worst_tasks:
                lines.append("  worst tasks: " + ", ".join(
                    f"{w['task']} ({fmt_usd(w['cost_usd'])})" for w in s.worst_tasks))
            lines.append(f"[cyan]fix:[/] {s.fix}")
            yield Panel("\n".join(lines), title=s.kind, title_align="left", expand=False)


def signals_csv_rows(signals: Sequence[Signal]) -> list[dict[str, Any]]:
    """One row per signal; the evidence and worst tasks as JSON cells."""
    return [{"kind": x.kind, "task_type": x.task_type, "started": x.started,
             "title": x.title, "fix": x.fix, "evidence": _jsonable(x.evidence),
             "worst_tasks": _jsonable(list(x.worst_tasks))} for x in signals]


def _jsonable(v: Any) -> Any:
    from .json import to_jsonable

    return to_jsonable(v)


def signals_markdown(signals: Sequence[Signal]) -> str:
    """The signals as Markdown: a heading, the evidence and the fix for each."""
    from .formats import md_escape

    if not signals:
        return "## ctxbudget signals\n\nNo warning signals.\n"
    out = ["## ctxbudget signals", ""]
    for x in signals:
        out += [f"### {md_escape(x.kind)}: {md_escape(x.title)}", ""]
        out += [f"- {k}: {md_escape(_fmt(v))}" for k, v in x.evidence.items() if k != "days"]
        if x.worst_tasks:
            out.append("- worst tasks: " + ", ".join(
                f"{md_escape(str(w['task']))} ({fmt_usd(w['cost_usd'])})" for w in x.worst_tasks))
        out += ["", f"**Fix:** {md_escape(x.fix)}", ""]
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def fmt_metric(metric: str, v: Any) -> str:
    """A metric's value for display: dollars, token counts or a plain number."""
    if v is None:
        return "-"
    if "cost" in metric and "share" not in metric:
        return fmt_usd(v, 4)
    if "tokens" in metric or metric in ("unpriced_tasks",):
        return f"{round(float(v)):,}"
    if metric in ("cache_hit_rate", "failed_spend_share"):
        return fmt_pct(float(v))
    return _fmt(_num(v))


def check_rows(result: CheckResult) -> list[dict[str, str]]:
    """One display row per evaluated comparison (shared by the table, CSV, Markdown)."""
    rows = []
    for e in result.evaluated:
        m = e["metric"]
        base = "baseline" in e
        iv = e.get("interval")
        if base:
            ref = fmt_metric(m, e.get("baseline"))
            change = "-" if e.get("ratio") is None else f"{e['ratio'] - 1:+.1%}"
            interval = "-" if iv is None else f"{iv[0] - 1:+.1%} .. {iv[1] - 1:+.1%}"
            limit = f"+{e['tolerance']:.0%}"
            n = f"{e['samples']:,} / " + ("-" if e.get("baseline_samples") is None
                                         else f"{e['baseline_samples']:,}")
        else:
            ref = f"{e.get('op', '>')} {fmt_metric(m, e.get('threshold'))}"
            change = "-"
            interval = "-" if iv is None else \
                f"{fmt_metric(m, iv[0])} .. {fmt_metric(m, iv[1])}"
            limit = ref
            n = f"{e['samples']:,}"
        rows.append({"check": e["rule"] if not base else m,
                     "scope": e.get("task_type") or "all",
                     "tasks": n, "value": fmt_metric(m, e.get("value")),
                     "reference": ref if base else "-", "change": change,
                     "interval": interval, "limit": limit,
                     "status": e.get("status", ""), "reason": e.get("reason", "")})
    return rows


_CHECK_COLS = (Column("check", "left"), Column("scope", "left"),
               Column("tasks (now / base)"), Column("value"), Column("reference"),
               Column("change"), Column("interval"), Column("limit"),
               Column("status", "left"))
_STATUS_STYLE = {"breach": "red", "ok": "green", "inconclusive": "yellow"}


def check_grid(rows: Sequence[dict[str, str]], title: str = "check") -> Grid:
    """Rows of :func:`check_rows` as a grid."""
    return Grid(title=title, columns=_CHECK_COLS, rows=[
        (r["check"], r["scope"], r["tasks"], r["value"], r["reference"], r["change"],
         r["interval"], r["limit"],
         f"[{_STATUS_STYLE.get(r['status'], 'dim')}]{r['status']}[/]") for r in rows])


def _verdict_line(r: CheckResult) -> str:
    n = len(r.evaluated)
    return (f"{n} comparisons: {len(r.breaches)} breached, {len(r.inconclusive)} "
            f"inconclusive, {n - len(r.breaches) - len(r.inconclusive)} ok")


@dataclass(frozen=True, slots=True)
class CheckView:
    """The gate's verdict, every comparison with its interval, and the breaches."""

    result: CheckResult

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        r = self.result
        yield check_grid(check_rows(r))
        for b in r.breaches:
            yield (f"[red bold]BREACH[/] {b.rule} ({b.task_type or 'all'}): {b.metric} = "
                   f"{fmt_metric(b.metric, b.value)} {b.op} {fmt_metric(b.metric, b.threshold)}"
                   f", by {b.by}")
            for w in b.worst_tasks:
                yield f"    {w['task']}: {fmt_usd(w['cost_usd'])}, {w['calls']} calls, " \
                      f"{w['outcome'] or 'unknown'}"
        for e in r.inconclusive:
            yield (f"[yellow]inconclusive[/] {e['rule']} ({e.get('task_type') or 'all'}): "
                   f"{e.get('reason', '')}")
        yield _verdict_line(r)
        if r.verdict == "pass":
            yield "[green]all checks passed[/]"
        elif r.verdict == "inconclusive":
            yield ("[yellow]no breach; some comparisons are inconclusive[/]"
                   + (" (--fail-inconclusive: failing)" if r.fail_inconclusive else ""))


def _moved(e: dict[str, Any]) -> bool:
    """A comparison whose interval excludes "no change" (or that breached)."""
    if e.get("status") == "breach":
        return True
    iv = e.get("interval")
    if iv is None or "ratio" not in e:
        return False
    return bool(iv[0] > 1 or iv[1] < 1)


def check_markdown(result: CheckResult, title: str = "ctxbudget check") -> str:
    """A pull-request-ready summary: verdict, the metrics that moved with their
    intervals, the worst tasks, then every comparison (GitHub-flavoured Markdown)."""
    from .formats import grids_markdown, md_escape

    icon = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive"}
    verdict = icon[result.verdict]
    if result.verdict == "inconclusive" and not result.ok:
        verdict += " (failing: --fail-inconclusive)"
    lines = [f"## {md_escape(title)}: {verdict}", "", _verdict_line(result) + ".", ""]
    rows = check_rows(result)
    moved = [(e, row) for e, row in zip(result.evaluated, rows, strict=True) if _moved(e)]
    moved.sort(key=lambda x: -(x[0].get("ratio") or 0))
    if moved:
        lines.append(grids_markdown([check_grid([row for _, row in moved],
                                                "Metrics that moved")]))
    else:
        lines += ["### Metrics that moved", "", "No metric moved beyond its confidence "
                  "interval.", ""]
    worst: dict[str, dict[str, Any]] = {}
    for b in result.breaches:
        for w in b.worst_tasks:
            worst.setdefault(str(w["task"]), w)
    if worst:
        top = sorted(worst.values(), key=lambda w: -(w["cost_usd"] or 0))[:10]
        lines.append(grids_markdown([Grid(
            title="Worst tasks", columns=(Column("task", "left"), Column("type", "left"),
                                          Column("cost"), Column("calls"),
                                          Column("outcome", "left")),
            rows=[(str(w["task"]), str(w.get("task_type") or "-"), fmt_usd(w["cost_usd"]),
                   _int(int(w["calls"])), str(w.get("outcome") or "-")) for w in top])]))
    if result.inconclusive:
        lines += ["### Inconclusive", ""]
        lines += [f"- {md_escape(e['rule'])} ({md_escape(e.get('task_type') or 'all')}): "
                  f"{md_escape(e.get('reason', ''))}" for e in result.inconclusive]
        lines.append("")
    lines.append(grids_markdown([check_grid(rows, "All comparisons")]))
    return "\n".join(lines)


def check_csv_rows(result: CheckResult) -> list[dict[str, Any]]:
    """One flat row per comparison, raw values (money as exact decimal strings)."""
    out = []
    for e in result.evaluated:
        iv = e.get("interval")
        out.append({"rule": e["rule"], "metric": e["metric"], "task_type": e.get("task_type"),
                    "status": e.get("status"), "samples": e.get("samples"),
                    "baseline_samples": e.get("baseline_samples"), "value": e.get("value"),
                    "baseline": e.get("baseline"), "op": e.get("op", ">"),
                    "threshold": e.get("threshold"), "ratio": e.get("ratio"),
                    "interval_low": None if iv is None else iv[0],
                    "interval_high": None if iv is None else iv[1],
                    "confidence": e.get("confidence"), "reason": e.get("reason")})
    return out


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, Decimal) else v


def render_text(obj: Any, width: int = 120) -> str:
    """Render a view to plain text (no colors): for tests and logs."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(obj)
    return buf.getvalue()
