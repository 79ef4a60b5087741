"""Prometheus text exposition of the gateway's counters (no client library needed)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from decimal import Decimal

from ...budgets import BudgetState

__all__ = ["Metrics"]

#: Upstream latency histogram buckets (seconds).
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                              120, 300)


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters of one gateway process (each worker exposes its own)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.blocked: dict[str, int] = defaultdict(int)
        self.spend: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.states: dict[tuple[str, str, str], BudgetState] = {}
        """The state of each budget counter at its last decision (remaining is computed
        when /metrics is read, not per request)."""
        self.hist: dict[str, list[int]] = {}
        self.hist_sum: dict[str, float] = defaultdict(float)
        self.in_flight = 0
        self.store_errors = 0
        self.alerts = 0

    def observe(self, upstream: str, seconds: float) -> None:
        h = self.hist.get(upstream)
        if h is None:
            h = self.hist[upstream] = [0] * (len(BUCKETS) + 1)
        h[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.hist_sum[upstream] += seconds

    def render(self) -> str:
        out: list[str] = []
        out += ["# HELP ctxbudget_gateway_requests_total Requests by upstream, route and status.",
                "# TYPE ctxbudget_gateway_requests_total counter"]
        for (up, route, st), n in sorted(self.requests.items()):
            out.append(f'ctxbudget_gateway_requests_total{{upstream="{_esc(up)}",'
                       f'route="{_esc(route)}",status="{st}"}} {n}')
        out += ["# HELP ctxbudget_gateway_blocked_total Requests blocked by a budget.",
                "# TYPE ctxbudget_gateway_blocked_total counter"]
        for b, n in sorted(self.blocked.items()):
            out.append(f'ctxbudget_gateway_blocked_total{{budget="{_esc(b)}"}} {n}')
        out += ["# HELP ctxbudget_gateway_spend_usd_total Priced spend recorded by this process.",
                "# TYPE ctxbudget_gateway_spend_usd_total counter"]
        for (up, model), v in sorted(self.spend.items()):
            out.append(f'ctxbudget_gateway_spend_usd_total{{upstream="{_esc(up)}",'
                       f'model="{_esc(model)}"}} {v}')
        out += ["# HELP ctxbudget_gateway_budget_remaining Remaining budget at the last "
                "decision (in the budget's unit).",
                "# TYPE ctxbudget_gateway_budget_remaining gauge"]
        for (b, scope, metric), state in sorted(self.states.items()):
            v = state.remaining
            out.append(f'ctxbudget_gateway_budget_remaining{{budget="{_esc(b)}",'
                       f'scope="{_esc(scope)}",unit="{metric}"}} {v}')
        out += ["# HELP ctxbudget_gateway_upstream_seconds Upstream latency (request sent "
                "to last byte).", "# TYPE ctxbudget_gateway_upstream_seconds histogram"]
        for up, h in sorted(self.hist.items()):
            acc = 0
            for le, n in zip((*BUCKETS, float("inf")), h, strict=True):
                acc += n
                le_s = "+Inf" if le == float("inf") else repr(le)
                out.append(f'ctxbudget_gateway_upstream_seconds_bucket{{upstream="{_esc(up)}",'
                           f'le="{le_s}"}} {acc}')
            out.append(f'ctxbudget_gateway_upstream_seconds_sum{{upstream="{_esc(up)}"}} '
                       f'{self.hist_sum[up]:.6f}')
            out.append(f'ctxbudget_gateway_upstream_seconds_count{{upstream="{_esc(up)}"}} {acc}')
        out += ["# TYPE ctxbudget_gateway_in_flight gauge",
                f"ctxbudget_gateway_in_flight {self.in_flight}",
                "# TYPE ctxbudget_gateway_budget_store_errors_total counter",
                f"ctxbudget_gateway_budget_store_errors_total {self.store_errors}",
                "# TYPE ctxbudget_gateway_alerts_total counter",
                f"ctxbudget_gateway_alerts_total {self.alerts}"]
        return "\n".join(out) + "\n"
