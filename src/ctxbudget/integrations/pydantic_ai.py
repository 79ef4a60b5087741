"""pydantic-ai: record an agent run's model requests, without Logfire.

::

    from ctxbudget.integrations.pydantic_ai import track_agent, record_run

    agent = track_agent(Agent("openai:gpt-4o"))   # agent.run / run_sync / run_stream record
    result = agent.run_sync("Hello")
    # or, for an agent you do not wrap:  record_run(result)

Each ``ModelResponse`` of the run's *new* messages is one API call: its ``usage``
(a ``RequestUsage``: ``input_tokens`` *includes* ``cache_read_tokens`` and
``cache_write_tokens``, of which ``cache_write_1h_tokens`` are one-hour writes;
``output_tokens`` includes ``output_reasoning_tokens``), converted once through
:func:`ctxbudget.adapters.from_otel` (the same inclusive convention), its
``model_name``, ``provider_name`` (``google-gla`` / ``google-vertex`` -> ``google``,
``bedrock`` -> ``aws``), ``provider_response_id`` and ``timestamp``. A response with
``unmeasured_requests`` is recorded with ``meta.usage_missing``. Anthropic's server-side
iterations are already summed into the response's usage by pydantic-ai.

Task: the active ``ctxbudget.task(...)``; without one the run is the task
(``task_id = "pydantic-ai:<run_id>"``, ``task_type`` = the agent's name). The run's
request count (``RunUsage.requests``) is kept in ``meta.agent_requests``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from ..adapters import AdaptedUsage, from_otel
from ..track._context import _CURRENT, TaskContext
from ..track._core import PendingCall, finish_call, internal_error
from ..track._providers import provider_for_model

__all__ = ["adapt_request_usage", "record_run", "track_agent"]

_PROVIDERS = {"google-gla": "google", "google-vertex": "google", "bedrock": "aws",
              "azure": "azure", "mistral": "mistral", "grok": "x-ai", "xai": "x-ai"}


def adapt_request_usage(u: Any, *, model: str | None = None,
                        request_id: str | None = None) -> AdaptedUsage:
    """A pydantic-ai ``RequestUsage`` as disjoint buckets (raises ``UsageError``)."""
    attrs: dict[str, Any] = {
        "gen_ai.usage.input_tokens": u.input_tokens,
        "gen_ai.usage.output_tokens": u.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": u.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": u.cache_write_tokens,
        "gen_ai.usage.reasoning.output_tokens": getattr(u, "output_reasoning_tokens", 0) or 0,
    }
    a = from_otel(attrs)
    w1 = getattr(u, "cache_write_1h_tokens", 0) or 0
    if w1 and w1 <= a.usage.cache_write_5m_tokens:
        a = dataclasses.replace(a, usage=dataclasses.replace(
            a.usage, cache_write_5m_tokens=a.usage.cache_write_5m_tokens - w1,
            cache_write_1h_tokens=w1))
    return dataclasses.replace(a, model=model, request_id=request_id)


def _provider(name: Any, model: str) -> str:
    if name:
        return _PROVIDERS.get(str(name), str(name))
    return provider_for_model(model)


def record_run(result: Any, *, agent_name: str | None = None) -> int:
    """Record the model requests among ``result.new_messages()``; returns how many.

    Never raises (a failure is logged and counted in ``ctxbudget.track.stats()``)."""
    try:
        from pydantic_ai.messages import ModelResponse

        ctx = _CURRENT.get()
        if ctx is None:
            ctx = TaskContext(f"pydantic-ai:{getattr(result, 'run_id', None) or id(result)}",
                              task_type=agent_name)
        run_usage = getattr(result, "usage", None)
        if callable(run_usage) and not hasattr(run_usage, "requests"):
            run_usage = run_usage()  # pydantic-ai < 2: a method
        meta = {"agent_requests": run_usage.requests} if run_usage is not None else {}
        n = 0
        for msg in result.new_messages():
            if not isinstance(msg, ModelResponse):
                continue
            model = str(msg.model_name or "")
            ts = msg.timestamp if isinstance(msg.timestamp, datetime) else datetime.now(UTC)
            p = PendingCall(provider=_provider(msg.provider_name, model), api="pydantic-ai",
                            model=model, ts=ts, t0=time.perf_counter(), ctx=ctx)
            adapted = None
            m = dict(meta)
            if getattr(msg.usage, "unmeasured_requests", 0):
                m["usage_missing"] = True
            else:
                try:
                    adapted = adapt_request_usage(msg.usage, model=model or None,
                                                  request_id=msg.provider_response_id)
                except Exception as exc:
                    internal_error(exc, "usage adapter")
            finish_call(p, adapted, meta=m, latency_ms=None, source="pydantic-ai")
            n += 1
        return n
    except Exception as exc:
        internal_error(exc, "pydantic-ai run")
        return 0


def track_agent(agent: Any) -> Any:
    """Make ``agent.run`` (and so ``run_sync``) and ``agent.run_stream`` record each run's
    model requests when the run ends. Returns the same agent; idempotent."""
    name = getattr(agent, "name", None)
    run = agent.run
    if not hasattr(run, "__ctxbudget_wrapped__"):
        @functools.wraps(run)
        async def tracked_run(*args: Any, **kwargs: Any) -> Any:
            result = await run(*args, **kwargs)
            record_run(result, agent_name=getattr(agent, "name", None) or name)
            return result

        tracked_run.__ctxbudget_wrapped__ = run  # type: ignore[attr-defined]
        agent.run = tracked_run
    stream = getattr(agent, "run_stream", None)
    if stream is not None and not hasattr(stream, "__ctxbudget_wrapped__"):
        agent.run_stream = _wrap_stream(stream, lambda: getattr(agent, "name", None) or name)
    return agent


def _wrap_stream(stream: Callable[..., Any], name: Callable[[], str | None]) -> Any:
    @contextlib.asynccontextmanager
    @functools.wraps(stream)
    async def tracked_stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with stream(*args, **kwargs) as result:
            try:
                yield result
            finally:
                record_run(result, agent_name=name())

    tracked_stream.__ctxbudget_wrapped__ = stream  # type: ignore[attr-defined]
    return tracked_stream
