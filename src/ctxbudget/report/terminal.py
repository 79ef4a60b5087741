"""Terminal renderers: views implementing rich's ``__rich_console__`` protocol.

Analyze results stay plain dataclasses; these wrappers turn them into tables, so
``ctxbudget.analyze`` never imports rich. Tests render them to a string with
``Console(file=io.StringIO(), width=100, color_system=None)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..analyze.metrics import Report
from ..analyze.rules import CheckResult
from ..analyze.signals import Signal

__all__ = ["CheckView", "ReportView", "SignalsView", "fmt_pct", "fmt_usd", "render_text"]


def fmt_usd(v: Decimal | float | None, places: int = 4, missing: str = "unpriced") -> str:
    """Dollars for display; ``missing`` says why there is no figure."""
    if v is None:
        return missing
    return f"${float(v):,.{places}f}"


def _no_success(row: object) -> str:
    """Why cost per successful task is missing: nothing priced, or no success recorded."""
    return "unpriced" if getattr(row, "cost_usd", 1) is None else "no successes"


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


@dataclass(frozen=True, slots=True)
class ReportView:
    """A :class:`~ctxbudget.analyze.metrics.Report` as rich tables."""

    report: Report
    limit: int | None = 50

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.table import Table

        r = self.report
        if len(r) == 0:
            yield f"no calls in {r.source or 'the selected data'} for the selected range"
            return
        title = f"cost by {r.by}  ({r.source}, {r.engine}"
        if r.filters.tz != "UTC":
            title += f", days in {r.filters.tz}"
        title += ")"
        t = Table(title=title, show_lines=False)
        task = r.by == "task"
        cols = ([r.by, "type", "outcome", "calls"] if task else [r.by, "calls", "tasks"])
        cols += ["prompt", "output", "cost", "hit"]
        cols += ["out/in"] if task else ["wasted", "fail$", "$/succ"]
        for c in cols:
            left = c in (r.by, "type", "outcome")
            t.add_column(c, justify="left" if left else "right", overflow="fold",
                         min_width=10 if c == r.by else None)

        def cells(g: Any, key: str) -> list[str]:
            out = ([key, g.task_type or "-", g.outcome or "-", _int(g.calls)] if task
                   else [key, _int(g.calls), _int(g.tasks)])
            cost = fmt_usd(g.cost_usd)
            if g.unpriced_calls and g.cost_usd is not None:
                cost += f" +{g.unpriced_calls} unpriced"
            out += [_tok(g.prompt_tokens), _tok(g.output_tokens), cost, fmt_pct(g.cache_hit_rate)]
            out += ([fmt_ratio(g.output_input_ratio)] if task else
                    [fmt_pct(g.wasted_write_share), fmt_pct(g.failed_spend_share),
                     fmt_usd(g.cost_per_success_usd, missing=_no_success(g))])
            return out

        for g in r.top(self.limit):
            t.add_row(*cells(g, g.key))
        if r.total is not None:
            tot = cells(r.total, "total")
            if task:
                tot[1:3] = ["", ""]
            t.add_row(*tot, style="bold")
        yield t
        if self.limit is not None and len(r) > self.limit:
            yield f"({len(r) - self.limit} more rows; --json prints all)"
        if r.types:
            tt = Table(title="cost per task by type")
            for c in ("type", "tasks", "p50", "p95", "max", "p95 tok", "ok", "failed",
                      "fail$", "$/succ"):
                tt.add_column(c, justify="left" if c == "type" else "right")
            for s in r.types:
                tt.add_row(s.task_type, _int(s.tasks), fmt_usd(s.p50_cost_usd),
                           fmt_usd(s.p95_cost_usd), fmt_usd(s.max_cost_usd),
                           "-" if s.p95_tokens is None else _tok(s.p95_tokens),
                           _int(s.successes), _int(s.failures),
                           fmt_pct(s.failed_spend_share),
                           fmt_usd(s.cost_per_success_usd, missing=_no_success(s)))
            yield tt
        for u in r.unpriced_models:
            yield (f"[yellow]unpriced:[/] {u['calls']:,} calls of {u['provider']}/{u['model']} "
                   "have no price (cost shown without them; add a --prices overrides file)")


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
            yield Panel("\n".join(lines), title=s.kind, title_align="left")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@dataclass(frozen=True, slots=True)
class CheckView:
    result: CheckResult

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.table import Table

        t = Table(title="check")
        for c in ("rule", "type", "samples", "value", "threshold", "status"):
            t.add_column(c, justify="right" if c in ("samples", "value", "threshold") else "left")
        for e in self.result.evaluated:
            status = e.get("status", "")
            style = {"breach": "red", "ok": "green"}.get(status, "dim")
            t.add_row(e["rule"], e.get("task_type") or "all", str(e.get("samples", "")),
                      _fmt(_num(e.get("value"))), _fmt(_num(e.get("threshold"))),
                      f"[{style}]{status}[/]")
        yield t
        for b in self.result.breaches:
            yield (f"[red bold]BREACH[/] {b.rule} ({b.task_type or 'all'}): {b.metric} = "
                   f"{_fmt(_num(b.value))} {b.op} {_fmt(_num(b.threshold))}, by {b.by}")
            for w in b.worst_tasks:
                yield f"    {w['task']}: {fmt_usd(w['cost_usd'])}, {w['calls']} calls, " \
                      f"{w['outcome'] or 'unknown'}"
        if self.result.ok:
            yield "[green]all checks passed[/]"


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, Decimal) else v


def render_text(obj: Any, width: int = 120) -> str:
    """Render a view to plain text (no colors): for tests and logs."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(obj)
    return buf.getvalue()
