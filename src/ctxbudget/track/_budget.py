"""Budget enforcement for tracked calls: the reservation, the pre-call check, the charge.

One reserve / settle implementation serves the tracker and the gateway: this module
prices a call's reservation with :class:`ctxbudget.budgets.RequestPricer` (the same
request-body pricing the gateway uses) and holds it on a
:class:`ctxbudget.budgets.MemoryLedger`. Semantics (``docs/budgets.md`` is the
user-facing version):

* Each capped task of the chain (the innermost task and every ancestor) has one ledger
  budget per cap (``max_cost_usd`` -> ``usd``, ``max_input_tokens`` -> ``tokens``
  charged with *prompt* tokens, ``max_calls`` -> ``calls``), in a ``task`` window
  scoped to that task instance. A root task and its descendants share one in-process
  ledger (created with the root, gone with it), so one ``reserve`` checks and holds
  every cap of the chain atomically.
* A call is **blocked** when, for some budget, ``spent + held + reservation > cap``
  (strictly greater; ``held`` = reservations of calls still in flight). The calling
  task and its ancestors up to the capped one get outcome ``blocked`` and
  ``blocked_by`` (the cap, its limit, the capped task), recorded with the task.
* The reservation is what the call can be billed at most: the request body counted
  and split into the buckets it can be billed at (uncached input, and cache writes up
  to the last ``cache_control`` breakpoint, 1-hour writes priced as such), the output
  cap (or ``default_output_tokens``) as output, priced as one request (context tiers)
  by the tracker's PriceBook. Cache reads are never assumed: a cache miss must fit.
* After the call the reservation is settled with the actual usage (SDK retries count
  as calls); a call answered without usage is settled at its reservation. Overrun of
  the actual over a cap sets ``task.overrun``; nothing is raised for the call that
  already happened and the next one is blocked.
* ``on_exceed="warn"`` budgets are the ledger's *soft* budgets: never block, logged.
* A model without a price cannot be checked against ``max_cost_usd``: the call
  proceeds (no ``usd`` hold), is counted in ``stats()["unpriced_budget_checks"]`` and
  logged once per model; its tokens and call count still count.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import BudgetExceeded, PricingError
from ..prices import PriceBook, default_pricebook
from ..usage import Usage
from . import _context
from ._context import SPEND_LOCK, TaskContext

if TYPE_CHECKING:
    from ..budgets import Budget, Charge, Ledger, RequestPricer
    from ..budgets import Reservation as LedgerReservation

__all__ = ["Estimate", "Reservation", "charge", "estimate_request", "precheck", "release"]

log = logging.getLogger("ctxbudget.track")

#: Output tokens assumed when a request sets no output cap (``max_tokens`` etc.).
DEFAULT_OUTPUT_TOKENS = 4096

_settings: dict[str, Any] = {"pricebook": None, "default_output_tokens": DEFAULT_OUTPUT_TOKENS}
_warned_unpriced: set[tuple[str, str]] = set()
counters: dict[str, int] = {"budget_blocked": 0, "budget_warned": 0, "overruns": 0,
                            "unpriced_budget_checks": 0, "estimate_fallbacks": 0}

#: ledger budget name per cap, and the metric name BudgetExceeded reports
_CAPS: tuple[tuple[str, str, str], ...] = (
    ("max_cost_usd", "usd", "cost_usd"),
    ("max_input_tokens", "tokens", "input_tokens"),
    ("max_calls", "calls", "calls"),
)
_REPORTED = {name: reported for name, _, reported in _CAPS}


def pricebook() -> PriceBook:
    pb = _settings["pricebook"]
    if pb is None:
        pb = _settings["pricebook"] = default_pricebook()
    return pb  # type: ignore[no-any-return]


def _pricer() -> RequestPricer:
    """The shared request-body pricer, rebuilt when the PriceBook or the default output
    cap changes (``ctxbudget.track.configure``)."""
    pb, out = pricebook(), int(_settings["default_output_tokens"])
    cached = _settings.get("pricer")
    if cached is None or cached[0] is not pb or cached[1] != out:
        from ..budgets import RequestPricer

        cached = _settings["pricer"] = (pb, out, RequestPricer(pb, default_output_tokens=out))
    pricer: RequestPricer = cached[2]
    return pricer


# --------------------------------------------------------------------------- estimate


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """A pre-call reservation for one call."""

    usage: Usage
    """The most the call can be billed: prompt tokens split into uncached input and
    cache writes (never cache reads), the output cap as output."""
    cost_usd: Decimal | None
    """``usage`` priced as one request, ``None`` when the model has no price."""
    source: str
    """``body``: counted from the request body by ``ctxbudget.budgets.RequestPricer``."""


#: The request fields that decide what a call can be billed, per API.
_BODY_KEYS: dict[str, tuple[str, ...]] = {
    "anthropic": ("system", "messages", "tools", "max_tokens", "cache_control",
                  "service_tier"),
    "openai-chat": ("messages", "tools", "functions", "max_tokens", "max_completion_tokens",
                    "n", "service_tier", "stream", "stream_options"),
    "openai-responses": ("instructions", "input", "tools", "max_output_tokens",
                         "service_tier"),
}


def can_price(api: str) -> bool:
    """Whether a reservation can be priced from this API's request (Anthropic Messages,
    OpenAI Chat Completions and Responses). Other integrations (google-genai, Bedrock)
    reserve a call but no tokens or USD: their caps bind from the actual spend."""
    return api in _BODY_KEYS


def _enc_hook(obj: Any) -> Any:
    """SDK request objects (pydantic models) as JSON; anything else (an iterator the SDK
    would consume, a sentinel) is not estimated rather than consumed."""
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    raise TypeError(f"cannot price a request field of type {type(obj).__name__}")


def _given(v: Any) -> bool:
    return v is not None and type(v).__name__ not in ("NotGiven", "Omit")


def estimate_request(provider: str, provider_api: str, model: str, kwargs: Mapping[str, Any],
                     ledger: Any = None) -> Estimate:
    """The reservation of a call: its request priced by the shared
    :class:`~ctxbudget.budgets.RequestPricer`. ``ledger`` (the packer's) is accepted for
    compatibility and not used: expected cache reads must not lower a reservation.

    Raises for an API the pricer does not read or a body it cannot count."""
    import msgspec

    keys = _BODY_KEYS.get(provider_api)
    if keys is None:
        raise ValueError(f"no reservation pricing for the {provider_api!r} API")
    body: dict[str, Any] = {k: kwargs[k] for k in keys if _given(kwargs.get(k))}
    body["model"] = model
    data = msgspec.json.encode(body, enc_hook=_enc_hook)
    est = _pricer().estimate(data, provider_api, provider=provider)
    if est.cost_usd is None:
        _warn_unpriced(provider, model)
    return Estimate(usage=est.usage, cost_usd=est.cost_usd, source="body")


def _warn_unpriced(provider: str | None, model: str) -> None:
    key = (provider or "", model)
    if key not in _warned_unpriced:
        _warned_unpriced.add(key)
        log.warning("ctxbudget: no price for %s/%s: max_cost_usd cannot be enforced for it",
                    provider, model)


def price_usage(usage: Usage, model: str, provider: str | None,
                at: datetime | None = None) -> Decimal | None:
    """USD of ``usage`` via the tracker's PriceBook (one cost formula), ``None`` if unpriced."""
    if (provider or "", model) in _warned_unpriced:
        return None
    try:
        return pricebook().cost(usage, model, provider, at or datetime.now(UTC)).total_usd
    except PricingError:
        _warn_unpriced(provider, model)
        return None


# --------------------------------------------------------------------------- ledger


def _budgets_of(t: TaskContext) -> tuple[Budget, ...]:
    """The ledger budgets of one task's caps (built once per task)."""
    cached: tuple[Budget, ...] | None = t._budgets
    if cached is None:
        from ..budgets import Budget, Window

        lim = t.limits
        window = Window.parse("task")
        out = []
        for name, metric, _ in _CAPS:
            cap = getattr(lim, name)
            if cap is not None:
                out.append(Budget(name=name, limit=Decimal(cap), metric=metric,  # type: ignore[arg-type]
                                  window=window, soft=lim.on_exceed == "warn"))
        cached = t._budgets = tuple(out)  # two threads may build it: same names, same scope
    return cached


def _ledger_of(t: TaskContext) -> Ledger:
    root = t.root
    led = root._ledger
    if led is None:
        with SPEND_LOCK:
            led = root._ledger
            if led is None:
                from ..budgets import MemoryLedger

                led = root._ledger = MemoryLedger(None, reservation_ttl=float("inf"))
    return led  # type: ignore[no-any-return]


def _charges(ctx: TaskContext, with_usd: bool) -> tuple[list[Charge], list[TaskContext]]:
    """The charges of every cap in the chain, and the task each belongs to (cached on the
    task: its chain and caps never change)."""
    cache: dict[bool, tuple[list[Charge], list[TaskContext]]] | None = ctx._chain_charges
    if cache is None:
        cache = ctx._chain_charges = {}
    hit = cache.get(with_usd)
    if hit is not None:
        return hit
    from ..budgets import Charge

    charges: list[Charge] = []
    owners: list[TaskContext] = []
    for t in ctx.chain():
        if not t.limits.any:
            continue
        for b in _budgets_of(t):
            if b.metric == "usd" and not with_usd:
                continue
            charges.append(Charge(b, t._scope))
            owners.append(t)
    cache[with_usd] = (charges, owners)
    return charges, owners


def held(t: TaskContext, cap: str) -> Decimal | int:
    """What calls in flight hold on ``t``'s ``cap`` (0 when it has no such cap)."""
    if t._budgets is None or t.root._ledger is None:
        return 0
    from ..budgets import Charge

    for b in _budgets_of(t):
        if b.name == cap:
            (state,) = _ledger_of(t).states([Charge(b, t._scope)])
            return state.held if b.metric == "usd" else int(state.held)
    return 0


_context.set_pricer(price_usage, held)


# --------------------------------------------------------------------------- check / charge


@dataclass(slots=True)
class Reservation:
    """A call's hold on the ledger of its task chain (settled or released after it)."""

    ledger: Ledger
    hold: LedgerReservation | None


def _spent(t: TaskContext, cap: str) -> Decimal | int:
    if cap == "max_cost_usd":
        return t._spent_usd
    return t.input_tokens if cap == "max_input_tokens" else t.calls


def precheck(ctx: TaskContext, est: Estimate | None) -> Reservation:
    """Block (raise :class:`BudgetExceeded`) or warn if the call would pass a cap; else
    hold its reservation on every capped task of the chain."""
    from ..budgets import Amount

    priced = est is not None and est.cost_usd is not None
    if est is not None and not priced and ctx.cost_capped:
        counters["unpriced_budget_checks"] += 1
    amount = Amount(usd=est.cost_usd if est is not None and est.cost_usd is not None
                    else Decimal(0),
                    tokens=est.usage.prompt_tokens if est is not None else 0, calls=1)
    charges, owners = _charges(ctx, with_usd=priced)
    ledger = _ledger_of(ctx)
    decision = ledger.reserve(charges, amount)
    if not decision.allowed:
        state = decision.blocked_by
        assert state is not None
        i = next(i for i, c in enumerate(charges)
                 if c.scope == state.scope and c.budget.name == state.name)
        t, cap = owners[i], state.name
        spent = _spent(t, cap)
        more = amount.of(charges[i].budget.metric)
        h: Decimal | int = state.held if cap == "max_cost_usd" else int(state.held)
        counters["budget_blocked"] += 1
        exc = BudgetExceeded(task_id=t.task_id, metric=_REPORTED[cap], spent=spent,
                             limit=getattr(t.limits, cap), projected=spent + h + more,
                             phase="pre-call")
        # the calling task and every task up to the capped one are blocked by this cap
        info = _context.blocked_info(exc)
        for b in ctx.chain():
            b.block(info)
            if b is t:
                break
        raise exc
    if decision.soft_exceeded:
        state = decision.soft_exceeded[0]
        t = next(o for o, c in zip(owners, charges, strict=True) if c.scope == state.scope)
        counters["budget_warned"] += 1
        log.warning("ctxbudget: task %r %s budget %s would be exceeded (spent %s, with this "
                    "call %s); proceeding (on_exceed='warn')", t.task_id, _REPORTED[state.name],
                    state.limit, _spent(t, state.name), state.spent + state.held)
    return Reservation(ledger=ledger, hold=decision.reservation)


def release(reservation: Reservation) -> None:
    """Drop a reservation without charging anything (the call was never sent)."""
    if reservation.hold is not None:
        reservation.ledger.release(reservation.hold)


def charge(ctx: TaskContext, reservation: Reservation | None, usage: Usage,
           cost_usd: Decimal | None,
           deferred: Sequence[tuple[Usage, str, str, datetime]] | None = None,
           *, calls: int = 1) -> list[str]:
    """Settle the reservation with the actual spend and add it to the task and every
    ancestor.

    ``cost_usd`` is the call's priced cost (``None``: unpriced model); ``deferred`` instead
    queues the call's parts (one per sampling iteration, each at its own model) for
    pricing when ``spent_usd`` is read (used when no task in the chain has a cost cap).
    ``calls``: HTTP attempts (SDK retries count). Returns ``["<task_id>:<metric>", ...]``
    for every cap the actual spend now exceeds (and sets ``overrun`` on those tasks)."""
    over: list[str] = []
    prompt = usage.prompt_tokens
    buckets = (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_5m_tokens,
               usage.cache_write_1h_tokens, usage.output_tokens, usage.reasoning_tokens)
    if reservation is not None and reservation.hold is not None:
        from ..budgets import Amount

        reservation.ledger.settle(reservation.hold, Amount(
            usd=cost_usd if cost_usd is not None and deferred is None else Decimal(0),
            tokens=prompt, calls=calls))
    with SPEND_LOCK:
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
                t._pending_cost.extend(deferred)
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
