"""Self-contained HTML report (plotly.js inlined once; no network needed to view it)."""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

from ..analyze.dashboard import Dashboard
from .terminal import fmt_pct, fmt_usd

__all__ = ["CHART_IDS", "render_html"]

#: The div ids of the charts, in page order (the browser test checks each is drawn).
CHART_IDS: tuple[str, ...] = (
    "chart-cost-per-task", "chart-cache-hit", "chart-spend-model", "chart-spend-outcome",
    "chart-distribution",
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#666;font-size:13px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:10px 16px;min-width:150px}
.card .v{font-size:20px;font-weight:600}.card .k{font-size:12px;color:#666}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.box{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:8px}
table{border-collapse:collapse;background:#fff;font-size:13px;width:100%}
th,td{border-bottom:1px solid #eee;padding:5px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
.sig{background:#fff;border-left:4px solid #d9534f;padding:8px 12px;margin:8px 0;
border-radius:4px}
.sig .t{font-weight:600}.sig .f{color:#0b6;margin-top:4px}.sig pre{font-size:12px;margin:4px 0}
.ok{color:#0b6}.warn{color:#c70}
"""


def _e(v: Any) -> str:
    return html.escape(str(v))


def _fig_html(fig: Any, div_id: str, first: bool) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=bool(first), div_id=div_id,
                           config={"displaylogo": False, "responsive": True},
                           default_height="360px"))


def _figures(d: Dashboard) -> list[tuple[str, str, Any]]:
    try:
        import plotly.graph_objects as go
    except ImportError:  # a core dependency; only missing in a broken install
        from ..errors import CtxBudgetError

        raise CtxBudgetError("the HTML report needs plotly: pip install plotly") from None

    layout = {"margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "template": "plotly_white",
              "legend": {"orientation": "h", "y": -0.2}}
    figs: list[tuple[str, str, Any]] = []

    f1 = go.Figure(layout={**layout, "title": "Mean cost per task by day, by task type",
                           "yaxis": {"title": "USD per task", "tickformat": "$.4f"}})
    for ttype, pts in sorted(d.cost_per_task_by_day.items()):
        f1.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts],
                                mode="lines+markers", name=ttype))
    figs.append((CHART_IDS[0], "Cost per task over time", f1))

    f2 = go.Figure(layout={**layout, "title": "Cache hit rate by day (cache read / prompt)",
                           "yaxis": {"tickformat": ".0%", "range": [0, 1]}})
    f2.add_trace(go.Scatter(x=[r.key for r in d.by_day],
                            y=[r.cache_hit_rate or 0.0 for r in d.by_day],
                            mode="lines+markers", name="cache hit rate"))
    f2.add_trace(go.Bar(x=[r.key for r in d.by_day],
                        y=[r.wasted_write_share or 0.0 for r in d.by_day],
                        name="wasted cache writes", opacity=0.4))
    figs.append((CHART_IDS[1], "Cache hit rate over time", f2))

    f3 = go.Figure(layout={**layout, "title": "Spend by model",
                           "yaxis": {"title": "USD", "tickformat": "$.2f"}})
    f3.add_trace(go.Bar(x=[r.key for r in d.by_model],
                        y=[float(r.cost_usd or 0) for r in d.by_model], name="spend"))
    figs.append((CHART_IDS[2], "Spend by model", f3))

    f4 = go.Figure(layout={**layout, "title": "Spend by task outcome",
                           "yaxis": {"title": "USD", "tickformat": "$.2f"}})
    colors = {"success": "#2a9d8f", "failure": "#e76f51", "partial": "#e9c46a"}
    names = sorted(d.spend_by_outcome)
    f4.add_trace(go.Bar(x=names, y=[float(d.spend_by_outcome[n]) for n in names],
                        marker_color=[colors.get(n, "#999") for n in names], name="spend"))
    figs.append((CHART_IDS[3], "Spend by outcome", f4))

    f5 = go.Figure(layout={**layout, "title": "Cost per task distribution by type",
                           "yaxis": {"title": "USD per task", "tickformat": "$.4f"}})
    for ttype, cs in sorted(d.task_costs.items()):
        f5.add_trace(go.Box(y=cs, name=ttype, boxpoints=False))
    figs.append((CHART_IDS[4], "Cost-per-task distribution", f5))
    return figs


def _cards(d: Dashboard) -> str:
    t = d.total
    if t is None:
        return "<p>No calls in the selected range.</p>"
    items = [
        ("total spend", fmt_usd(t.cost_usd, 2)), ("tasks", f"{t.tasks:,}"),
        ("calls", f"{t.calls:,}"), ("cost per task", fmt_usd(t.cost_per_task_usd)),
        ("cost per successful task", fmt_usd(t.cost_per_success_usd)),
        ("cache hit rate", fmt_pct(t.cache_hit_rate)),
        ("spend on failed tasks", fmt_pct(t.failed_spend_share)),
        ("unpriced calls", f"{t.unpriced_calls:,}"),
    ]
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{_e(v)}</div><div class="k">{_e(k)}</div></div>'
        for k, v in items) + "</div>"


def _signals(d: Dashboard) -> str:
    if not d.signals:
        return '<p class="ok">No warning signals.</p>'
    out = []
    for s in d.signals:
        ev = "\n".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                       for k, v in s.evidence.items() if k != "days")
        out.append(f'<div class="sig"><div class="t">{_e(s.title)}</div>'
                   f"<pre>{_e(ev)}</pre><div class=\"f\">Fix: {_e(s.fix)}</div></div>")
    return "".join(out)


def _types_table(d: Dashboard) -> str:
    rows = []
    for s in d.types_report.types:
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in (
            s.task_type, f"{s.tasks:,}", fmt_usd(s.p50_cost_usd), fmt_usd(s.p95_cost_usd),
            fmt_usd(s.max_cost_usd), f"{s.successes:,}", f"{s.failures:,}",
            fmt_pct(s.failed_spend_share), fmt_usd(s.cost_per_success_usd))) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("type", "tasks", "p50", "p95", "max", "successes",
                                             "failures", "failed spend", "$ per success"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _top_table(d: Dashboard) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("task", "type", "outcome", "day", "calls",
                                             "tokens", "cost"))
    rows = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in (
        t["task"], t["task_type"] or "-", t["outcome"] or "-", t["day"], t["calls"],
        f"{t['tokens']:,}", fmt_usd(t["cost_usd"]))) + "</tr>" for t in d.top_tasks)
    return f"<table><tr>{head}</tr>{rows}</table>"


def render_html(d: Dashboard, title: str = "ctxbudget report") -> str:
    """The whole report as one HTML document (about 5 MB: plotly.js is inlined)."""
    figs = _figures(d)
    charts = "".join(
        f'<div class="box" id="box-{cid}">{_fig_html(fig, cid, i == 0)}</div>'
        for i, (cid, _name, fig) in enumerate(figs))
    unpriced = ""
    if d.types_report.unpriced_models:
        unpriced = "<p class=\"warn\">Unpriced: " + ", ".join(
            f"{_e(u['provider'])}/{_e(u['model'])} ({u['calls']:,} calls)"
            for u in d.types_report.unpriced_models) + " — excluded from costs, not $0.</p>"
    total_cost = d.total.cost_usd if d.total else Decimal(0)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<div class="sub">source: {_e(d.source)} · total {_e(fmt_usd(total_cost, 2))}
 · costs priced at each call's own date</div>
{_cards(d)}{unpriced}
<h2>Warning signals</h2>
<div id="signals">{_signals(d)}</div>
<h2>Charts</h2>
<div class="grid">{charts}</div>
<h2>Cost per task by type</h2>
{_types_table(d)}
<h2>Top tasks</h2>
{_top_table(d)}
</body></html>
"""
