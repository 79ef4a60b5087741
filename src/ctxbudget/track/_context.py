"""Task context: which task, session and task type the current code is working for.

``task(...)`` returns a :class:`TaskSpec`, usable as a (sync or async) context
manager and as a decorator; entering it creates a fresh :class:`TaskContext` and
makes it current in a :class:`contextvars.ContextVar`. Tasks nest: a task entered
while another is current becomes its child (``parent``), inherits its session id
and task type unless given, and every call it makes is also charged to all of
its ancestors.

Propagation: asyncio tasks copy the context automatically, so ``asyncio.gather``
and ``create_task`` inside a task block see it. Plain threads do not: submit work
with :class:`TaskThreadPoolExecutor`, wrap the callable with :func:`propagate`, or
use ``contextvars.copy_context().run`` yourself (``asyncio.to_thread`` already does).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar, cast

from ..errors import BudgetExceeded
from ..usage import Outcome, Usage

__all__ = [
    "Limits",
    "TaskContext",
    "TaskSpec",
    "TaskThreadPoolExecutor",
    "current_task",
    "propagate",
    "task",
    "use_ledger",
]

F = TypeVar("F", bound=Callable[..., Any])
OnExceed = Literal["raise", "warn"]
_OUTCOMES = ("success", "partial", "failure", "blocked")

_CURRENT: ContextVar[TaskContext | None] = ContextVar("ctxbudget_task", default=None)
_LEDGER: ContextVar[Any] = ContextVar("ctxbudget_ledger", default=None)

#: One lock guards every task's counters: updates are a few additions, so a single
#: lock costs less than one per task and makes ancestor roll-ups atomic.
SPEND_LOCK = threading.Lock()

_SCOPES = itertools.count(1)

#: Called with a finished TaskContext (set by the tracker: enqueues the task record).
_on_task_exit: list[Callable[[TaskContext], None]] = []

#: Set by ``_budget`` (which imports this module, never the other way round): prices a
#: call's usage for ``spent_usd``, and reads what calls in flight hold on a cap.
_price: list[Callable[[Usage, str, str | None, datetime | None], Decimal | None]] = []
_held: list[Callable[[TaskContext, str], Any]] = []


def set_pricer(price: Callable[[Usage, str, str | None, datetime | None], Decimal | None],
               held: Callable[[TaskContext, str], Any]) -> None:
    _price[:] = [price]
    _held[:] = [held]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """A task's budget caps. ``None`` means no cap for that metric."""

    max_cost_usd: Decimal | None = None
    """USD, priced with the tracker's PriceBook (all buckets, cache writes at their rates)."""
    max_input_tokens: int | None = None
    """Prompt tokens: input + cache read + cache writes (``Usage.prompt_tokens``)."""
    max_calls: int | None = None
    """API calls attempted, failed ones included."""
    on_exceed: OnExceed = "raise"

    @property
    def any(self) -> bool:
        return self.max_cost_usd is not None or self.max_input_tokens is not None \
            or self.max_calls is not None

    @property
    def needs_estimate(self) -> bool:
        return self.max_cost_usd is not None or self.max_input_tokens is not None


class TaskContext:
    """One running (or finished) task: identity, outcome and spend so far.

    Spend counters include every call made inside this task *and its child tasks*.
    ``reserved_*`` are what calls in flight hold on this task's caps (their reservations
    on the budget ledger, released or settled when they end).
    """

    __slots__ = (
        "_budgets",
        "_chain_charges",
        "_ledger",
        "_outcome",
        "_pending_cost",
        "_scope",
        "_spent_usd",
        "_token",
        "_u",
        "blocked_by",
        "calls",
        "capped",
        "cost_capped",
        "ended_at",
        "estimate_needed",
        "input_tokens",
        "limits",
        "meta",
        "outcome_set",
        "overrun",
        "parent",
        "session_id",
        "started_at",
        "task_id",
        "task_type",
        "unpriced_calls",
    )
    task_id: str
    task_type: str | None
    session_id: str | None
    parent: TaskContext | None

    def __init__(
        self,
        task_id: str,
        *,
        task_type: str | None = None,
        session_id: str | None = None,
        parent: TaskContext | None = None,
        limits: Limits | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.task_id = task_id
        self.parent = parent
        self.task_type = task_type if task_type is not None else (parent.task_type if parent
                                                                  else None)
        self.session_id = session_id if session_id is not None else (parent.session_id if parent
                                                                     else None)
        self.limits = limits or Limits()
        self.meta = meta
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self._outcome: Outcome | None = None
        self.outcome_set = False
        #: True once a call's actual spend pushed this task past one of its caps.
        self.overrun = False
        #: The cap that blocked a call of this task (``cap``, ``limit``, ``task_id`` of the
        #: capped task, ``phase``), ``None`` while no call was blocked.
        self.blocked_by: dict[str, Any] | None = None
        #: Whether this task or an ancestor has any cap / a cost cap / a cap that needs a
        #: pre-call estimate (computed once, read on every call).
        self.capped: bool = self.limits.any or (parent is not None and parent.capped)
        self.cost_capped: bool = self.limits.max_cost_usd is not None or (
            parent is not None and parent.cost_capped)
        self.estimate_needed: bool = self.limits.needs_estimate or (
            parent is not None and parent.estimate_needed)
        self._spent_usd = Decimal(0)
        #: (usage, model, provider, ts) of calls not priced yet: without a cost cap in the
        #: chain, pricing waits until someone reads ``spent_usd`` (keeps calls cheap).
        self._pending_cost: list[tuple[Usage, str, str, datetime]] = []
        self.input_tokens = 0
        """Prompt tokens so far (input + cache read + cache writes)."""
        self.calls = 0
        """Calls made so far, failed ones included."""
        self._u = [0, 0, 0, 0, 0, 0]
        self.unpriced_calls = 0
        """Calls whose model has no price (not in ``spent_usd``)."""
        #: ledger budgets of this task's caps, its ledger scope, and (on a root task) the
        #: in-process ledger the whole chain reserves on — set by ``_budget``
        self._budgets: Any = None
        self._scope = f"{task_id}#{next(_SCOPES)}"  # unique per instance, never reused
        self._ledger: Any = None
        self._chain_charges: Any = None
        self._token: contextvars.Token[TaskContext | None] | None = None

    # -- outcome -------------------------------------------------------------
    @property
    def outcome(self) -> Outcome | None:
        """``success`` / ``partial`` / ``failure`` / ``blocked``; set it inside the block.

        Left unset, a block that ends normally records ``success`` and one that
        raises records ``failure``. When a budget cap blocks one of its calls the
        task becomes ``blocked`` (with :attr:`blocked_by`), whether the block then
        raises or not; an outcome set after the blocked call wins (the code handled
        it)."""
        return self._outcome

    @outcome.setter
    def outcome(self, value: Outcome | None) -> None:
        if value is not None and value not in _OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(_OUTCOMES)}, got {value!r}")
        self._outcome = value
        self.outcome_set = True

    @property
    def usage(self) -> Usage:
        """Usage of every call so far (child tasks included)."""
        with SPEND_LOCK:
            u = list(self._u)
        return Usage(input_tokens=u[0], cache_read_tokens=u[1], cache_write_5m_tokens=u[2],
                     cache_write_1h_tokens=u[3], output_tokens=u[4], reasoning_tokens=u[5])

    @property
    def reserved_usd(self) -> Decimal:
        """USD held by this task's calls in flight (0 without a ``max_cost_usd`` cap)."""
        return Decimal(_held[0](self, "max_cost_usd")) if _held else Decimal(0)

    @property
    def reserved_input_tokens(self) -> int:
        """Prompt tokens held by calls in flight (0 without a ``max_input_tokens`` cap)."""
        return int(_held[0](self, "max_input_tokens")) if _held else 0

    @property
    def reserved_calls(self) -> int:
        """Calls in flight (0 without a ``max_calls`` cap)."""
        return int(_held[0](self, "max_calls")) if _held else 0

    @property
    def spent_usd(self) -> Decimal:
        """USD of the priced calls so far (child tasks included), each call priced at its own
        time with the tracker's PriceBook; unpriced calls are counted in ``unpriced_calls``."""
        price_usage = _price[0]

        with SPEND_LOCK:
            pending, self._pending_cost = self._pending_cost, []
        total = Decimal(0)
        unpriced = 0
        for usage, model, provider, ts in pending:
            c = price_usage(usage, model, provider, ts)
            if c is None:
                unpriced += 1
            else:
                total += c
        with SPEND_LOCK:
            self._spent_usd += total
            self.unpriced_calls += unpriced
            return self._spent_usd

    def chain(self) -> Iterator[TaskContext]:
        """This task, then its parent, up to the root."""
        t: TaskContext | None = self
        while t is not None:
            yield t
            t = t.parent

    @property
    def root(self) -> TaskContext:
        t = self
        while t.parent is not None:
            t = t.parent
        return t

    # -- lifecycle -----------------------------------------------------------
    def _enter(self) -> TaskContext:
        self.started_at = datetime.now(UTC)
        self._token = _CURRENT.set(self)
        return self

    def block(self, info: dict[str, Any]) -> None:
        """A budget cap blocked a call of this task: outcome ``blocked`` with ``info``
        (the tracker calls this; the first blocking cap is kept)."""
        if self.blocked_by is None:
            self.blocked_by = info
        self._outcome = "blocked"

    def _exit(self, exc: BaseException | None) -> None:
        self.ended_at = datetime.now(UTC)
        if exc is not None and isinstance(exc, Exception):
            if self.blocked_by is None:
                info = _blocked_info(exc)
                if info is not None:  # a budget exception raised through this task
                    self.blocked_by = info
            self._outcome = "blocked" if self.blocked_by is not None else "failure"
        elif self._outcome is None:
            self._outcome = "success"
        token, self._token = self._token, None
        try:
            if token is not None:
                _CURRENT.reset(token)
        except ValueError:  # exited in another context (e.g. a generator moved threads)
            _CURRENT.set(self.parent)
        for hook in _on_task_exit:
            hook(self)

    def __repr__(self) -> str:
        return (f"TaskContext({self.task_id!r}, type={self.task_type!r}, "
                f"outcome={self._outcome!r}, calls={self.calls}, spent_usd={self.spent_usd})")


def blocked_info(exc: BudgetExceeded) -> dict[str, Any]:
    """What a task records of the :class:`~ctxbudget.errors.BudgetExceeded` that blocked
    it: the cap, its limit (a decimal string), the capped task's id and the phase."""
    return {"cap": exc.cap, "limit": str(exc.limit), "task_id": exc.task_id,
            "phase": exc.phase}


def _blocked_info(exc: BaseException) -> dict[str, Any] | None:
    return blocked_info(exc) if isinstance(exc, BudgetExceeded) else None


class TaskSpec:
    """What ``ctxbudget.task(...)`` returns: a context manager and a decorator.

    Each ``with`` / decorated invocation creates a new :class:`TaskContext`."""

    def __init__(
        self,
        task_id: str | None,
        *,
        task_type: str | None,
        session_id: str | None,
        limits: Limits,
        meta: dict[str, Any] | None,
    ) -> None:
        self.task_id = task_id
        self.task_type = task_type
        self.session_id = session_id
        self.limits = limits
        self.meta = meta
        self._active: list[TaskContext] = []

    def new_context(self) -> TaskContext:
        return TaskContext(
            self.task_id or uuid.uuid4().hex,
            task_type=self.task_type,
            session_id=self.session_id,
            parent=_CURRENT.get(),
            limits=self.limits,
            meta=self.meta,
        )

    def __enter__(self) -> TaskContext:
        ctx = self.new_context()._enter()
        self._active.append(ctx)
        return ctx

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        # The same spec may be entered from several threads / asyncio tasks at once: exit
        # the context this thread/task entered (it is the current one when properly nested).
        cur = _CURRENT.get()
        for i in range(len(self._active) - 1, -1, -1):
            if self._active[i] is cur:
                self._active.pop(i)._exit(exc)
                return
        self._active.pop()._exit(exc)

    async def __aenter__(self) -> TaskContext:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                ctx = self.new_context()._enter()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    ctx._exit(exc)
                    raise
                ctx._exit(None)
                return result

            return cast(F, awrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = self.new_context()._enter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                ctx._exit(exc)
                raise
            ctx._exit(None)
            return result

        return cast(F, wrapper)


def task(
    task_id: str | None = None,
    *,
    type: str | None = None,
    session_id: str | None = None,
    max_cost_usd: Decimal | float | str | None = None,
    max_input_tokens: int | None = None,
    max_calls: int | None = None,
    on_exceed: OnExceed = "raise",
    meta: dict[str, Any] | None = None,
) -> TaskSpec:
    """A unit of user-visible work, optionally with budget caps.

    ``task_id=None`` gives every invocation a fresh random id (use that with the
    decorator form unless one id per invocation is what you want). Caps are checked
    before each tracked call (``spent + in flight + this call's estimate > cap``
    blocks it) and after it (actual spend); see ``docs/budgets.md``.
    """
    if on_exceed not in ("raise", "warn"):
        raise ValueError(f"on_exceed must be 'raise' or 'warn', got {on_exceed!r}")
    for name, v in (("max_input_tokens", max_input_tokens), ("max_calls", max_calls)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    cost: Decimal | None = None
    if max_cost_usd is not None:
        cost = max_cost_usd if isinstance(max_cost_usd, Decimal) else Decimal(str(max_cost_usd))
        if not cost.is_finite() or cost < 0:
            raise ValueError(f"max_cost_usd must be a non-negative amount, got {max_cost_usd!r}")
    limits = Limits(max_cost_usd=cost, max_input_tokens=max_input_tokens, max_calls=max_calls,
                    on_exceed=on_exceed)
    return TaskSpec(task_id, task_type=type, session_id=session_id, limits=limits, meta=meta)


def current_task() -> TaskContext | None:
    """The innermost task of the calling context, or ``None``."""
    return _CURRENT.get()


class _LedgerScope:
    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger
        self._token: contextvars.Token[Any] | None = None

    def __enter__(self) -> Any:
        self._token = _LEDGER.set(self.ledger)
        return self.ledger

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _LEDGER.reset(self._token)


def use_ledger(ledger: Any) -> _LedgerScope:
    """``with use_ledger(ledger): client.messages.create(...)`` — attach the packer's ledger
    (``.components``, ``.prefix_fingerprint``, ``.expected_cache_read_tokens``) to the tracked
    calls made inside the block. The ``ctxbudget_ledger=`` keyword on a call wins over it."""
    return _LedgerScope(ledger)


def propagate(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fn`` so it runs in a copy of the *current* context (task, ledger) wherever it is
    called from — e.g. in another thread. Each invocation gets its own copy, so the wrapper
    may run in several threads at once."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return ctx.copy().run(fn, *args, **kwargs)

    return run


class TaskThreadPoolExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose ``submit`` (and so ``map``) carries the submitter's
    context (current task, ledger) into the worker thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)
