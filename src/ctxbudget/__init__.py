"""ctxbudget: plan, enforce and monitor the token budget of LLM applications.

The public API is re-exported here; heavy parts (SDKs, plotting, DuckDB) load lazily.
"""

from __future__ import annotations

import typing as _typing

from .errors import (
    BudgetExceeded,
    CtxBudgetError,
    InputFormatError,
    PriceFileError,
    PricingError,
    SpecError,
    StoreError,
    TokenizerError,
    UnpricedModel,
    UsageError,
)

if _typing.TYPE_CHECKING:  # imported on first use (see _LAZY): `ctxbudget --version` stays light
    from .adapters import AdaptedUsage, adapt_usage
    from .priced import PricedResponse, price_response
    from .prices import Cost, Price, PriceBook, Rates, Tier, cost_of, default_pricebook
    from .usage import BUCKETS, Call, Task, Usage

__version__ = "0.1.0"

#: Public names that live in heavier modules, imported on first use so that
#: ``import ctxbudget`` stays light (no SDK, DuckDB or plotting import).
#: Each entry: public name -> "module:attribute".
_LAZY: dict[str, str] = {
    # core model and pricing (light, but not needed by `ctxbudget --version`)
    "AdaptedUsage": "ctxbudget.adapters:AdaptedUsage",
    "adapt_usage": "ctxbudget.adapters:adapt_usage",
    "Cost": "ctxbudget.prices:Cost",
    "Price": "ctxbudget.prices:Price",
    "PriceBook": "ctxbudget.prices:PriceBook",
    "Rates": "ctxbudget.prices:Rates",
    "Tier": "ctxbudget.prices:Tier",
    "cost_of": "ctxbudget.prices:cost_of",
    "price_response": "ctxbudget.priced:price_response",
    "PricedResponse": "ctxbudget.priced:PricedResponse",
    "default_pricebook": "ctxbudget.prices:default_pricebook",
    "BUCKETS": "ctxbudget.usage:BUCKETS",
    "Call": "ctxbudget.usage:Call",
    "Task": "ctxbudget.usage:Task",
    "Usage": "ctxbudget.usage:Usage",
    "open_store": "ctxbudget.store:open_store",
    "Store": "ctxbudget.store:Store",
    "count_tokens": "ctxbudget.tokens:count_tokens",
    "count_many": "ctxbudget.tokens:count_many",
    "count_tools": "ctxbudget.tokens:count_tools",
    "TokenCount": "ctxbudget.tokens:TokenCount",
    "Calibration": "ctxbudget.tokens:Calibration",
    # tracking (ctxbudget.track is a callable module: ctxbudget.track(client))
    "track": "ctxbudget.track:MODULE",
    "task": "ctxbudget.track:task",
    "current_task": "ctxbudget.track:current_task",
    "use_ledger": "ctxbudget.track:use_ledger",
    "flush": "ctxbudget.track:flush",
    "ingest_spool": "ctxbudget.store.spool:ingest_spool",
    # runtime context packer
    "Packer": "ctxbudget.pack:Packer",
    "PackerConfig": "ctxbudget.pack:PackerConfig",
    "Packed": "ctxbudget.pack:Packed",
    "Budget": "ctxbudget.pack:Budget",
    "HistoryPolicy": "ctxbudget.pack:HistoryPolicy",
    "RetrievalPolicy": "ctxbudget.pack:RetrievalPolicy",
    "ToolPolicy": "ctxbudget.pack:ToolPolicy",
    "ToolOutputPolicy": "ctxbudget.pack:ToolOutputPolicy",
    "Ledger": "ctxbudget.pack:Ledger",
    "ContextOverflow": "ctxbudget.pack:ContextOverflow",
    "render_anthropic": "ctxbudget.pack:render_anthropic",
    "render_openai_chat": "ctxbudget.pack:render_openai_chat",
    "render_openai_responses": "ctxbudget.pack:render_openai_responses",
    # planning (ctxbudget.plan is a callable module: ctxbudget.plan(spec) -> Plan)
    "plan": "ctxbudget.plan:MODULE",
    "project": "ctxbudget.plan:project",
    "load_spec": "ctxbudget.plan:load_spec",
    "Plan": "ctxbudget.plan:Plan",
    "BudgetSpec": "ctxbudget.plan:BudgetSpec",
    # cache audit, cache simulation, what-if, checklist
    "audit_requests": "ctxbudget.analyze.audit:audit_requests",
    "simulate_cache": "ctxbudget.analyze.cachesim:simulate_cache",
    "whatif": "ctxbudget.analyze.whatif:whatif",
    "run_checklist": "ctxbudget.analyze.checklist:run_checklist",
    # per-task metrics, warning signals
    "compute_report": "ctxbudget.analyze.metrics:compute_report",
    "compute_signals": "ctxbudget.analyze.signals:compute_signals",
    "open_source": "ctxbudget.analyze.source:open_source",
}


def __getattr__(name: str) -> object:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'ctxbudget' has no attribute {name!r}")
    import importlib

    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value

__all__ = [
    "BUCKETS",
    "AdaptedUsage",
    "Budget",
    "BudgetExceeded",
    "BudgetSpec",
    "Calibration",
    "Call",
    "ContextOverflow",
    "Cost",
    "CtxBudgetError",
    "HistoryPolicy",
    "InputFormatError",
    "Ledger",
    "Packed",
    "Packer",
    "PackerConfig",
    "Plan",
    "Price",
    "PriceBook",
    "PriceFileError",
    "PricedResponse",
    "PricingError",
    "Rates",
    "RetrievalPolicy",
    "SpecError",
    "Store",
    "StoreError",
    "Task",
    "Tier",
    "TokenCount",
    "TokenizerError",
    "ToolOutputPolicy",
    "ToolPolicy",
    "UnpricedModel",
    "Usage",
    "UsageError",
    "__version__",
    "adapt_usage",
    "audit_requests",
    "compute_report",
    "compute_signals",
    "cost_of",
    "count_many",
    "count_tokens",
    "count_tools",
    "current_task",
    "default_pricebook",
    "flush",
    "ingest_spool",
    "load_spec",
    "open_source",
    "open_store",
    "plan",
    "price_response",
    "project",
    "render_anthropic",
    "render_openai_chat",
    "render_openai_responses",
    "run_checklist",
    "simulate_cache",
    "task",
    "track",
    "use_ledger",
    "whatif",
]
