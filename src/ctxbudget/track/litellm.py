"""LiteLLM integration: a ``CustomLogger`` callback that records every LiteLLM call.

::

    import litellm, ctxbudget.track
    litellm.callbacks = [ctxbudget.track.litellm_callback()]

litellm is imported only when the callback is built (it takes seconds to import and
fetches a price map unless ``LITELLM_LOCAL_MODEL_COST_MAP=True``). The class is
created then, as a subclass of ``litellm.integrations.custom_logger.CustomLogger``;
the conversion logic (:func:`record_litellm_event`) is plain code, testable without
litellm.

Usage conversion: LiteLLM normalizes every provider to OpenAI-style usage whose
``prompt_tokens`` *includes* cache reads (``prompt_tokens_details.cached_tokens`` or
``cache_read_input_tokens``) and cache writes (``cache_creation_input_tokens`` or
``prompt_tokens_details.cache_creation_tokens``); we subtract both once, via
:func:`ctxbudget.adapters.from_openai_chat`. Cache writes are recorded as 5-minute
writes (LiteLLM does not report the TTL split).

Task context: the current task is captured in ``log_pre_api_call`` (which LiteLLM runs
on the calling thread) because LiteLLM runs sync success callbacks in a thread pool
that does not carry context variables. ``metadata={"ctxbudget_task_id": ...}`` on the
LiteLLM call also works. Budgets: calls are charged to the task (``t.overrun`` is
set), but this callback cannot block a call — use ``ctxbudget.track(client)`` for that.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..adapters import from_openai_chat
from ._context import _CURRENT, TaskContext
from ._core import PendingCall, adapt_guarded, finish_call, internal_error

__all__ = ["litellm_usage", "make_callback", "record_litellm_event"]

_KEY = "_ctxbudget_task"


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def litellm_usage(usage: Any) -> dict[str, Any]:
    """LiteLLM's usage object as an OpenAI Chat ``usage`` dict (inclusive prompt count)."""
    ptd = _get(usage, "prompt_tokens_details")
    ctd = _get(usage, "completion_tokens_details")
    cached = _get(ptd, "cached_tokens") or _get(usage, "cache_read_input_tokens") or 0
    write = _get(usage, "cache_creation_input_tokens") or _get(ptd, "cache_creation_tokens") or 0
    return {
        "prompt_tokens": _get(usage, "prompt_tokens") or 0,
        "completion_tokens": _get(usage, "completion_tokens") or 0,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": write},
        "completion_tokens_details": {"reasoning_tokens": _get(ctd, "reasoning_tokens") or 0},
    }


def _task_for(kwargs: Mapping[str, Any]) -> TaskContext | None:
    ctx = kwargs.get(_KEY)
    if isinstance(ctx, TaskContext):
        return ctx
    ctx = _CURRENT.get()
    if ctx is not None:
        return ctx
    meta = _get(kwargs.get("litellm_params"), "metadata") or kwargs.get("metadata") or {}
    if isinstance(meta, Mapping) and meta.get("ctxbudget_task_id"):
        # ids passed as LiteLLM metadata: a detached context, only used to label the call
        return TaskContext(str(meta["ctxbudget_task_id"]),
                           task_type=meta.get("ctxbudget_task_type"),
                           session_id=meta.get("ctxbudget_session_id"))
    return None


def record_litellm_event(kwargs: Mapping[str, Any], response_obj: Any, start_time: Any,
                         end_time: Any, *, failed: bool = False) -> None:
    """Record one LiteLLM call from its callback arguments. Never raises."""
    try:
        provider = (_get(kwargs.get("litellm_params"), "custom_llm_provider")
                    or kwargs.get("custom_llm_provider") or "unknown")
        model = str(_get(response_obj, "model") or kwargs.get("model") or "")
        ctx = _task_for(kwargs)
        ts = start_time if isinstance(start_time, datetime) else datetime.now(UTC)
        latency = None
        if isinstance(start_time, datetime) and isinstance(end_time, datetime):
            latency = (end_time - start_time).total_seconds() * 1000.0
        p = PendingCall(provider=str(provider), api="litellm", model=model, ts=ts,
                        t0=time.perf_counter(), ctx=ctx)
        usage = _get(response_obj, "usage")
        adapted = None
        if usage is not None and not failed:
            adapted = adapt_guarded(from_openai_chat, {
                "usage": litellm_usage(usage), "id": _get(response_obj, "id"), "model": model})
        err = kwargs.get("exception") if failed else None
        if failed and not isinstance(err, BaseException):
            err = RuntimeError("LiteLLM reported a failure")
        finish_call(p, adapted, error=err, latency_ms=latency, source="litellm")
    except Exception as exc:
        internal_error(exc, "litellm callback")


_CLASS: Any = None


def make_callback(**kwargs: Any) -> Any:
    """Build the ``CustomLogger`` subclass (importing litellm) and return an instance."""
    global _CLASS
    if _CLASS is None:
        from litellm.integrations.custom_logger import CustomLogger

        class CtxbudgetLiteLLMCallback(CustomLogger):  # type: ignore[misc, unused-ignore]
            """Records LiteLLM calls into the ctxbudget spool (see ctxbudget.track.litellm)."""

            def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
                try:
                    if isinstance(kwargs, dict):
                        kwargs[_KEY] = _CURRENT.get()
                except Exception as exc:
                    internal_error(exc, "litellm pre-call")

            def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any,
                                  end_time: Any) -> None:
                record_litellm_event(kwargs, response_obj, start_time, end_time)

            def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any,
                                  end_time: Any) -> None:
                record_litellm_event(kwargs, response_obj, start_time, end_time, failed=True)

            async def async_log_success_event(self, kwargs: Any, response_obj: Any,
                                              start_time: Any, end_time: Any) -> None:
                record_litellm_event(kwargs, response_obj, start_time, end_time)

            async def async_log_failure_event(self, kwargs: Any, response_obj: Any,
                                              start_time: Any, end_time: Any) -> None:
                record_litellm_event(kwargs, response_obj, start_time, end_time, failed=True)

        _CLASS = CtxbudgetLiteLLMCallback
    return _CLASS(**kwargs)
