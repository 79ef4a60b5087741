"""Budget enforcement: the pre-call estimate, the pre-call check and the post-call charge.

Semantics (``docs/budgets.md`` is the user-facing version):

* A call is **blocked** when, for some task in the current chain (the innermost task
  and every ancestor) and some capped metric, ``spent + in_flight + projected > cap``
  — strictly greater: a call that brings spend to exactly the cap is allowed.
  ``in_flight`` is the sum of the estimates of calls of that task still running, so
  concurrent calls cannot all pass on the same headroom.
* Metrics: ``cost_usd`` (projected: the estimate priced with the PriceBook),
  ``input_tokens`` (prompt tokens: input + cache read + cache writes), ``calls``
  (projected: 1; failed calls count).
* After a call, its actual usage is charged to the task and every ancestor. If that
  pushes a task over a cap, ``task.overrun`` becomes True and the call's meta gets
  ``"overrun": [...]``; nothing is raised for the call that already happened; the
  *next* call of that task is then blocked by the pre-call rule.
* ``on_exceed="warn"`` (of the task whose cap is hit) logs a warning and lets the call go.
* A model without a price cannot be checked against ``max_cost_usd``: the call
  proceeds, is counted in ``stats()["unpriced_budget_checks"]`` and is logged once per
  model; its tokens and call count still count.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..errors import BudgetExceeded, PricingError
from ..prices import PriceBook, default_pricebook
from ..usage import Usage
from ._context import SPEND_LOCK, TaskContext

__all__ = ["Estimate", "Reservation", "charge", "estimate_request", "precheck", "release"]

log = logging.getLogger("ctxbudget.track")

#: Output tokens assumed when a request sets no output cap (``max_tokens`` etc.).
DEFAULT_OUTPUT_TOKENS = 4096

_settings: dict[str, Any] = {"pricebook": None, "default_output_tokens": DEFAULT_OUTPUT_TOKENS}
_warned_unpriced: set[tuple[str, str]] = set()
counters: dict[str, int] = {"budget_blocked": 0, "budget_warned": 0, "overruns": 0,
                            "unpriced_budget_checks": 0, "estimate_fallbacks": 0}


def pricebook() -> PriceBook:
    pb = _settings["pricebook"]
    if pb is None:
        pb = _settings["pricebook"] = default_pricebook()
    return pb  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- estimate


def _chars_over_4(content: Any) -> int:
    text = content if isinstance(content, str) else json.dumps(content, default=str,
                                                               ensure_ascii=False)
    return (len(text) + 3) // 4


def _count_with_tokens_module(content: Any, model: str, provider: str | None) -> int:
    from ..tokens import count_tokens

    return int(count_tokens(content, model, provider=provider).tokens)


_counter: list[Callable[[Any, str, str | None], int]] = []


def count_prompt_tokens(content: Any, model: str, provider: str | None) -> int:
    """Prompt tokens of a request's content: ``ctxbudget.tokens.count_tokens`` when that
    module is available, else ``ceil(len(JSON text) / 4)`` (counted in
    ``stats()["estimate_fallbacks"]``)."""
    if not _counter:
        try:
            from .. import tokens as _t

            _counter.append(_count_with_tokens_module if hasattr(_t, "count_tokens")
                            else lambda c, m, p: _chars_over_4(c))
        except ImportError:
            _counter.append(lambda c, m, p: _chars_over_4(c))
    try:
        return _counter[0](content, model, provider)
    except Exception as exc:
        counters["estimate_fallbacks"] += 1
        log.debug("ctxbudget: token counter failed (%s); using chars/4", exc)
        return _chars_over_4(content)


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """A pre-call projection for one call."""

    usage: Usage
    """Projected usage: prompt tokens (cache reads only if a ledger expects them), and
    the output cap (or the default) as output."""
    cost_usd: Decimal | None
    """Priced projection, ``None`` when the model has no price."""
    source: str
    """``ledger`` or ``count``."""


def _prompt_content(provider_api: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    keys = {
        "anthropic": ("system", "messages", "tools"),
        "openai-chat": ("messages", "tools", "functions"),
        "openai-responses": ("instructions", "input", "tools"),
    }[provider_api]
    return {k: kwargs[k] for k in keys if kwargs.get(k) is not None}


def _output_cap(provider_api: str, kwargs: Mapping[str, Any]) -> int:
    names = {"anthropic": ("max_tokens",),
             "openai-chat": ("max_completion_tokens", "max_tokens"),
             "openai-responses": ("max_output_tokens",)}[provider_api]
    for n in names:
        v = kwargs.get(n)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return v
    return int(_settings["default_output_tokens"])


def estimate_request(provider: str, provider_api: str, model: str, kwargs: Mapping[str, Any],
                     ledger: Any = None) -> Estimate:
    """Project a call's usage and cost before it is sent."""
    out = _output_cap(provider_api, kwargs)
    comps = getattr(ledger, "components", None) if ledger is not None else None
    if isinstance(comps, Mapping) and comps:
        prompt = sum(int(v) for v in comps.values())
        read = min(int(getattr(ledger, "expected_cache_read_tokens", 0) or 0), prompt)
        usage = Usage(input_tokens=prompt - read, cache_read_tokens=read, output_tokens=out)
        source = "ledger"
    else:
        prompt = count_prompt_tokens(_prompt_content(provider_api, kwargs), model, provider)
        usage = Usage(input_tokens=prompt, output_tokens=out)
        source = "count"
    return Estimate(usage=usage, cost_usd=price_usage(usage, model, provider), source=source)


def price_usage(usage: Usage, model: str, provider: str | None,
                at: datetime | None = None) -> Decimal | None:
    """USD of ``usage`` via the tracker's PriceBook (one cost formula), ``None`` if unpriced."""
    if (provider or "", model) in _warned_unpriced:
        return None
    try:
        return pricebook().cost(usage, model, provider, at or datetime.now(UTC)).total_usd
    except PricingError:
        key = (provider or "", model)
        if key not in _warned_unpriced:
            _warned_unpriced.add(key)
            log.warning("ctxbudget: no price for %s/%s: max_cost_usd cannot be enforced for it",
                        provider, model)
        return None


# --------------------------------------------------------------------------- check / charge


@dataclass(slots=True)
class Reservation:
    """What a call reserved on each capped task of its chain (released after the call)."""

    tasks: tuple[TaskContext, ...]
    cost_usd: Decimal
    input_tokens: int


def precheck(ctx: TaskContext, est: Estimate | None) -> Reservation:
    """Block (raise :class:`BudgetExceeded`) or warn if the call would pass a cap; else reserve."""
    proj_usd = est.cost_usd if est is not None and est.cost_usd is not None else Decimal(0)
    proj_in = est.usage.prompt_tokens if est is not None else 0
    if est is not None and est.cost_usd is None and ctx.cost_capped:
        counters["unpriced_budget_checks"] += 1
    breach: tuple[TaskContext, str, Any, Any, Any] | None = None
    with SPEND_LOCK:
        capped = tuple(t for t in ctx.chain() if t.limits.any)
        for t in capped:
            lim = t.limits
            checks: list[tuple[str, Any, Any, Any]] = []
            if lim.max_calls is not None:
                checks.append(("calls", t.calls, t.reserved_calls + 1, lim.max_calls))
            if lim.max_input_tokens is not None:
                checks.append(("input_tokens", t.input_tokens, t.reserved_input_tokens + proj_in,
                               lim.max_input_tokens))
            if lim.max_cost_usd is not None and est is not None and est.cost_usd is not None:
                checks.append(("cost_usd", t._spent_usd, t.reserved_usd + proj_usd,
                               lim.max_cost_usd))
            for metric, spent, more, cap in checks:
                if spent + more > cap:
                    breach = (t, metric, spent, cap, spent + more)
                    break
            if breach is not None and breach[0].limits.on_exceed == "raise":
                break
        if breach is None or breach[0].limits.on_exceed == "warn":
            for t in capped:
                t.reserved_calls += 1
                t.reserved_input_tokens += proj_in
                t.reserved_usd += proj_usd
    if breach is not None:
        t, metric, spent, cap, projected = breach
        if t.limits.on_exceed == "raise":
            counters["budget_blocked"] += 1
            raise BudgetExceeded(task_id=t.task_id, metric=metric, spent=spent, limit=cap,
                                 projected=projected, phase="pre-call")
        counters["budget_warned"] += 1
        log.warning("ctxbudget: task %r %s budget %s would be exceeded (spent %s, with this "
                    "call %s); proceeding (on_exceed='warn')", t.task_id, metric, cap, spent,
                    projected)
    return Reservation(tasks=capped, cost_usd=proj_usd, input_tokens=proj_in)


def release(reservation: Reservation) -> None:
    """Drop a reservation without charging anything (the call was never sent)."""
    with SPEND_LOCK:
        for t in reservation.tasks:
            t.reserved_calls -= 1
            t.reserved_input_tokens -= reservation.input_tokens
            t.reserved_usd -= reservation.cost_usd


def charge(ctx: TaskContext, reservation: Reservation | None, usage: Usage,
           cost_usd: Decimal | None, deferred: tuple[Usage, str, str, datetime] | None = None,
           *, calls: int = 1) -> list[str]:
    """Release the reservation and add the actual spend to the task and every ancestor.

    ``cost_usd`` is the call's priced cost (``None``: unpriced model); ``deferred`` instead
    queues the call for pricing when ``spent_usd`` is read (used when no task in the chain
    has a cost cap). ``calls``: HTTP attempts (SDK retries count). Returns
    ``["<task_id>:<metric>", ...]`` for every cap the actual spend
    now exceeds (and sets ``overrun`` on those tasks)."""
    over: list[str] = []
    prompt = usage.prompt_tokens
    buckets = (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_5m_tokens,
               usage.cache_write_1h_tokens, usage.output_tokens, usage.reasoning_tokens)
    with SPEND_LOCK:
        if reservation is not None:
            for t in reservation.tasks:
                t.reserved_calls -= 1
                t.reserved_input_tokens -= reservation.input_tokens
                t.reserved_usd -= reservation.cost_usd
        t_: TaskContext | None = ctx
        while t_ is not None:
            t = t_
            t_ = t.parent
            t.calls += calls
            t.input_tokens += prompt
            u = t._u
            for i in range(6):
                u[i] += buckets[i]
            if deferred is not None:
                t._pending_cost.append(deferred)
            elif cost_usd is None:
                t.unpriced_calls += 1
            else:
                t._spent_usd += cost_usd
            lim = t.limits
            if not lim.any:
                continue
            for metric, spent, cap in (("calls", t.calls, lim.max_calls),
                                       ("input_tokens", t.input_tokens, lim.max_input_tokens),
                                       ("cost_usd", t._spent_usd, lim.max_cost_usd)):
                if cap is not None and spent > cap:
                    if not t.overrun:
                        counters["overruns"] += 1
                    t.overrun = True
                    over.append(f"{t.task_id}:{metric}")
    return over
