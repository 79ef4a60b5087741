"""Charts of a plan: context composition per turn (stacked area) and cost per turn per
history policy. Plotly is imported lazily; HTML embeds plotly.js (no CDN), PNG needs
kaleido (not a dependency: without it, ask for .html)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ..errors import CtxBudgetError

__all__ = ["check_chart_path", "plan_figure", "write_chart"]


def check_chart_path(path: Path) -> None:
    """Fail early (before projecting) if the chart cannot be written."""
    suffix = path.suffix.lower()
    if suffix not in (".html", ".htm", ".png"):
        raise CtxBudgetError(f"--chart {path}: use a .html or .png file name")
    if importlib.util.find_spec("plotly") is None:
        raise CtxBudgetError("--chart needs plotly: pip install plotly")
    if suffix == ".png" and importlib.util.find_spec("kaleido") is None:
        raise CtxBudgetError(f"--chart {path}: PNG export needs the kaleido package, which is "
                             "not installed; write a self-contained .html chart instead")


def plan_figure(plan: Any) -> Any:
    """A two-panel plotly figure for a :class:`~ctxbudget.plan.Plan`."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.12, subplot_titles=(
        f"Context composition per turn ({plan.model}, {plan.policy})",
        "Cost per turn by history policy (USD, with caching; dotted: without)"))
    turns = [t.turn for t in plan.turns]
    names = [f.name for f in plan.fixed] + ["history", "retrieved", "tool_outputs",
                                            "user_message"]
    for name in names:
        ys = [t.components.get(name, 0) for t in plan.turns]
        if not any(ys):
            continue
        fig.add_scatter(x=turns, y=ys, name=name, stackgroup="context", mode="lines",
                        row=1, col=1, legendgroup="context")
    if plan.window:
        fig.add_scatter(x=turns, y=[plan.window - plan.output_reserve] * len(turns),
                        name="window − output reserve", mode="lines",
                        line={"dash": "dash", "color": "red"}, row=1, col=1)
    for pol in plan.policies:
        fig.add_scatter(x=turns, y=[float(c) for c in pol.cost_per_turn_usd], name=pol.policy,
                        mode="lines+markers", row=2, col=1, legendgroup="cost")
        fig.add_scatter(x=turns, y=[float(c) for c in pol.cost_uncached_per_turn_usd],
                        name=f"{pol.policy} (no cache)", mode="lines",
                        line={"dash": "dot"}, row=2, col=1, legendgroup="cost")
    fig.update_xaxes(title_text="turn", row=2, col=1)
    fig.update_yaxes(title_text="tokens", row=1, col=1)
    fig.update_yaxes(title_text="USD", row=2, col=1)
    fig.update_layout(height=800, title=plan.name or "ctxbudget plan")
    return fig


def write_chart(plan: Any, path: Path) -> None:
    check_chart_path(path)
    fig = plan_figure(plan)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        fig.write_image(str(path))
    else:
        fig.write_html(str(path), include_plotlyjs=True, full_html=True)
