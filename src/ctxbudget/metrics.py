"""Export tracked calls as metrics: Prometheus (``prometheus-client``) and OpenTelemetry.

::

    import ctxbudget.metrics
    ctxbudget.metrics.install(port=9464)          # Prometheus: http://HOST:9464/metrics
    ctxbudget.metrics.install_otel()              # OTel: the global MeterProvider

Every call recorded in this process (``ctxbudget.track(client)``, the framework
integrations, ``record_call``, the OTLP receiver) and every call a budget blocks is
counted, labelled by ``task_type`` and ``model`` (and ``provider``):

=====================================  =====================================================
metric                                  meaning
=====================================  =====================================================
``ctxbudget_calls_total``               calls recorded (label ``status``: ok / error)
``ctxbudget_spend_usd_total``           USD, priced by the tracker's PriceBook (one formula)
``ctxbudget_unpriced_calls_total``      calls whose model has no price (never counted as $0)
``ctxbudget_tokens_total``              tokens per ``bucket``: input, cache_read,
                                        cache_write_5m, cache_write_1h, output, reasoning
``ctxbudget_cache_hit_ratio``           cache_read / prompt tokens so far (a gauge)
``ctxbudget_blocked_calls_total``       calls a budget cap blocked before they were sent
=====================================  =====================================================

The OTel instruments carry the same names with dots (``ctxbudget.spend``, unit
``USD``...). Nothing is priced or counted on the caller's hot path beyond a dictionary
update; a metrics error is logged, never raised into the app. prometheus-client and
opentelemetry-api are imported only by :func:`install` / :func:`install_otel`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from decimal import Decimal
from typing import Any

from .usage import Call

__all__ = ["BUCKETS", "CallMetrics", "install", "install_otel", "uninstall"]

BUCKETS = ("input", "cache_read", "cache_write_5m", "cache_write_1h", "output", "reasoning")


def _label(v: Any) -> str:
    return str(v) if v else ""


class CallMetrics:
    """Aggregates calls; renders them through prometheus-client and/or OTel instruments.

    ``registry``: a ``prometheus_client.CollectorRegistry`` to register in (default: a
    fresh one, see :meth:`render`); ``pricebook``: default the tracker's."""

    def __init__(self, registry: Any = None, *, pricebook: Any = None,
                 prometheus: bool = True) -> None:
        self._lock = threading.Lock()
        self._pricebook = pricebook
        self.prompt: dict[tuple[str, str], int] = defaultdict(int)
        self.read: dict[tuple[str, str], int] = defaultdict(int)
        self._otel: dict[str, Any] | None = None
        self.registry: Any = None
        if prometheus:
            from prometheus_client import CollectorRegistry, Counter, Gauge

            self.registry = registry if registry is not None else CollectorRegistry()
            labels = ["task_type", "model", "provider"]
            self.calls = Counter("ctxbudget_calls", "Calls recorded", [*labels, "status"],
                                 registry=self.registry)
            self.spend = Counter("ctxbudget_spend_usd", "Spend in USD (PriceBook)", labels,
                                 registry=self.registry)
            self.unpriced = Counter("ctxbudget_unpriced_calls", "Calls without a price",
                                    labels, registry=self.registry)
            self.tokens = Counter("ctxbudget_tokens", "Tokens per usage bucket",
                                  [*labels, "bucket"], registry=self.registry)
            self.blocked = Counter("ctxbudget_blocked_calls", "Calls blocked by a budget",
                                   labels, registry=self.registry)
            self.collectors: list[Any] = [self.calls, self.spend, self.unpriced, self.tokens,
                                          self.blocked]
            self.hit = Gauge("ctxbudget_cache_hit_ratio",
                             "Cache read tokens / prompt tokens so far",
                             ["task_type", "model"], registry=self.registry)
            self.collectors.append(self.hit)

    # -- input ---------------------------------------------------------------------------
    def _price(self, call: Call) -> Decimal | None:
        pb = self._pricebook
        if pb is None:
            from .track import _budget

            pb = _budget.pricebook()
        try:
            return Decimal(pb.cost(call.usage, call.model, call.provider, call.ts,
                                   call.service_tier).total_usd)
        except Exception:
            return None

    def observe(self, call: Call) -> None:
        """Count one recorded call."""
        tt, model, prov = _label(call.task_type), _label(call.model), _label(call.provider)
        u = call.usage
        counts = {"input": u.input_tokens, "cache_read": u.cache_read_tokens,
                  "cache_write_5m": u.cache_write_5m_tokens,
                  "cache_write_1h": u.cache_write_1h_tokens, "output": u.output_tokens,
                  "reasoning": u.reasoning_tokens}
        cost = self._price(call) if u else Decimal(0)
        with self._lock:
            self.prompt[(tt, model)] += u.prompt_tokens
            self.read[(tt, model)] += u.cache_read_tokens
            prompt, read = self.prompt[(tt, model)], self.read[(tt, model)]
        if self.registry is not None:
            self.calls.labels(tt, model, prov, call.status or "ok").inc()
            for b, n in counts.items():
                if n:
                    self.tokens.labels(tt, model, prov, b).inc(n)
            if cost is None:
                self.unpriced.labels(tt, model, prov).inc()
            else:
                self.spend.labels(tt, model, prov).inc(float(cost))
            if prompt:
                self.hit.labels(tt, model).set(read / prompt)
        if self._otel is not None:
            attrs = {"task_type": tt, "model": model, "provider": prov}
            self._otel["calls"].add(1, {**attrs, "status": call.status or "ok"})
            for b, n in counts.items():
                if n:
                    self._otel["tokens"].add(n, {**attrs, "bucket": b})
            if cost is None:
                self._otel["unpriced"].add(1, attrs)
            else:
                self._otel["spend"].add(float(cost), attrs)

    def observe_blocked(self, provider: str, model: str, task_type: str | None) -> None:
        """Count one call a budget blocked."""
        labels = (_label(task_type), _label(model), _label(provider))
        if self.registry is not None:
            self.blocked.labels(*labels).inc()
        if self._otel is not None:
            self._otel["blocked"].add(1, dict(zip(("task_type", "model", "provider"), labels,
                                                  strict=True)))

    def listener(self, kind: str, payload: Any) -> None:
        """The tracking listener (see :func:`ctxbudget.track._core.add_listener`)."""
        if kind == "call":
            self.observe(payload)
        elif kind == "blocked":
            provider, model, ctx = payload
            self.observe_blocked(provider, model, getattr(ctx, "task_type", None))

    # -- output --------------------------------------------------------------------------
    def render(self) -> str:
        """Prometheus text exposition of this registry."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode() if self.registry is not None else ""

    def attach_otel(self, meter_provider: Any = None) -> None:
        """Also report to OpenTelemetry metrics (the global MeterProvider by default)."""
        from opentelemetry import metrics as otel_metrics

        mp = meter_provider or otel_metrics.get_meter_provider()
        meter = mp.get_meter("ctxbudget")

        def hit_ratio(options: Any) -> Any:
            from opentelemetry.metrics import Observation

            with self._lock:
                items = [(k, self.read[k] / p) for k, p in self.prompt.items() if p]
            return [Observation(v, {"task_type": k[0], "model": k[1]}) for k, v in items]

        self._otel = {
            "calls": meter.create_counter("ctxbudget.calls", unit="{call}",
                                          description="Calls recorded"),
            "spend": meter.create_counter("ctxbudget.spend", unit="USD",
                                          description="Spend priced by the PriceBook"),
            "unpriced": meter.create_counter("ctxbudget.unpriced_calls", unit="{call}",
                                             description="Calls without a price"),
            "tokens": meter.create_counter("ctxbudget.tokens", unit="{token}",
                                           description="Tokens per usage bucket"),
            "blocked": meter.create_counter("ctxbudget.blocked_calls", unit="{call}",
                                            description="Calls blocked by a budget"),
            "hit": meter.create_observable_gauge("ctxbudget.cache_hit_ratio", [hit_ratio],
                                                 unit="1", description="Cache read / prompt"),
        }


_installed: list[CallMetrics] = []
_servers: list[Any] = []


def install(*, port: int | None = None, addr: str = "127.0.0.1", registry: Any = None,
            pricebook: Any = None) -> CallMetrics:
    """Count every tracked call of this process in a Prometheus registry (default: the
    ``prometheus_client`` global ``REGISTRY``); ``port`` also serves ``/metrics``."""
    from prometheus_client import REGISTRY, start_http_server

    from .track import _core

    m = CallMetrics(registry if registry is not None else REGISTRY, pricebook=pricebook)
    _core.add_listener(m.listener)
    _installed.append(m)
    if port is not None:
        served = start_http_server(port, addr=addr, registry=m.registry)
        if isinstance(served, tuple):  # prometheus-client >= 0.17: (server, thread)
            _servers.append(served[0])
    return m


def install_otel(meter_provider: Any = None, *, pricebook: Any = None) -> CallMetrics:
    """Count every tracked call of this process as OpenTelemetry metrics."""
    from .track import _core

    m = CallMetrics(pricebook=pricebook, prometheus=False)
    m.attach_otel(meter_provider)
    _core.add_listener(m.listener)
    _installed.append(m)
    return m


def uninstall() -> None:
    """Stop counting and unregister the metrics :func:`install` registered."""
    from .track import _core

    while _servers:
        srv = _servers.pop()
        srv.shutdown()
        srv.server_close()
    while _installed:
        m = _installed.pop()
        _core.remove_listener(m.listener)
        if m.registry is not None:
            for c in m.collectors:
                m.registry.unregister(c)
