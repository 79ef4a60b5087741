"""The one recording path every integration shares: before a call, after a call.

``before_call`` captures the context (task, ledger), runs the budget pre-check —
the only thing in tracking that may raise into the app, and only
:class:`~ctxbudget.errors.BudgetExceeded` — and starts the clock. ``finish_call``
turns the outcome into a :class:`~ctxbudget.usage.Call`, charges the task chain and
enqueues the record. Any other failure inside tracking is logged and counted
(``stats()["tracking_errors"]``), never raised.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..adapters import AdaptedUsage, iteration_calls
from ..errors import BudgetExceeded
from ..usage import Call, Usage
from . import _budget
from ._context import _CURRENT, _LEDGER, SPEND_LOCK, TaskContext
from ._writer import before_drain, put_call

__all__ = ["PendingCall", "add_listener", "before_call", "finish_call", "internal_error",
           "note_attempt", "record_call", "release_call", "remove_listener"]

log = logging.getLogger("ctxbudget.track")

_err_lock = threading.Lock()
counters: dict[str, int] = {"tracking_errors": 0, "usage_missing": 0, "api_errors": 0}
_last_log = [0.0]


def internal_error(exc: BaseException, where: str) -> None:
    """Count a failure inside tracking and log it (at most one full log line per 10 s)."""
    with _err_lock:
        counters["tracking_errors"] += 1
        now = time.monotonic()
        loud = now - _last_log[0] >= 10.0
        if loud:
            _last_log[0] = now
    if loud:
        log.warning("ctxbudget: tracking error in %s (ignored, the call is unaffected): %r",
                    where, exc)


#: Called with every recorded Call, and with ("blocked", provider, model, task) when a
#: budget blocks a call (``ctxbudget.metrics`` counts both). Errors are logged, not raised.
_listeners: list[Callable[[str, Any], None]] = []


def add_listener(fn: Callable[[str, Any], None]) -> None:
    """Call ``fn("call", Call)`` for every recorded call and
    ``fn("blocked", (provider, model, TaskContext))`` for every call a budget blocks."""
    if fn not in _listeners:
        _listeners.append(fn)


def remove_listener(fn: Callable[[str, Any], None]) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def _notify(kind: str, payload: Any) -> None:
    for fn in list(_listeners):
        try:
            fn(kind, payload)
        except Exception as exc:
            internal_error(exc, "tracking listener")


def _reinit_locks_after_fork() -> None:
    # A lock held by another thread at fork() time would stay held forever in the child.
    for lock in (SPEND_LOCK, _err_lock):
        reinit = getattr(lock, "_at_fork_reinit", None)
        if reinit is not None:
            reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_locks_after_fork)


def count(name: str) -> None:
    with _err_lock:
        counters[name] = counters.get(name, 0) + 1


@dataclass(slots=True)
class PendingCall:
    """A call in flight: what was captured before it was sent."""

    provider: str
    api: str
    model: str
    ts: datetime
    t0: float
    ctx: TaskContext | None
    ledger: Any = None
    reservation: _budget.Reservation | None = None
    estimate: _budget.Estimate | None = None
    done: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    """HTTP attempts the SDK made for this call (its own retries included); 0 when the
    SDK does not let us see them (then the call counts as one)."""


#: Settlements of streams the app dropped without closing them, queued by their garbage
#: collection finalizer and run at a safe point (here, before the next call, on the
#: writer thread, at flush and exit): a finalizer may run inside any allocation, even
#: while this thread holds SPEND_LOCK, so it must not charge the task itself.
DROPPED: collections.deque[Callable[[], None]] = collections.deque()


def settle_dropped() -> None:
    """Run the queued settlements of dropped streams (never raises)."""
    while True:
        try:
            fn = DROPPED.popleft()
        except IndexError:
            return
        try:
            fn()
        except Exception as exc:
            internal_error(exc, "settling a dropped stream")


before_drain.append(settle_dropped)


#: The call whose SDK request is being prepared in this context: the SDK's per-attempt
#: hook (``_prepare_request``, patched by ``track``) counts its retries on it.
_PENDING: ContextVar[PendingCall | None] = ContextVar("ctxbudget_pending", default=None)


def note_attempt() -> None:
    """Count one HTTP attempt (the first send or an SDK-internal retry) of the current call."""
    p = _PENDING.get()
    if p is not None and not p.done:
        p.attempts += 1


def clear_pending(p: PendingCall) -> None:
    """The SDK has returned for ``p``: later requests in this context are not its retries."""
    if _PENDING.get() is p:
        _PENDING.set(None)


def _usage_will_be_missing(api: str, kwargs: Mapping[str, Any]) -> bool:
    """An OpenAI chat stream without ``stream_options.include_usage``: the API sends no
    usage, so the call is charged (and recorded) at its reservation."""
    if api != "openai-chat" or kwargs.get("stream") is not True:
        return False
    so = kwargs.get("stream_options")
    return not (isinstance(so, Mapping) and so.get("include_usage"))


def before_call(provider: str, api: str, kwargs: dict[str, Any]) -> PendingCall:
    """Pop ``ctxbudget_ledger`` from ``kwargs`` (so the SDK never sees it), check budgets.

    Raises :class:`BudgetExceeded` when a cap blocks the call; nothing else."""
    ledger = kwargs.pop("ctxbudget_ledger", None)
    if ledger is None:
        ledger = _LEDGER.get()
    ctx = _CURRENT.get()
    p = PendingCall(provider=provider, api=api, model=str(kwargs.get("model") or ""),
                    ts=datetime.now(UTC), t0=0.0, ctx=ctx, ledger=ledger)
    if DROPPED:
        settle_dropped()
    capped = ctx is not None and ctx.capped
    if _budget.can_price(api) and ((capped and ctx is not None and ctx.estimate_needed)
                                   or _usage_will_be_missing(api, kwargs)):
        try:
            p.estimate = _budget.estimate_request(provider, api, p.model, kwargs, ledger)
        except Exception as exc:
            internal_error(exc, "budget estimate")
    if capped and ctx is not None:
        est = p.estimate
        try:
            p.reservation = _budget.precheck(ctx, est)
        except BudgetExceeded:
            if _listeners:
                _notify("blocked", (provider, p.model, ctx))
            raise
        except Exception as exc:
            internal_error(exc, "budget check")
    p.t0 = time.perf_counter()
    _PENDING.set(p)
    return p


def release_call(p: PendingCall) -> None:
    """The call was never sent (e.g. a stream helper never entered): drop its reservation,
    record nothing."""
    if p.done:
        return
    p.done = True
    clear_pending(p)
    try:
        if p.ctx is not None and p.reservation is not None:
            _budget.release(p.reservation)
    except Exception as exc:
        internal_error(exc, "releasing a reservation")


def _ledger_fields(ledger: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    comps = getattr(ledger, "components", None)
    if isinstance(comps, Mapping) and comps:
        out["components"] = {str(k): int(v) for k, v in comps.items()}
    fp = getattr(ledger, "prefix_fingerprint", None)
    if fp:
        out["prefix_fingerprint"] = tuple(str(x) for x in fp)
    ecr = getattr(ledger, "expected_cache_read_tokens", None)
    if ecr is not None:
        out["expected_cache_read_tokens"] = int(ecr)
    return out


def finish_call(
    p: PendingCall,
    adapted: AdaptedUsage | None,
    *,
    status: str = "ok",
    error: BaseException | None = None,
    meta: Mapping[str, Any] | None = None,
    latency_ms: float | None = None,
    source: str = "track",
    responded: bool | None = None,
) -> Call | None:
    """Record the call once: charge the task chain, build the Call, enqueue it.

    ``responded``: whether the provider answered (default: ``error is None``; a stream
    that fails midway did). A call that was answered but whose usage is unknown (an
    OpenAI chat stream without ``include_usage``, a stream dropped before its usage
    arrived) is charged and recorded at its reservation — the most it can be billed —
    with ``meta.usage_missing`` and ``meta.usage_estimated = "reservation"``."""
    if p.done:
        return None
    p.done = True
    clear_pending(p)
    if responded is None:
        responded = error is None
    try:
        if latency_ms is None:
            latency_ms = (time.perf_counter() - p.t0) * 1000.0
        usage = adapted.usage if adapted is not None else Usage()
        model = (adapted.model if adapted is not None and adapted.model else None) or p.model
        m: dict[str, Any] = dict(p.meta)
        if meta:
            m.update(meta)
        if error is not None:
            status = "error"
            count("api_errors")
            m["error"] = type(error).__name__
            code = getattr(error, "status_code", None)
            if isinstance(code, int):
                m["http_status"] = code
        if adapted is None and responded:
            count("usage_missing")
            m.setdefault("usage_missing", True)
            if p.estimate is not None:
                usage = p.estimate.usage
                m["usage_estimated"] = "reservation"
        if p.attempts > 1:
            m["attempts"] = p.attempts
        if p.estimate is not None:
            m["estimate"] = {"prompt_tokens": p.estimate.usage.prompt_tokens,
                             "output_tokens": p.estimate.usage.output_tokens,
                             "source": p.estimate.source}
        ctx = p.ctx
        call = Call(
            ts=p.ts, provider=p.provider, model=model, usage=usage,
            task_id=ctx.task_id if ctx else None,
            session_id=ctx.session_id if ctx else None,
            task_type=ctx.task_type if ctx else None,
            request_id=adapted.request_id if adapted is not None else None,
            latency_ms=latency_ms, status=status, source=source,
            service_tier=adapted.service_tier if adapted is not None else None,
            input_inclusive=adapted.input_inclusive if adapted is not None else None,
            meta=m or None,
            **_ledger_fields(p.ledger),
        )
        # one record per sampling iteration, each at its own model (the split the
        # importers, the gateway and `ctxbudget usage --cost` price the same way)
        calls = iteration_calls(adapted, call) if adapted is not None else [call]
        if ctx is not None:
            cost: Decimal | None = Decimal(0)
            deferred = None
            if usage:
                parts = [(c.usage, c.model, p.provider, p.ts) for c in calls]
                if ctx.cost_capped:
                    costs = [_budget.price_usage(*part) for part in parts]
                    cost = None if None in costs else sum(filter(None, costs), Decimal(0))
                else:
                    deferred = parts
            over = _budget.charge(ctx, p.reservation, usage, cost, deferred,
                                  calls=max(1, p.attempts))
            if over:
                m["overrun"] = over
                call = call.with_(meta=m)
                calls = iteration_calls(adapted, call) if adapted is not None else [call]
        for c in calls:
            put_call(c)
        if _listeners:
            for c in calls:
                _notify("call", c)
        return call
    except Exception as exc:
        internal_error(exc, "recording a call")
        return None


def adapt_guarded(adapter: Callable[[Any], AdaptedUsage], body: Any) -> AdaptedUsage | None:
    try:
        return adapter(body)
    except Exception as exc:
        internal_error(exc, "usage adapter")
        return None


def record_call(call: Call) -> None:
    """Enqueue an already-built :class:`Call` (importers, custom clients, tests).

    Does not check or charge budgets; never raises."""
    try:
        put_call(call)
    except Exception as exc:  # pragma: no cover - put never raises
        internal_error(exc, "record_call")
    if _listeners:
        _notify("call", call)
