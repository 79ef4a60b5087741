"""ctxbudget: plan, enforce and monitor the token budget of LLM applications.

The public API is re-exported here; heavy parts (SDKs, plotting, DuckDB) load lazily.
"""

from __future__ import annotations

from .adapters import AdaptedUsage, adapt_usage
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
from .prices import Cost, Price, PriceBook, Rates, Tier, cost_of, default_pricebook
from .usage import BUCKETS, Call, Task, Usage

__version__ = "0.1.0"

__all__ = [
    "BUCKETS",
    "AdaptedUsage",
    "BudgetExceeded",
    "Call",
    "Cost",
    "CtxBudgetError",
    "InputFormatError",
    "Price",
    "PriceBook",
    "PriceFileError",
    "PricingError",
    "Rates",
    "SpecError",
    "StoreError",
    "Task",
    "Tier",
    "TokenizerError",
    "UnpricedModel",
    "Usage",
    "UsageError",
    "__version__",
    "adapt_usage",
    "cost_of",
    "default_pricebook",
]
