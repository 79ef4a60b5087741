"""Alert rules (YAML), baselines and the CI gate behind ``ctxbudget check``.

A rules file::

    rules:
      - name: support p95 cost per task
        metric: p95_cost_per_task     # see METRICS
        scope: {task_type: support}   # optional; default: all tasks
        window: 7d                    # trailing window ending at the latest call (h, d, w)
        threshold: 0.25
        op: ">"                       # breach when value op threshold (> >= < <=)
        min_samples: 20               # fewer tasks in scope: the rule is skipped, not passed

A baseline (``ctxbudget baseline save FILE``) stores, per task type, the p50 / p95
cost and tokens per task; ``check --baseline FILE --tolerance 10%`` fails when a
current value exceeds the stored one by more than the tolerance.

Percentiles are nearest-rank (the value at position ceil(q * n) of the sorted
costs), the same definition as DuckDB's ``quantile_disc`` used by the report.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import SpecError
from ..prices import PriceBook, default_pricebook
from .engine import Engine, price_data
from .metrics import percentile
from .sql import Filters, task_sql

__all__ = ["METRICS", "Breach", "CheckResult", "Rule", "check_baseline", "check_rules",
           "load_rules", "parse_tolerance", "percentile", "save_baseline", "task_metrics"]

BASELINE_VERSION = 1


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def _costs(ts: list[dict[str, Any]]) -> list[Decimal]:
    return [t["cost_usd"] for t in ts if t["cost_usd"] is not None]


def _tokens(ts: list[dict[str, Any]]) -> list[int]:
    return [int(t["prompt_tokens"]) + int(t["output_tokens"]) for t in ts]


def _sum(xs: Sequence[Decimal]) -> Decimal:
    return sum(xs, Decimal(0))


#: metric name -> (description, function of the task rows in scope).
METRICS: dict[str, tuple[str, Callable[[list[dict[str, Any]]], Any]]] = {
    "p50_cost_per_task": ("median cost per task, USD", lambda ts: percentile(_costs(ts), 0.5)),
    "p95_cost_per_task": ("95th percentile cost per task, USD",
                          lambda ts: percentile(_costs(ts), 0.95)),
    "max_cost_per_task": ("most expensive task, USD", lambda ts: max(_costs(ts), default=None)),
    "mean_cost_per_task": ("total cost / priced tasks, USD",
                           lambda ts: _sum(_costs(ts)) / len(_costs(ts)) if _costs(ts) else None),
    "cost_per_success": ("total cost / successful tasks, USD", lambda ts: (
        _sum(_costs(ts)) / n if (n := sum(1 for t in ts if t["outcome"] == "success")) else None)),
    "failed_spend_share": ("cost of failed tasks / total cost", lambda ts: _ratio(
        float(_sum([t["cost_usd"] for t in ts if t["outcome"] == "failure"
                    and t["cost_usd"] is not None])), float(_sum(_costs(ts))))),
    "cache_hit_rate": ("cache read / prompt tokens", lambda ts: _ratio(
        sum(int(t["cache_read_tokens"]) for t in ts), sum(int(t["prompt_tokens"]) for t in ts))),
    "output_input_ratio": ("output / prompt tokens", lambda ts: _ratio(
        sum(int(t["output_tokens"]) for t in ts), sum(int(t["prompt_tokens"]) for t in ts))),
    "calls_per_task": ("mean calls per task", lambda ts: _ratio(
        sum(int(t["calls"]) for t in ts), len(ts))),
    "p50_tokens_per_task": ("median prompt+output tokens per task",
                            lambda ts: percentile(_tokens(ts), 0.5)),
    "p95_tokens_per_task": ("95th percentile prompt+output tokens per task",
                            lambda ts: percentile(_tokens(ts), 0.95)),
    "total_cost": ("total cost of priced tasks, USD", lambda ts: _sum(_costs(ts))),
    "unpriced_tasks": ("tasks with at least one unpriced call",
                       lambda ts: sum(1 for t in ts if t["cost_usd"] is None)),
}

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}


def _window(text: str) -> timedelta:
    m = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", text)
    if not m:
        raise ValueError(f"window {text!r}: expected a number and h, d or w (e.g. 7d)")
    n, unit = int(m.group(1)), m.group(2)
    return timedelta(hours=n) if unit == "h" else timedelta(days=n * (7 if unit == "w" else 1))


class _Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_type: str | None = None


class Rule(BaseModel):
    """One alert rule (validated at load; errors name the file and field)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    metric: str
    threshold: float
    op: Literal[">", ">=", "<", "<="] = ">"
    scope: _Scope = Field(default_factory=_Scope)
    window: str | None = None
    min_samples: int = Field(default=1, ge=1)

    @field_validator("metric")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric {v!r}; one of: {', '.join(METRICS)}")
        return v

    @field_validator("window")
    @classmethod
    def _win(cls, v: str | None) -> str | None:
        if v is not None:
            _window(v)
        return v


class _RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[Rule]


def load_rules(path: Path) -> list[Rule]:
    """Read and validate a rules YAML file (SpecError naming file, line or field)."""
    from .._yamlio import read_yaml

    doc = read_yaml(path, SpecError, "rules file")
    try:
        return _RulesFile.model_validate(doc).rules
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"])
        raise SpecError(f"{path}: {where}: {e['msg']}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Breach:
    """A rule or baseline comparison that failed, by how much, and the worst tasks."""

    rule: str
    metric: str
    task_type: str | None
    value: Any
    threshold: Any
    op: str
    by: str
    """How far past the threshold, e.g. ``+0.0123 (+18.2%)``."""
    worst_tasks: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "metric": self.metric, "task_type": self.task_type,
                "value": self.value, "threshold": self.threshold, "op": self.op, "by": self.by,
                "worst_tasks": list(self.worst_tasks)}


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    breaches: tuple[Breach, ...]
    evaluated: tuple[dict[str, Any], ...]
    """Every rule / comparison with its value and status (ok, breach, skipped)."""
    skipped: tuple[dict[str, Any], ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.breaches

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "breaches": [b.as_dict() for b in self.breaches],
                "evaluated": list(self.evaluated)}


def task_metrics(engine: Engine, f: Filters, book: PriceBook | None = None) -> list[dict[str, Any]]:
    """Price the data and return one dict per task (task_sql columns)."""
    price_data(engine, f, book or default_pricebook())
    return engine.query(task_sql(f, engine.dialect)).dicts()


def _by(value: Any, threshold: Any) -> str:
    diff = float(value) - float(threshold)
    rel = f" ({diff / float(threshold):+.1%})" if float(threshold) else ""
    return f"{diff:+.6g}{rel}"


def _worst(ts: list[dict[str, Any]], n: int = 5) -> tuple[dict[str, Any], ...]:
    priced = sorted((t for t in ts if t["cost_usd"] is not None),
                    key=lambda t: (-t["cost_usd"], t["task_key"]))
    return tuple({"task": t["task_key"], "task_type": t["task_type"], "cost_usd": t["cost_usd"],
                  "calls": t["calls"], "outcome": t["outcome"]} for t in priced[:n])


def check_rules(rules: Sequence[Rule], tasks: list[dict[str, Any]]) -> CheckResult:
    """Evaluate rules over per-task rows (``first_ts`` decides the window)."""
    latest = max((t["first_ts"] for t in tasks), default=None)
    breaches: list[Breach] = []
    evaluated: list[dict[str, Any]] = []
    for r in rules:
        scope = [t for t in tasks if r.scope.task_type is None
                 or (t["task_type"] or "(none)") == r.scope.task_type]
        if r.window and latest is not None:
            start: datetime = latest - _window(r.window)
            scope = [t for t in scope if t["first_ts"] > start]
        entry: dict[str, Any] = {"rule": r.name, "metric": r.metric, "samples": len(scope),
                                 "task_type": r.scope.task_type, "threshold": r.threshold,
                                 "op": r.op}
        if len(scope) < r.min_samples:
            entry.update(status="skipped", value=None,
                         reason=f"{len(scope)} tasks < min_samples {r.min_samples}")
            evaluated.append(entry)
            continue
        value = METRICS[r.metric][1](scope)
        entry["value"] = value
        if value is not None and _OPS[r.op](float(value), r.threshold):
            entry["status"] = "breach"
            breaches.append(Breach(rule=r.name, metric=r.metric, task_type=r.scope.task_type,
                                   value=value, threshold=r.threshold, op=r.op,
                                   by=_by(value, r.threshold), worst_tasks=_worst(scope)))
        else:
            entry["status"] = "ok"
        evaluated.append(entry)
    return CheckResult(breaches=tuple(breaches), evaluated=tuple(evaluated))


_BASE_METRICS = ("p50_cost_per_task", "p95_cost_per_task", "p50_tokens_per_task",
                 "p95_tokens_per_task")


def baseline_of(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        by[t["task_type"] or "(none)"].append(t)
    types = {}
    for ttype, ts in sorted(by.items()):
        vals = {m: METRICS[m][1](ts) for m in _BASE_METRICS}
        types[ttype] = {"tasks": len(ts), **{k: (str(v) if isinstance(v, Decimal) else v)
                                             for k, v in vals.items()}}
    return {"version": BASELINE_VERSION, "created_from_tasks": len(tasks), "types": types}


def save_baseline(path: Path, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    doc = baseline_of(tasks)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return doc


def parse_tolerance(text: str) -> float:
    """``10%`` or ``0.1`` -> 0.1."""
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise SpecError(f"--tolerance {text!r}: expected a percentage like 10% or 0.1") from None
    if v < 0:
        raise SpecError(f"--tolerance {text!r}: must not be negative")
    return v


def check_baseline(path: Path, tasks: list[dict[str, Any]], tolerance: float,
                   min_samples: int = 1) -> CheckResult:
    """Compare current p50/p95 cost and tokens per task type with a saved baseline."""
    if not path.exists():
        raise SpecError(f"{path}: baseline file not found (ctxbudget baseline save {path})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        base_types = doc["types"]
        if doc.get("version") != BASELINE_VERSION or not isinstance(base_types, dict):
            raise KeyError("version")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SpecError(f"{path}: not a ctxbudget baseline file ({exc})") from None
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        by[t["task_type"] or "(none)"].append(t)
    breaches: list[Breach] = []
    evaluated: list[dict[str, Any]] = []
    for ttype, base in sorted(base_types.items()):
        ts = by.get(ttype, [])
        for m in _BASE_METRICS:
            ref = base.get(m)
            entry: dict[str, Any] = {"rule": f"baseline {m}", "metric": m, "task_type": ttype,
                                     "baseline": ref, "samples": len(ts)}
            if ref is None or len(ts) < min_samples:
                entry.update(status="skipped", value=None)
                evaluated.append(entry)
                continue
            value = METRICS[m][1](ts)
            limit = float(ref) * (1 + tolerance)
            entry.update(value=value, threshold=limit)
            if value is not None and float(value) > limit:
                entry["status"] = "breach"
                breaches.append(Breach(
                    rule=f"baseline {m} +{tolerance:.0%}", metric=m, task_type=ttype,
                    value=value, threshold=Decimal(ref) if isinstance(ref, str) else ref,
                    op=">",
                    by=_by(value, ref), worst_tasks=_worst(ts)))
            else:
                entry["status"] = "ok"
            evaluated.append(entry)
    return CheckResult(breaches=tuple(breaches), evaluated=tuple(evaluated))
