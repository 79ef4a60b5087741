"""Tracking: task context, SDK instrumentation, budget caps, and the durable spool.

::

    import ctxbudget, anthropic

    client = ctxbudget.track(anthropic.Anthropic())
    with ctxbudget.task("ticket-42", type="support", max_cost_usd="0.50") as t:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=512, messages=[...])
        t.outcome = "success"
    ctxbudget.track.flush()          # optional: atexit flushes too
    ctxbudget.track.stats()          # counters: written, pending, errors...

``ctxbudget.track`` is this module, and calling it (``ctxbudget.track(client)``)
instruments a client. Records go to ``$CTXBUDGET_HOME/spool/`` and are folded
into the DuckDB store by :func:`ctxbudget.store.spool.ingest_spool` (every
``ctxbudget`` read command does that first). See ``docs/tracking.md`` and
``docs/budgets.md``.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from ..usage import Task
from . import _budget, _core, _writer
from ._context import (
    Limits,
    TaskContext,
    TaskSpec,
    TaskThreadPoolExecutor,
    _on_task_exit,
    current_task,
    propagate,
    task,
    use_ledger,
)
from ._core import record_call
from ._instrument import track
from ._writer import FsyncPolicy, SpoolWriter, default_spool_dir, flush

__all__ = [
    "Limits",
    "SpoolWriter",
    "TaskContext",
    "TaskSpec",
    "TaskThreadPoolExecutor",
    "configure",
    "current_task",
    "default_spool_dir",
    "flush",
    "litellm_callback",
    "otel_span_processor",
    "propagate",
    "record_call",
    "spool_dir",
    "stats",
    "task",
    "track",
    "use_ledger",
]


def configure(
    *,
    spool_dir: Path | str | None = None,
    batch_size: int | None = None,
    flush_interval: float | None = None,
    fsync: FsyncPolicy | None = None,
    fsync_interval: float | None = None,
    max_pending: int | None = None,
    max_lag: float | None = None,
    pricebook: Any = None,
    default_output_tokens: int | None = None,
) -> None:
    """Change tracking settings. The current writer is flushed and replaced by a new one
    (new spool file); writer options and ``default_output_tokens`` left ``None`` reset to
    their defaults, ``pricebook=None`` keeps the current PriceBook."""
    _writer.configure_writer(directory=spool_dir, batch_size=batch_size,
                             flush_interval=flush_interval, fsync=fsync,
                             fsync_interval=fsync_interval, max_pending=max_pending,
                             max_lag=max_lag)
    if pricebook is not None:
        _budget._settings["pricebook"] = pricebook
    _budget._settings["default_output_tokens"] = (
        default_output_tokens if default_output_tokens is not None
        else _budget.DEFAULT_OUTPUT_TOKENS)


def spool_dir() -> Path:
    """The directory the current writer appends to."""
    return _writer.get_writer().directory


def stats() -> dict[str, Any]:
    """Counters of this process: records written / pending, write errors, dropped records,
    tracking errors (caught and logged, never raised), API errors seen, budget blocks,
    warnings and overruns, calls with missing usage, estimate fallbacks."""
    out: dict[str, Any] = {}
    out.update(_writer.get_writer().stats())
    out.update(_core.counters)
    out.update(_budget.counters)
    return out


def _record_task(ctx: TaskContext) -> None:
    try:
        t = Task(task_id=ctx.task_id, task_type=ctx.task_type, outcome=ctx.outcome,
                 started_at=ctx.started_at, ended_at=ctx.ended_at, session_id=ctx.session_id,
                 parent_id=ctx.parent.task_id if ctx.parent else None,
                 blocked_by=ctx.blocked_by)
        meta: dict[str, Any] = {"calls": ctx.calls, "input_tokens": ctx.input_tokens,
                                "overrun": ctx.overrun}
        if ctx.cost_capped:  # priced eagerly; otherwise pricing is left to the reports
            meta["spent_usd"] = str(ctx._spent_usd)
        if ctx.unpriced_calls:
            meta["unpriced_calls"] = ctx.unpriced_calls
        if ctx.meta:
            meta["task_meta"] = ctx.meta
        _writer.put_task(t, meta)
    except Exception as exc:
        _core.internal_error(exc, "recording a task")


_on_task_exit.append(_record_task)


def litellm_callback(**kwargs: Any) -> Any:
    """A LiteLLM ``CustomLogger`` that records every LiteLLM call (imports litellm now)."""
    from .litellm import make_callback

    return make_callback(**kwargs)


def otel_span_processor(**kwargs: Any) -> Any:
    """An OpenTelemetry ``SpanProcessor`` that records spans carrying gen_ai.* usage."""
    from .otel import make_span_processor

    return make_span_processor(**kwargs)


class _CallableModule(types.ModuleType):
    """Lets ``ctxbudget.track(client)`` work while ``ctxbudget.track.flush()`` etc. also do."""

    def __call__(self, client: Any, *, provider: str | None = None) -> Any:
        return track(client, provider=provider)


sys.modules[__name__].__class__ = _CallableModule
#: This module (callable); ``ctxbudget.track`` resolves to it.
MODULE = sys.modules[__name__]
