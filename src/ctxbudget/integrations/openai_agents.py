"""OpenAI Agents SDK: a tracing processor that records every model call of an agent run.

::

    from agents import add_trace_processor
    from ctxbudget.integrations.openai_agents import CtxbudgetTracingProcessor

    add_trace_processor(CtxbudgetTracingProcessor())

Model calls are the SDK's ``response`` spans (Responses API models: the span carries
the whole ``Response``, converted by :func:`ctxbudget.adapters.from_openai_responses`
— ``input_tokens`` includes ``input_tokens_details.cached_tokens`` and
``cache_write_tokens``, ``output_tokens`` includes ``reasoning_tokens``) and
``generation`` spans (Chat Completions and other models: the SDK stores the same
Responses-shaped usage dict on the span). A streamed Chat Completions call gets usage
only when the agent's ``ModelSettings(include_usage=True)`` asks for it; without it the
SDK stores zeros, recorded as ``meta.usage_missing`` (never as $0). Model from the
response / span; provider
``provider=`` if given, else resolved from the model name; latency from the span's
start and end; ``status="error"`` when the span carries an error.

Task: the ``ctxbudget.task(...)`` active when the span ends (the SDK ends spans in the
run's own context); without one, the trace is the task
(``task_id = "openai-agents:<trace_id>"``, ``task_type`` = the trace's workflow name).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from ..adapters import from_openai_responses
from ..track._context import _CURRENT, TaskContext
from ..track._core import PendingCall, adapt_guarded, finish_call, internal_error
from ..track._providers import provider_for_model

__all__ = ["CtxbudgetTracingProcessor"]  # noqa: F822 (lazy class)


def _ts(v: Any) -> datetime | None:
    if isinstance(v, str) and v:
        try:
            t = datetime.fromisoformat(v)
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return None


class _Processor:
    def __init__(self, *, provider: str | None = None) -> None:
        self.provider = provider
        self._lock = threading.Lock()
        self._workflows: dict[str, str] = {}

    def on_trace_start(self, trace: Any) -> None:
        try:
            with self._lock:
                self._workflows[str(trace.trace_id)] = str(getattr(trace, "name", "") or "")
        except Exception as exc:
            internal_error(exc, "openai-agents trace start")

    def on_trace_end(self, trace: Any) -> None:
        with self._lock:
            self._workflows.pop(str(getattr(trace, "trace_id", "")), None)

    def on_span_start(self, span: Any) -> None:
        pass

    def on_span_end(self, span: Any) -> None:
        try:
            data = span.span_data
            kind = getattr(data, "type", None)
            if kind not in ("response", "generation"):
                return
            body: dict[str, Any] | None = None
            model = ""
            if kind == "response" and getattr(data, "response", None) is not None:
                r = data.response
                model = str(r.model or "")
                if r.usage is not None:
                    body = {"usage": r.usage, "id": r.id, "model": r.model,
                            "service_tier": getattr(r, "service_tier", None)}
            else:
                model = str(getattr(data, "model", None) or "")
                usage = getattr(data, "usage", None)
                # all zeros: the SDK's placeholder when the API sent no usage (a streamed
                # Chat Completions call without ModelSettings(include_usage=True))
                if isinstance(usage, dict) and "input_tokens" in usage \
                        and (usage.get("input_tokens") or usage.get("output_tokens")):
                    body = {"usage": {k: v for k, v in usage.items()
                                      if k not in ("requests",)}, "model": model or None}
            trace_id = str(getattr(span, "trace_id", "") or "")
            ctx = _CURRENT.get()
            if ctx is None:
                with self._lock:
                    name = self._workflows.get(trace_id)
                ctx = TaskContext(f"openai-agents:{trace_id}", task_type=name or None)
            start, end = _ts(getattr(span, "started_at", None)), _ts(getattr(span, "ended_at",
                                                                               None))
            latency = (end - start).total_seconds() * 1000.0 if start and end else None
            p = PendingCall(provider=self.provider or provider_for_model(model),
                            api="openai-agents", model=model, ts=start or datetime.now(UTC),
                            t0=time.perf_counter(), ctx=ctx)
            adapted = adapt_guarded(from_openai_responses, body) if body is not None else None
            err = getattr(span, "error", None)
            error = RuntimeError(str(err.get("message") if isinstance(err, dict) else err)) \
                if err else None
            finish_call(p, adapted, error=error, latency_ms=latency, source="openai-agents",
                        meta={"span": kind})
        except Exception as exc:
            internal_error(exc, "openai-agents span")

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        from .. import track

        track.flush()


_CLASS: Any = None


def __getattr__(name: str) -> Any:
    global _CLASS
    if name == "CtxbudgetTracingProcessor":
        if _CLASS is None:
            from agents.tracing import TracingProcessor

            _CLASS = type("CtxbudgetTracingProcessor", (_Processor, TracingProcessor),
                          {"__module__": __name__,
                           "__doc__": "Records the OpenAI Agents SDK's model calls (see "
                                      "ctxbudget.integrations.openai_agents)."})
        return _CLASS
    raise AttributeError(name)
