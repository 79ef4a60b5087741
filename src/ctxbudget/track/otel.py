"""OpenTelemetry integration: a span processor that records GenAI spans.

::

    from opentelemetry.sdk.trace import TracerProvider
    import ctxbudget.track
    provider = TracerProvider()
    provider.add_span_processor(ctxbudget.track.otel_span_processor())

Every ended span that carries ``gen_ai.usage.*`` attributes (the OpenTelemetry GenAI
semantic conventions, as written by OpenLLMetry, OpenInference, Logfire, the SDKs'
own instrumentations...) becomes one call with ``source="otel"``: usage via
:func:`ctxbudget.adapters.from_otel` (``gen_ai.usage.input_tokens`` includes cache
reads and writes), provider from ``gen_ai.provider.name`` / ``gen_ai.system``, model
from ``gen_ai.response.model`` / ``gen_ai.request.model``, request id from
``gen_ai.response.id``, latency from the span's times, ``status="error"`` when the
span status is ERROR or it has ``error.type``. The task is the current
``ctxbudget.task`` (spans usually end on the calling thread), else the span's
``ctxbudget.task_id`` / ``ctxbudget.session_id`` / ``ctxbudget.task_type`` attributes.

Do not combine it with ``ctxbudget.track(client)`` for the same client: the call
would be recorded twice (once per source).

``opentelemetry-sdk`` is imported only when the processor is built.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..adapters import OTEL_USAGE_KEYS, from_otel, otel_provider
from ._context import _CURRENT, TaskContext
from ._core import PendingCall, adapt_guarded, finish_call, internal_error
from ._writer import flush

__all__ = ["make_span_processor", "record_span"]

_USAGE_KEYS = OTEL_USAGE_KEYS


def record_span(span: Any) -> bool:
    """Record ``span`` if it carries GenAI usage; return whether it did. Never raises."""
    try:
        attrs: Mapping[str, Any] = dict(getattr(span, "attributes", None) or {})
        if not any(k in attrs for k in _USAGE_KEYS):
            return False
        start_ns, end_ns = getattr(span, "start_time", None), getattr(span, "end_time", None)
        ts = datetime.fromtimestamp(start_ns / 1e9, UTC) if start_ns else datetime.now(UTC)
        latency = (end_ns - start_ns) / 1e6 if start_ns and end_ns else None
        provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system") or "unknown"
        model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model") or ""
        ctx = _CURRENT.get()
        if ctx is None and attrs.get("ctxbudget.task_id"):
            ctx = TaskContext(str(attrs["ctxbudget.task_id"]),
                              task_type=attrs.get("ctxbudget.task_type"),
                              session_id=attrs.get("ctxbudget.session_id"))
        p = PendingCall(provider=otel_provider(str(provider)), api="otel", model=str(model), ts=ts,
                        t0=time.perf_counter(), ctx=ctx)
        status = getattr(getattr(span, "status", None), "status_code", None)
        failed = getattr(status, "name", str(status)) == "ERROR" or "error.type" in attrs
        adapted = adapt_guarded(from_otel, attrs)
        err = RuntimeError(str(attrs.get("error.type", "span status ERROR"))) if failed else None
        meta = {"span_name": getattr(span, "name", None)} if getattr(span, "name", None) else None
        finish_call(p, adapted, error=err, meta=meta, latency_ms=latency, source="otel")
        return True
    except Exception as exc:
        internal_error(exc, "otel span processor")
        return False


_CLASS: Any = None


def make_span_processor(**kwargs: Any) -> Any:
    """Build the ``SpanProcessor`` subclass (importing opentelemetry-sdk); return an instance."""
    global _CLASS
    if _CLASS is None:
        from opentelemetry.sdk.trace import SpanProcessor

        class CtxbudgetSpanProcessor(SpanProcessor):  # type: ignore[misc, unused-ignore]
            """Records GenAI spans as ctxbudget calls (see ctxbudget.track.otel)."""

            def on_end(self, span: Any) -> None:
                record_span(span)

            def shutdown(self) -> None:
                flush()

            def force_flush(self, timeout_millis: int = 30000) -> bool:
                flush()
                return True

        _CLASS = CtxbudgetSpanProcessor
    return _CLASS(**kwargs)
