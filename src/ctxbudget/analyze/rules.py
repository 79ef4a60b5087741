"""Alert rules (YAML) and the CI gate behind ``ctxbudget check``.

A rules file::

    rules:
      - name: support p95 cost per task
        metric: p95_cost_per_task     # see METRICS
        scope: {task_type: support}   # optional; default: all tasks
        window: 7d                    # trailing window ending at the latest call (h, d, w)
        threshold: 0.25
        op: ">"                       # breach when value op threshold (> >= < <=)
        min_samples: 20               # fewer tasks: inconclusive (default: --min-samples)
        confidence: 0.95              # optional; default: --confidence

A rule on an estimated metric (a percentile, a mean, a ratio of sums: see
:data:`ctxbudget.analyze.gate.ESTIMATORS`) breaches only when its bootstrap interval
is past the threshold (for ``>``: the lower bound is above it); an exact figure
(max, total, count) is compared as it is. Baselines: :mod:`.gate`.

Percentiles are nearest-rank (the value at position ceil(q * n) of the sorted
costs), the same definition as DuckDB's ``quantile_disc`` used by the report.
"""

from __future__ import annotations

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
           "load_rules", "merge_results", "parse_tolerance", "percentile", "save_baseline",
           "task_metrics"]


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
    try:
        return timedelta(hours=n) if unit == "h" else timedelta(days=n * (7 if unit == "w"
                                                                          else 1))
    except OverflowError:
        raise ValueError(f"window {text!r} is too long") from None


class _Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_type: str | None = None


class Rule(BaseModel):
    """One alert rule (validated at load; errors name the file and field; a NaN or
    infinite threshold is refused)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str
    metric: str
    threshold: float
    op: Literal[">", ">=", "<", "<="] = ">"
    scope: _Scope = Field(default_factory=_Scope)
    window: str | None = None
    min_samples: int | None = Field(default=None, ge=1)
    confidence: float | None = Field(default=None, gt=0.5, lt=1)

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
    """How far past the threshold, e.g. ``+0.0123 (+18.2%)``, with the interval."""
    worst_tasks: tuple[dict[str, Any], ...] = ()
    interval: tuple[float, float] | None = None
    """The bootstrap interval (of the metric for a rule, of current / baseline for a
    baseline comparison); None for an exact figure."""
    samples: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "metric": self.metric, "task_type": self.task_type,
                "value": self.value, "threshold": self.threshold, "op": self.op, "by": self.by,
                "interval": None if self.interval is None else list(self.interval),
                "samples": self.samples, "worst_tasks": list(self.worst_tasks)}


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    breaches: tuple[Breach, ...]
    evaluated: tuple[dict[str, Any], ...]
    """Every rule / comparison with its value and status (ok, breach, inconclusive)."""
    inconclusive: tuple[dict[str, Any], ...] = field(default=())
    """Comparisons with too few samples: neither a pass nor a breach."""
    fail_inconclusive: bool = False
    """``--fail-inconclusive``: an inconclusive comparison fails the check."""

    @property
    def verdict(self) -> str:
        """``fail`` (a breach), ``inconclusive`` (no breach, some comparison could not be
        decided) or ``pass``."""
        if self.breaches:
            return "fail"
        return "inconclusive" if self.inconclusive else "pass"

    @property
    def ok(self) -> bool:
        """True unless a breach (or, with ``fail_inconclusive``, an inconclusive
        comparison) fails the check."""
        return not self.breaches and not (self.fail_inconclusive and self.inconclusive)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "verdict": self.verdict,
                "breaches": [b.as_dict() for b in self.breaches],
                "inconclusive": len(self.inconclusive),
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


def check_rules(rules: Sequence[Rule], tasks: list[dict[str, Any]], *,
                min_samples: int = 30, confidence: float = 0.95,
                fail_inconclusive: bool = False) -> CheckResult:
    """Evaluate rules over per-task rows (``first_ts`` decides the window).

    ``min_samples`` and ``confidence`` apply to rules that do not set their own.
    """
    from .gate import rule_interval

    latest = max((t["first_ts"] for t in tasks), default=None)
    breaches: list[Breach] = []
    evaluated: list[dict[str, Any]] = []
    for r in rules:
        scope = [t for t in tasks if r.scope.task_type is None
                 or (t["task_type"] or "(none)") == r.scope.task_type]
        if r.window and latest is not None:
            start: datetime = latest - _window(r.window)
            scope = [t for t in scope if t["first_ts"] > start]
        need = r.min_samples if r.min_samples is not None else min_samples
        conf = r.confidence if r.confidence is not None else confidence
        entry: dict[str, Any] = {"rule": r.name, "metric": r.metric, "samples": len(scope),
                                 "task_type": r.scope.task_type, "threshold": r.threshold,
                                 "op": r.op}
        if len(scope) < need:
            entry.update(status="inconclusive", value=None,
                         reason=f"{len(scope)} tasks < min_samples {need}")
            evaluated.append(entry)
            continue
        value = METRICS[r.metric][1](scope)
        entry["value"] = value
        iv = rule_interval(r.metric, scope, conf) if value is not None else None
        # the bound on the threshold's side decides: > / >= need the lower bound past it
        decide: float | None = None if value is None else float(value)
        if iv is not None:
            entry.update(interval=[iv.low, iv.high], interval_level=iv.level, confidence=conf)
            decide = iv.low if r.op in (">", ">=") else iv.high
        if decide is not None and _OPS[r.op](decide, r.threshold):
            entry["status"] = "breach"
            by = _by(value, r.threshold)
            if iv is not None:
                by += (f"; {conf:.0%} interval {iv.low:.6g} to {iv.high:.6g}, "
                       f"{len(scope)} tasks")
            entry["reason"] = by
            breaches.append(Breach(rule=r.name, metric=r.metric, task_type=r.scope.task_type,
                                   value=value, threshold=r.threshold, op=r.op,
                                   by=by, worst_tasks=_worst(scope),
                                   interval=None if iv is None else (iv.low, iv.high),
                                   samples=len(scope)))
        else:
            entry["status"] = "ok"
        evaluated.append(entry)
    return _result(breaches, evaluated, fail_inconclusive)


def save_baseline(path: Path, tasks: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """See :func:`ctxbudget.analyze.gate.save_baseline`."""
    from .gate import save_baseline as _save

    return _save(path, tasks, **kw)


def parse_tolerance(text: str) -> float:
    """``10%`` or ``0.1`` -> 0.1."""
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise SpecError(f"--tolerance {text!r}: expected a percentage like 10% or 0.1") from None
    if not v >= 0 or v == float("inf"):
        raise SpecError(f"--tolerance {text!r}: must be a finite, non-negative share")
    return v


def check_baseline(path: Path, tasks: list[dict[str, Any]], tolerance: float,
                   min_samples: int = 30, *, confidence: float = 0.95,
                   fail_inconclusive: bool = False) -> CheckResult:
    """Compare the current tasks with a saved baseline, with confidence (see :mod:`.gate`)."""
    from .gate import compare_to_baseline, load_baseline

    doc = load_baseline(path)
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        by_type[t["task_type"] or "(none)"].append(t)
    evaluated = compare_to_baseline(doc, tasks, tolerance=tolerance, confidence=confidence,
                                    min_samples=min_samples)
    breaches = []
    for e in evaluated:
        if e["status"] != "breach":
            continue
        scope = tasks if e["task_type"] is None else by_type[e["task_type"]]
        breaches.append(Breach(
            rule=f"baseline {e['metric']} +{tolerance:.0%}", metric=e["metric"],
            task_type=e["task_type"], value=e["value"], threshold=e["baseline"], op=">",
            by=e["reason"], worst_tasks=_worst(scope), interval=tuple(e["interval"]),
            samples=e["samples"]))
    return _result(breaches, evaluated, fail_inconclusive)


def _result(breaches: list[Breach], evaluated: list[dict[str, Any]],
            fail_inconclusive: bool) -> CheckResult:
    return CheckResult(breaches=tuple(breaches), evaluated=tuple(evaluated),
                       inconclusive=tuple(e for e in evaluated
                                          if e.get("status") == "inconclusive"),
                       fail_inconclusive=fail_inconclusive)


def merge_results(parts: Sequence[CheckResult], fail_inconclusive: bool = False) -> CheckResult:
    """One result of several checks (rules and baseline)."""
    return CheckResult(breaches=tuple(b for p in parts for b in p.breaches),
                       evaluated=tuple(e for p in parts for e in p.evaluated),
                       inconclusive=tuple(e for p in parts for e in p.inconclusive),
                       fail_inconclusive=fail_inconclusive)
