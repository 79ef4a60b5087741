"""The data behind the HTML report: plain series, no plotting here."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..prices import PriceBook, default_pricebook
from .engine import Engine, price_data
from .metrics import GroupRow, Report, compute_report
from .signals import Signal, SignalConfig, compute_signals
from .sql import Filters, task_sql

__all__ = ["Dashboard", "compute_dashboard"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Dashboard:
    """Everything the HTML report draws."""

    source: str
    by_day: tuple[GroupRow, ...]
    by_model: tuple[GroupRow, ...]
    types_report: Report
    cost_per_task_by_day: dict[str, list[tuple[str, float]]]
    """task type -> [(day, mean cost per task in USD)] (day of the task's first call)."""
    spend_by_outcome: dict[str, Decimal]
    task_costs: dict[str, list[float]]
    """task type -> cost of each priced task (USD)."""
    top_tasks: tuple[dict[str, Any], ...]
    signals: tuple[Signal, ...]
    total: GroupRow | None
    extra: dict[str, Any] = field(default_factory=dict)


def compute_dashboard(
    engine: Engine,
    filters: Filters | None = None,
    book: PriceBook | None = None,
    cfg: SignalConfig | None = None,
    *,
    source: str = "",
    top: int = 15,
) -> Dashboard:
    f = filters or Filters()
    b = book or default_pricebook()
    by_type = compute_report(engine, "type", f, b, source=source)
    by_day = compute_report(engine, "day", f, b, with_types=False, with_total=False)
    by_model = compute_report(engine, "model", f, b, with_types=False, with_total=False)
    price_data(engine, f, b)
    tasks = engine.query(task_sql(f, engine.dialect)).dicts()
    sums: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
    costs: dict[str, list[float]] = defaultdict(list)
    outcome: dict[str, Decimal] = defaultdict(Decimal)
    for t in tasks:
        if t["cost_usd"] is None:
            continue
        ttype = t["task_type"] or "(none)"
        sums[(ttype, str(t["day"]))].append(t["cost_usd"])
        costs[ttype].append(float(t["cost_usd"]))
        outcome[t["outcome"] or "unknown"] += t["cost_usd"]
    per_day: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (ttype, day), cs in sorted(sums.items()):
        per_day[ttype].append((day, float(sum(cs, Decimal(0))) / len(cs)))
    priced = sorted((t for t in tasks if t["cost_usd"] is not None),
                    key=lambda t: (-t["cost_usd"], t["task_key"]))[:top]
    top_tasks = tuple({"task": t["task_key"], "task_type": t["task_type"],
                       "outcome": t["outcome"], "calls": t["calls"], "day": t["day"],
                       "tokens": int(t["prompt_tokens"]) + int(t["output_tokens"]),
                       "cost_usd": t["cost_usd"]} for t in priced)
    signals = compute_signals(engine, f, b, cfg, priced=True)
    return Dashboard(
        source=source, by_day=by_day.rows, by_model=by_model.rows, types_report=by_type,
        cost_per_task_by_day=dict(per_day), spend_by_outcome=dict(outcome),
        task_costs=dict(costs), top_tasks=top_tasks, signals=tuple(signals),
        total=by_type.total,
    )
