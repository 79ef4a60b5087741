"""``project(spec) -> Plan``: the whole projection as data (frozen dataclasses).

``Plan.as_dict()`` is what ``ctxbudget plan --json`` prints; the rich tables and the
charts render from the same object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..prices import Price
from .components import ALLOCATION_OF, FixedTokens, resolve_fixed
from .distribution import TurnsDistribution
from .presets import BUCKET_LABELS, PRESETS
from .project import (
    ModelRun,
    SessionTotals,
    TaskCost,
    TurnCost,
    distribution_for,
    price_book_for,
    resolve_models,
    run_model,
    session_of,
    task_cost,
)
from .spec import (
    ALLOCATION_BUCKETS,
    BudgetSpec,
    LoadedSpec,
    as_loaded,
    parse_spec,
)

__all__ = ["AllocationRow", "CachingInfo", "ModelRow", "Plan", "PolicyRow", "project"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationRow:
    """Target vs actual for one allocation bucket at the peak turn."""

    bucket: str
    label: str
    target_pct: float
    target_tokens: int
    actual_tokens: int
    """Tokens of the bucket's components at the peak turn (user_output: user message +
    output reserve)."""
    first_turn_over: int | None
    """First turn at which the bucket exceeds its target (None: never)."""

    @property
    def status(self) -> str:
        return "over" if self.actual_tokens > self.target_tokens else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "label": self.label, "target_pct": self.target_pct,
                "target_tokens": self.target_tokens, "actual_tokens": self.actual_tokens,
                "status": self.status, "first_turn_over": self.first_turn_over}


@dataclass(frozen=True, slots=True, kw_only=True)
class CachingInfo:
    """Caching economics of one model."""

    mode: str
    ttl: str
    min_cacheable_tokens: int
    cacheable_prefix_tokens: int
    """Tokens under the fixed breakpoint (explicit) or the fixed prefix (automatic)."""
    below_minimum: bool
    """True when the fixed cacheable prefix is shorter than the provider's minimum."""
    write_premium_mtok: Decimal
    """Write rate − input rate (USD per M), for the spec's TTL."""
    read_saving_mtok: Decimal
    """Input rate − cache-read rate (USD per M)."""
    break_even_reuses: int | None
    """Cache reads within the TTL needed to pay back one write (None: reads save nothing)."""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRow:
    """One model of the right-size comparison (the spec's first history policy)."""

    model: str
    provider: str
    price_source: str
    context_window: int | None
    session: SessionTotals
    task: TaskCost
    caching: CachingInfo
    overflow_turn: int | None
    """First turn whose prompt + output reserve exceeds this model's window."""
    relative_cost: float
    """Expected cost per task / the cheapest model's."""

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "provider": self.provider,
                "price_source": self.price_source, "context_window": self.context_window,
                "session": self.session.as_dict(), "task": self.task.as_dict(),
                "caching": self.caching.as_dict(), "overflow_turn": self.overflow_turn,
                "relative_cost": round(self.relative_cost, 4)}


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRow:
    """One history policy for the first model: its cost-vs-turn curve and totals."""

    policy: str
    cost_per_turn_usd: tuple[Decimal, ...]
    cost_uncached_per_turn_usd: tuple[Decimal, ...]
    context_tokens: tuple[int, ...]
    cache_read_tokens: tuple[int, ...]
    cache_write_tokens: tuple[int, ...]
    session: SessionTotals
    task: TaskCost

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "cost_per_turn_usd": list(self.cost_per_turn_usd),
                "cost_uncached_per_turn_usd": list(self.cost_uncached_per_turn_usd),
                "context_tokens": list(self.context_tokens),
                "cache_read_tokens": list(self.cache_read_tokens),
                "cache_write_tokens": list(self.cache_write_tokens),
                "session": self.session.as_dict(), "task": self.task.as_dict()}


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The projection of a budget spec."""

    name: str | None
    spec_path: str | None
    model: str
    """The first model: per-turn table, session and task totals are for it."""
    policy: str
    """The first history policy."""
    window: int | None
    window_source: str
    output_reserve: int
    fixed: tuple[FixedTokens, ...]
    fixed_tokens: int
    turns: tuple[TurnCost, ...]
    reference_turns: int
    """Turns of the session in ``session`` (the fixed count, or the median)."""
    session: SessionTotals
    task: TaskCost
    distribution: TurnsDistribution
    models: tuple[ModelRow, ...]
    policies: tuple[PolicyRow, ...]
    peak_turn: int
    allocation: tuple[AllocationRow, ...]
    allocation_source: str | None
    overflow_turn: int | None
    overflow_component: str | None
    """The component that overflows first: the allocation bucket that passes its target
    earliest (when targets are set), else the largest variable component at the window
    overflow turn."""
    overflow_component_turn: int | None
    """The turn at which ``overflow_component`` overflows (its target, or the window)."""
    overflow_rule: str
    caching: CachingInfo
    warnings: tuple[str, ...]
    tasks_per_day: float
    days_per_month: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "spec": self.spec_path, "model": self.model,
            "policy": self.policy, "window": self.window, "window_source": self.window_source,
            "output_reserve": self.output_reserve, "fixed_tokens": self.fixed_tokens,
            "fixed": [{"name": f.name, "tokens": f.tokens, "source": f.source, "exact": f.exact}
                      for f in self.fixed],
            "turns": [t.as_dict() for t in self.turns],
            "reference_turns": self.reference_turns,
            "session": self.session.as_dict(), "task": self.task.as_dict(),
            "tasks_per_day": self.tasks_per_day, "days_per_month": self.days_per_month,
            "distribution": self.distribution.as_dict(),
            "models": [m.as_dict() for m in self.models],
            "policies": [p.as_dict() for p in self.policies],
            "peak_turn": self.peak_turn,
            "allocation": [a.as_dict() for a in self.allocation],
            "allocation_source": self.allocation_source,
            "overflow": {"turn": self.overflow_turn, "component": self.overflow_component,
                         "component_turn": self.overflow_component_turn,
                         "rule": self.overflow_rule},
            "caching": self.caching.as_dict(),
            "warnings": list(self.warnings),
        }


def _caching_info(loaded: LoadedSpec, run: ModelRun, fixed: Sequence[FixedTokens]) -> CachingInfo:
    spec = loaded.spec
    r = run.price.base
    write = r.cache_write_5m_mtok if spec.caching.ttl == "5m" else r.cache_write_1h_mtok
    if run.mode == "explicit":
        premium = write - r.input_mtok
        names = set(spec.cacheable_fixed())
        prefix = sum(f.tokens for f in fixed if f.name in names)
    elif run.mode == "automatic":
        premium = Decimal(0)
        prefix = sum(f.tokens for f in fixed)
    else:
        premium, prefix = Decimal(0), 0
    saving = r.input_mtok - r.cache_read_mtok
    if run.mode == "none" or saving <= 0:
        reuses = None
    elif premium <= 0:
        reuses = 0
    else:
        q = premium / saving
        reuses = int(q) + (0 if q == int(q) else 1)
    return CachingInfo(mode=run.mode, ttl=run.ttl, min_cacheable_tokens=run.min_cacheable_tokens,
                       cacheable_prefix_tokens=prefix,
                       below_minimum=run.mode != "none" and 0 < prefix < run.min_cacheable_tokens,
                       write_premium_mtok=premium, read_saving_mtok=saving,
                       break_even_reuses=reuses)


def _window(loaded: LoadedSpec, window: int | None, price: Price) -> tuple[int | None, str]:
    if window is not None:
        return window, "--window"
    if loaded.spec.window is not None:
        return loaded.spec.window, "spec"
    if price.context_window:
        return int(price.context_window), f"{price.model} context window"
    return None, "unknown"


def _bucket_tokens(t: TurnCost, reserve: int) -> dict[str, int]:
    out = dict.fromkeys(ALLOCATION_BUCKETS, 0)
    for name, tok in t.components.items():
        if name == "output":
            continue
        out[ALLOCATION_OF.get(name, "system_tools")] += tok
    out["user_output"] += reserve
    return out


def project(
    spec: str | Path | LoadedSpec | BudgetSpec | Mapping[str, Any],
    *,
    window: int | None = None,
    preset: str | None = None,
    turns: int | None = None,
    prices: Sequence[Path] = (),
    at: datetime | None = None,
) -> Plan:
    """Project a budget spec: a path, a loaded spec, a dict or a :class:`BudgetSpec` (YAML
    text goes through :func:`~ctxbudget.plan.parse_spec`). ``window``/``preset``/``turns``
    override the spec; ``prices`` adds overrides files."""
    loaded = as_loaded(spec)
    s = loaded.spec
    book = price_book_for(loaded, prices)
    models = resolve_models(loaded, book, at)
    first_model, first_price = models[0]
    fixed = resolve_fixed(loaded, first_model.model, first_model.provider or first_price.provider)
    fixed_total = sum(f.tokens for f in fixed)
    dist = distribution_for(loaded, turns)
    max_turns = dist.max_turns
    reference = dist.support[0] if dist.kind == "fixed" else dist.quantile(0.5)
    per_day, per_month = s.session.tasks_per_day, s.session.days_per_month
    warnings: list[str] = []

    # history policies, first model
    policy_rows: list[PolicyRow] = []
    primary: ModelRun | None = None
    for pol in s.history_policies:
        run = run_model(loaded, fixed, first_model, first_price, pol, max_turns)
        primary = primary or run
        policy_rows.append(PolicyRow(
            policy=run.policy,
            cost_per_turn_usd=tuple(t.cost_usd for t in run.turns),
            cost_uncached_per_turn_usd=tuple(t.cost_uncached_usd for t in run.turns),
            context_tokens=tuple(t.context_tokens for t in run.turns),
            cache_read_tokens=tuple(t.usage.cache_read_tokens for t in run.turns),
            cache_write_tokens=tuple(t.usage.cache_write_tokens for t in run.turns),
            session=session_of(run, reference), task=task_cost(run, dist, per_day, per_month)))
    assert primary is not None
    reserve = s.output_reserve if s.output_reserve is not None else s.variable.output.tokens

    # models (first policy)
    model_rows: list[ModelRow] = []
    infos: list[CachingInfo] = []
    for i, (m, price) in enumerate(models):
        run = primary if i == 0 else run_model(loaded, fixed, m, price, s.history_policies[0],
                                               max_turns)
        info = _caching_info(loaded, run, fixed)
        infos.append(info)
        win = window or s.window or price.context_window
        over = next((t.turn for t in run.turns if win and t.max_prompt_tokens + reserve > win),
                    None)
        model_rows.append(ModelRow(
            model=m.label or price.model, provider=m.provider or price.provider,
            price_source=price.source, context_window=price.context_window,
            session=session_of(run, reference), task=task_cost(run, dist, per_day, per_month),
            caching=info, overflow_turn=over, relative_cost=0.0))
        if info.below_minimum and not s.caching.history:
            warnings.append(
                f"{price.model}: the cacheable prefix ({info.cacheable_prefix_tokens} tokens) is "
                f"below the minimum cacheable length ({info.min_cacheable_tokens}); "
                "nothing would be cached")
        elif info.below_minimum:
            warnings.append(
                f"{price.model}: the fixed prefix ({info.cacheable_prefix_tokens} tokens) is below "
                f"the minimum cacheable length ({info.min_cacheable_tokens}); only a history "
                "prefix past that length is cached")
        if info.mode == "none" and s.caching.enabled:
            warnings.append(f"{price.model}: no prompt caching modelled for provider "
                            f"{m.provider or price.provider!r}")
    cheapest = min((r.task.expected_usd for r in model_rows), default=Decimal(0))
    model_rows = [
        ModelRow(**{**{k: getattr(r, k) for k in r.__slots__},
                    "relative_cost": float(r.task.expected_usd / cheapest) if cheapest else 0.0})
        for r in model_rows]

    # allocation at the peak turn
    win, win_source = _window(loaded, window, first_price)
    peak = max(primary.turns, key=lambda t: (t.context_tokens, t.turn))
    preset_name = preset or (s.allocation.preset if s.allocation else None)
    targets: dict[str, float] = {}
    source: str | None = None
    if preset_name is not None:
        if preset_name not in PRESETS:
            where = loaded.where(("allocation", "preset")) if preset is None else "--preset"
            raise SpecError(f"{where}: unknown preset {preset_name!r} "
                            f"(known: {', '.join(PRESETS)})")
        targets.update(PRESETS[preset_name])
        source = f"preset {preset_name}"
    if s.allocation and s.allocation.targets and preset is None:
        targets.update({str(k): v for k, v in s.allocation.targets.items()})
        source = "spec targets" if source is None else f"{source} + spec targets"
    allocation: list[AllocationRow] = []
    if targets and win:
        per_turn = [_bucket_tokens(t, reserve) for t in primary.turns]
        peak_b = per_turn[peak.turn - 1]
        for b in ALLOCATION_BUCKETS:
            if b not in targets:
                continue
            tgt = int(Decimal(repr(targets[b])) * win / 100)
            first_over = next((i + 1 for i, bt in enumerate(per_turn) if bt[b] > tgt), None)
            allocation.append(AllocationRow(bucket=b, label=BUCKET_LABELS[b],
                                            target_pct=targets[b], target_tokens=tgt,
                                            actual_tokens=peak_b[b], first_turn_over=first_over))
    elif targets and not win:
        warnings.append("allocation targets need a window (spec window or --window)")

    # overflow
    over_turn = next((t.turn for t in primary.turns
                      if win and t.max_prompt_tokens + reserve > win), None)
    over_comp: str | None = None
    over_comp_turn: int | None = None
    rule = "no overflow"
    overs = [a for a in allocation if a.first_turn_over is not None]
    if overs:
        first = min(overs, key=lambda a: (a.first_turn_over or 0,
                                          a.target_tokens - a.actual_tokens))
        over_comp, over_comp_turn = first.bucket, first.first_turn_over
        rule = "the allocation bucket that exceeds its target first"
    elif over_turn is not None:
        t = primary.turns[over_turn - 1]
        var = {k: v for k, v in t.components.items()
               if k in ("history", "retrieved", "tool_outputs", "user_message")}
        over_comp, over_comp_turn = max(var, key=lambda k: var[k]), over_turn
        rule = "the largest variable component at the overflow turn"
    if over_turn is not None:
        warnings.append(f"the context window ({win} tokens) overflows at turn {over_turn} "
                        f"(prompt + {reserve} output reserve)")
    return Plan(
        name=s.name, spec_path=str(loaded.path) if loaded.path else None,
        model=model_rows[0].model, policy=primary.policy, window=win, window_source=win_source,
        output_reserve=reserve, fixed=tuple(fixed), fixed_tokens=fixed_total,
        turns=primary.turns, reference_turns=reference, session=session_of(primary, reference),
        task=task_cost(primary, dist, per_day, per_month), distribution=dist,
        models=tuple(model_rows), policies=tuple(policy_rows), peak_turn=peak.turn,
        allocation=tuple(allocation), allocation_source=source, overflow_turn=over_turn,
        overflow_component=over_comp, overflow_component_turn=over_comp_turn,
        overflow_rule=rule, caching=infos[0],
        warnings=tuple(warnings), tasks_per_day=per_day, days_per_month=per_month)


__all__ += ["parse_spec"]
