"""Budgets and what is left of them, read from running gateways' ``/metrics``.

The budget ledger belongs to the gateway process (or Redis): the dashboard never opens
it. Each gateway exposes, per budget and scope, the remaining amount at its last
decision and how many requests each budget blocked (``ctxbudget_gateway_budget_remaining``
and ``ctxbudget_gateway_blocked_total``, Prometheus text format); the overview reads
them from every ``--gateway URL`` with a short timeout, server side.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = ["BudgetRow", "read_gateway_budgets"]

_LINE = re.compile(r'^(?P<name>[a-z_]+)\{(?P<labels>.*)\}\s+(?P<value>\S+)\s*$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetRow:
    gateway: str
    budget: str
    scope: str
    unit: str
    remaining: Decimal | None
    blocked: int


def _unescape(v: str) -> str:
    return v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def parse_metrics(text: str, gateway: str) -> list[BudgetRow]:
    """Budget rows from one gateway's Prometheus text."""
    remaining: dict[tuple[str, str, str], Decimal | None] = {}
    blocked: dict[str, int] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(m["labels"])}
        try:
            value = Decimal(m["value"])
        except InvalidOperation:
            continue
        if m["name"] == "ctxbudget_gateway_budget_remaining":
            remaining[(labels.get("budget", ""), labels.get("scope", ""),
                       labels.get("unit", ""))] = value
        elif m["name"] == "ctxbudget_gateway_blocked_total":
            blocked[labels.get("budget", "")] = int(value)
    rows = [BudgetRow(gateway=gateway, budget=b, scope=s, unit=u, remaining=v,
                      blocked=blocked.get(b, 0)) for (b, s, u), v in sorted(remaining.items())]
    seen = {r.budget for r in rows}
    rows += [BudgetRow(gateway=gateway, budget=b, scope="", unit="", remaining=None,
                       blocked=n) for b, n in sorted(blocked.items()) if b not in seen]
    return rows


def read_gateway_budgets(urls: list[str], timeout: float = 1.0
                         ) -> tuple[list[BudgetRow], list[str]]:
    """Rows from every gateway, and one message per gateway that could not be read."""
    rows: list[BudgetRow] = []
    errors: list[str] = []
    for url in urls:
        target = url.rstrip("/") + "/metrics"
        try:
            with urllib.request.urlopen(target, timeout=timeout) as r:
                text = r.read(8_000_000).decode("utf-8", "replace")
        except (OSError, urllib.error.URLError, ValueError) as exc:
            errors.append(f"{target}: {getattr(exc, 'reason', exc)}")
            continue
        rows.extend(parse_metrics(text, url))
    return rows, errors
