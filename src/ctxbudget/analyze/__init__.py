"""Analytics over the usage store: per-task metrics, warning signals, alert rules.

Metrics are portable SQL (:mod:`.sql`) run by an engine (:mod:`.engine`: DuckDB by
default, Spark through sqlglot). Nothing here imports rich or plotting; the
:mod:`ctxbudget.report` package renders these results.
"""

from __future__ import annotations

from .engine import DuckDBEngine, Engine, SparkEngine
from .metrics import GroupRow, Report, TypeStats, compute_report
from .rules import Breach, CheckResult, Rule, check_baseline, check_rules, load_rules
from .signals import Signal, SignalConfig, compute_signals
from .source import DataSource, open_source
from .sql import Filters

__all__ = [
    "Breach",
    "CheckResult",
    "DataSource",
    "DuckDBEngine",
    "Engine",
    "Filters",
    "GroupRow",
    "Report",
    "Rule",
    "Signal",
    "SignalConfig",
    "SparkEngine",
    "TypeStats",
    "check_baseline",
    "check_rules",
    "compute_report",
    "compute_signals",
    "load_rules",
    "open_source",
]
