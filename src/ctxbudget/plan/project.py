"""The projection: per-turn context and cost, session and task totals, per model.

Every figure is a :class:`~ctxbudget.usage.Usage` priced with
:func:`ctxbudget.prices.cost_of` — per call, because a long-context tier applies to a
whole request — then summed. "Without caching" bills every prompt token as input;
"with caching" bills what :func:`~ctxbudget.plan.caching.replay` says the provider
would (reads, writes, input).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from ..prices import Price, PriceBook, cost_of
from ..usage import Usage
from .caching import cache_mode_for, min_cacheable_tokens, replay
from .components import FixedTokens, history_growth, resolve_fixed
from .distribution import TurnsDistribution, turns_distribution
from .layout import CallLayout, layout_session, policy_label
from .spec import BudgetSpec, LoadedSpec, ModelSpec

__all__ = ["ModelRun", "TurnCost", "price_book_for", "run_model", "session_of"]

ZERO = Decimal(0)


def price_book_for(loaded: LoadedSpec, extra: Sequence[Path] = ()) -> PriceBook:
    """A PriceBook over the spec's overrides file(s) (relative to its folder) plus ``extra``."""
    prices = loaded.spec.prices
    files = [prices] if isinstance(prices, str) else list(prices or [])
    paths: list[Path] = []
    for i, f in enumerate(files):
        p = loaded.folder / f
        if not p.is_file():
            loc: tuple[str | int, ...] = ("prices",) if isinstance(prices, str) else ("prices", i)
            raise loaded.error(loc, f"prices file not found: {p}")
        paths.append(p)
    return PriceBook(overrides=(*paths, *extra))


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnCost:
    """One turn of one model under one history policy (all the turn's calls summed)."""

    turn: int
    calls: int
    """API calls this turn, including a summarization call."""
    components: Mapping[str, int]
    """Tokens per component in the turn's first call's prompt (plus ``output``)."""
    fixed_tokens: int
    variable_tokens: int
    """History + retrieved + tool outputs + user message of one call (output excluded)."""
    context_tokens: int
    """fixed + variable: the prompt of one call."""
    max_prompt_tokens: int
    """The largest prompt of the turn's calls."""
    output_tokens: int
    """Output tokens of one call."""
    usage: Usage
    """What the provider bills for the turn, with caching."""
    usage_uncached: Usage
    """The same calls with every prompt token billed as input."""
    cost_usd: Decimal
    cost_uncached_usd: Decimal
    input_cost_usd: Decimal
    """Cost of the prompt buckets only (input + cache read + writes), with caching."""
    input_cost_uncached_usd: Decimal

    def as_dict(self) -> dict[str, object]:
        return {
            "turn": self.turn, "calls": self.calls, "components": dict(self.components),
            "fixed_tokens": self.fixed_tokens, "variable_tokens": self.variable_tokens,
            "context_tokens": self.context_tokens, "max_prompt_tokens": self.max_prompt_tokens,
            "output_tokens": self.output_tokens,
            "usage": self.usage.as_dict(), "usage_uncached": self.usage_uncached.as_dict(),
            "cost_usd": self.cost_usd, "cost_uncached_usd": self.cost_uncached_usd,
            "input_cost_usd": self.input_cost_usd,
            "input_cost_uncached_usd": self.input_cost_uncached_usd,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRun:
    """One model under one history policy, turn by turn up to the longest session."""

    model: ModelSpec
    price: Price
    policy: str
    mode: str
    """Caching mechanics applied: ``explicit``, ``automatic`` or ``none``."""
    ttl: str
    min_cacheable_tokens: int
    turns: tuple[TurnCost, ...]
    calls: tuple[CallLayout, ...]
    usages: tuple[Usage, ...]
    """Billed usage of each call in ``calls`` (with caching)."""

    def cumulative(self, attr: str) -> list[Decimal]:
        """Running totals of a per-turn money field: element n-1 = a session of n turns."""
        acc, out = ZERO, []
        for t in self.turns:
            acc += getattr(t, attr)
            out.append(acc)
        return out


def _sum_usage(us: Sequence[Usage]) -> Usage:
    return sum(us, Usage())


def _input_cost(c_total: Decimal, c_output: Decimal) -> Decimal:
    return c_total - c_output


def run_model(
    loaded: LoadedSpec,
    fixed: Sequence[FixedTokens],
    model: ModelSpec,
    price: Price,
    policy: object,
    turns: int,
    *,
    fixed_versions: Mapping[str, Hashable] | None = None,
    cache_salt: Hashable = None,
    break_cache: bool = False,
    fixed_scale: Mapping[str, float] | None = None,
    variable_scale: Mapping[str, float] | None = None,
) -> ModelRun:
    """Lay out, replay the cache and price a ``turns``-turn session for ``model``.

    ``fixed_scale`` / ``variable_scale`` multiply component sizes (rounded half-up; a
    scaled fixed component is new content, so its cached prefix no longer matches);
    ``break_cache`` changes the prompt prefix on every call (simulate's injections).
    """
    spec = loaded.spec
    if variable_scale:
        spec = _scaled_spec(spec, variable_scale)
    if fixed_scale:
        fixed = [FixedTokens(name=f.name, tokens=_scale(f.tokens, fixed_scale[f.name]),
                             source=f.source, exact=f.exact, parts=f.parts)
                 if f.name in fixed_scale else f for f in fixed]
        fixed_versions = {**(fixed_versions or {}),
                          **{n: ("scaled", x) for n, x in fixed_scale.items()}}
    provider = model.provider or price.provider
    mode = cache_mode_for(provider, spec.caching.mode) if spec.caching.enabled else "none"
    min_tok = (spec.caching.min_cacheable_tokens if spec.caching.min_cacheable_tokens is not None
               else min_cacheable_tokens(provider, price.model or model.model))
    growth = history_growth(spec, turns)
    if variable_scale and "history" in variable_scale:
        growth = [_scale(g, variable_scale["history"]) for g in growth]
    calls = layout_session(spec, [(f.name, f.tokens) for f in fixed], growth, policy, turns,
                           fixed_versions=fixed_versions, break_cache=break_cache)
    from .caching import PromptCall

    prompt_calls = [PromptCall(at=c.at, segments=c.segments, breakpoints=c.breakpoints,
                               output_tokens=c.output_tokens, cache_key=cache_salt)
                    for c in calls]
    usages = replay(prompt_calls, mode=mode, ttl=spec.caching.ttl, min_tokens=min_tok,
                    openai_increments=_is_openai(provider))
    fixed_total = sum(f.tokens for f in fixed)
    rows: list[TurnCost] = []
    by_turn: dict[int, list[int]] = {}
    for i, c in enumerate(calls):
        by_turn.setdefault(c.turn, []).append(i)
    for t in range(1, turns + 1):
        idx = by_turn[t]
        main = [i for i in idx if calls[i].index >= 0]
        first = calls[main[0]]
        u = [usages[i] for i in idx]
        uu = [Usage(input_tokens=calls[i].prompt_tokens, output_tokens=calls[i].output_tokens)
              for i in idx]
        costs = [cost_of(x, price) for x in u]
        costs_u = [cost_of(x, price) for x in uu]
        comps = dict(first.components)
        comps["output"] = first.output_tokens
        variable = first.prompt_tokens - fixed_total
        rows.append(TurnCost(
            turn=t, calls=len(idx), components=comps, fixed_tokens=fixed_total,
            variable_tokens=variable, context_tokens=first.prompt_tokens,
            max_prompt_tokens=max(calls[i].prompt_tokens for i in main),
            output_tokens=first.output_tokens,
            usage=_sum_usage(u), usage_uncached=_sum_usage(uu),
            cost_usd=sum((c.total_usd for c in costs), ZERO),
            cost_uncached_usd=sum((c.total_usd for c in costs_u), ZERO),
            input_cost_usd=sum((_input_cost(c.total_usd, c.buckets["output_tokens"])
                                for c in costs), ZERO),
            input_cost_uncached_usd=sum((_input_cost(c.total_usd, c.buckets["output_tokens"])
                                         for c in costs_u), ZERO),
        ))
    return ModelRun(model=model, price=price, policy=policy_label(policy), mode=mode,
                    ttl=spec.caching.ttl, min_cacheable_tokens=min_tok, turns=tuple(rows),
                    calls=tuple(calls), usages=tuple(usages))


def _scale(tokens: int, factor: float) -> int:
    return int(Decimal(tokens) * Decimal(repr(factor)) + Decimal("0.5"))


def _scaled_spec(spec: BudgetSpec, scale: Mapping[str, float]) -> BudgetSpec:
    """A copy of ``spec`` with per-call variable components scaled."""
    v = spec.variable
    upd: dict[str, object] = {}
    for name in ("tool_outputs", "user_message", "output"):
        if name in scale:
            upd[name] = getattr(v, name).model_copy(
                update={"tokens": _scale(getattr(v, name).tokens, scale[name])})
    if "retrieved" in scale:
        upd["retrieved"] = v.retrieved.model_copy(
            update={"tokens": _scale(v.retrieved.total, scale["retrieved"])})
    return spec.model_copy(update={"variable": v.model_copy(update=upd)})


def _is_openai(provider: str) -> bool:
    return provider.lower() in ("openai", "azure", "azure-openai")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionTotals:
    """A session of ``turns`` turns: tokens and cost with and without caching."""

    turns: int
    calls: int
    prompt_tokens: int
    """All prompt tokens sent (input + cache read + cache writes)."""
    output_tokens: int
    usage: Usage
    cost_usd: Decimal
    cost_uncached_usd: Decimal
    input_cost_usd: Decimal
    input_cost_uncached_usd: Decimal
    savings_pct: float
    """(uncached − cached) / uncached total cost, in %."""
    input_savings_pct: float

    def as_dict(self) -> dict[str, object]:
        return {
            "turns": self.turns, "calls": self.calls, "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens, "usage": self.usage.as_dict(),
            "cost_usd": self.cost_usd, "cost_uncached_usd": self.cost_uncached_usd,
            "input_cost_usd": self.input_cost_usd,
            "input_cost_uncached_usd": self.input_cost_uncached_usd,
            "savings_pct": round(self.savings_pct, 4),
            "input_savings_pct": round(self.input_savings_pct, 4),
        }


def _pct(base: Decimal, new: Decimal) -> float:
    return 0.0 if base == 0 else float((base - new) / base * 100)


def session_of(run: ModelRun, turns: int) -> SessionTotals:
    rows = run.turns[:turns]
    usage = _sum_usage([r.usage for r in rows])
    cost = sum((r.cost_usd for r in rows), ZERO)
    cost_u = sum((r.cost_uncached_usd for r in rows), ZERO)
    inp = sum((r.input_cost_usd for r in rows), ZERO)
    inp_u = sum((r.input_cost_uncached_usd for r in rows), ZERO)
    return SessionTotals(
        turns=turns, calls=sum(r.calls for r in rows), prompt_tokens=usage.prompt_tokens,
        output_tokens=usage.output_tokens, usage=usage, cost_usd=cost, cost_uncached_usd=cost_u,
        input_cost_usd=inp, input_cost_uncached_usd=inp_u,
        savings_pct=_pct(cost_u, cost), input_savings_pct=_pct(inp_u, inp))


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCost:
    """Cost per task (one session) over the turns distribution, exact by enumeration."""

    expected_usd: Decimal
    expected_uncached_usd: Decimal
    p50_usd: Decimal
    p90_usd: Decimal
    p99_usd: Decimal
    p50_turns: int
    p90_turns: int
    p99_turns: int
    month_usd: Decimal
    """tasks_per_day x days_per_month x expected cost per task."""
    month_uncached_usd: Decimal

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}


def _q(d: Decimal) -> Decimal:
    return d.quantize(Decimal("0.0000000001"))


def task_cost(run: ModelRun, dist: TurnsDistribution, tasks_per_day: float,
              days_per_month: float) -> TaskCost:
    cum = run.cumulative("cost_usd")
    cum_u = run.cumulative("cost_uncached_usd")
    exp = sum((cum[n - 1] * Decimal(repr(p)) for n, p in zip(dist.support, dist.probs,
                                                              strict=True)), ZERO)
    exp_u = sum((cum_u[n - 1] * Decimal(repr(p)) for n, p in zip(dist.support, dist.probs,
                                                                 strict=True)), ZERO)
    if dist.kind == "fixed":
        exp, exp_u = cum[dist.support[0] - 1], cum_u[dist.support[0] - 1]
    else:
        exp, exp_u = _q(exp), _q(exp_u)
    q50, q90, q99 = dist.quantile(0.5), dist.quantile(0.9), dist.quantile(0.99)
    vol = Decimal(repr(tasks_per_day)) * Decimal(repr(days_per_month))
    return TaskCost(expected_usd=exp, expected_uncached_usd=exp_u,
                    p50_usd=cum[q50 - 1], p90_usd=cum[q90 - 1], p99_usd=cum[q99 - 1],
                    p50_turns=q50, p90_turns=q90, p99_turns=q99,
                    month_usd=_q(exp * vol), month_uncached_usd=_q(exp_u * vol))


def resolve_models(loaded: LoadedSpec, book: PriceBook,
                   at: datetime | None = None) -> list[tuple[ModelSpec, Price]]:
    """Each spec model with its price (an unknown model is a spec error naming the line)."""
    from ..errors import PricingError

    when = at or datetime.now(UTC)
    out = []
    for i, m in enumerate(loaded.spec.model_specs()):
        try:
            out.append((m, book.resolve(m.model, m.provider, when, m.service_tier)))
        except PricingError as exc:
            raise loaded.error(("models", i), str(exc)) from None
    return out


def distribution_for(loaded: LoadedSpec, turns: int | None = None) -> TurnsDistribution:
    return turns_distribution(loaded.spec.session, turns)


__all__ += [
    "SessionTotals",
    "TaskCost",
    "distribution_for",
    "resolve_fixed",
    "resolve_models",
    "task_cost",
]
