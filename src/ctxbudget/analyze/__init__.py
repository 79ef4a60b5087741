"""Analytics over the usage store: per-task metrics, warning signals, alert rules.

Metrics are portable SQL (:mod:`.sql`) run by an engine (:mod:`.engine`: DuckDB by
default, Spark through sqlglot). Nothing here imports rich or plotting; the
:mod:`ctxbudget.report` package renders these results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, imported on first use (PEP 562)
    from .audit import AuditReport, Finding, audit_requests, load_requests
    from .checklist import ChecklistItem, ChecklistResult, run_checklist
    from .engine import DuckDBEngine, Engine, SparkEngine
    from .metrics import GroupRow, Report, TypeStats, compute_report
    from .rules import Breach, CheckResult, Rule, check_baseline, check_rules, load_rules
    from .signals import Signal, SignalConfig, compute_signals
    from .source import DataSource, open_source
    from .sql import Filters

#: Public name -> submodule: ``import ctxbudget.analyze`` stays cheap (a command's
#: start-up imports only the submodules it uses).
_LAZY: dict[str, str] = {
    "AuditReport": "audit",
    "Breach": "rules",
    "CheckResult": "rules",
    "ChecklistItem": "checklist",
    "ChecklistResult": "checklist",
    "DataSource": "source",
    "DuckDBEngine": "engine",
    "Engine": "engine",
    "Filters": "sql",
    "Finding": "audit",
    "GroupRow": "metrics",
    "Report": "metrics",
    "Rule": "rules",
    "Signal": "signals",
    "SignalConfig": "signals",
    "SparkEngine": "engine",
    "TypeStats": "metrics",
    "audit_requests": "audit",
    "check_baseline": "rules",
    "check_rules": "rules",
    "compute_report": "metrics",
    "compute_signals": "signals",
    "load_requests": "audit",
    "load_rules": "rules",
    "open_source": "source",
    "run_checklist": "checklist",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "AuditReport",
    "Breach",
    "CheckResult",
    "ChecklistItem",
    "ChecklistResult",
    "DataSource",
    "DuckDBEngine",
    "Engine",
    "Filters",
    "Finding",
    "GroupRow",
    "Report",
    "Rule",
    "Signal",
    "SignalConfig",
    "SparkEngine",
    "TypeStats",
    "audit_requests",
    "check_baseline",
    "check_rules",
    "compute_report",
    "compute_signals",
    "load_requests",
    "load_rules",
    "open_source",
    "run_checklist",
]
