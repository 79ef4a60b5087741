"""Analytics over the usage store: per-task metrics, warning signals, alert rules.

Metrics are portable SQL (:mod:`.sql`) run by an engine (:mod:`.engine`: DuckDB by
default, Spark through sqlglot). Nothing here imports rich or plotting; the
:mod:`ctxbudget.report` package renders these results.
"""

from __future__ import annotations

from .audit import AuditReport, Finding, audit_requests, load_requests
from .checklist import ChecklistItem, ChecklistResult, run_checklist
from .engine import DuckDBEngine, Engine, SparkEngine
from .metrics import GroupRow, Report, TypeStats, compute_report
from .rules import Breach, CheckResult, Rule, check_baseline, check_rules, load_rules
from .signals import Signal, SignalConfig, compute_signals
from .source import DataSource, open_source
from .sql import Filters

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
