"""The one exception tree of ctxbudget.

::

    CtxBudgetError                 base of everything we raise on purpose
    ├── UsageError                 a usage object is inconsistent (names the field)
    ├── PricingError               a price cannot be resolved or is malformed
    │   ├── UnpricedModel          the model has no known price (never priced at $0)
    │   └── PriceFileError         a user overrides file is invalid (names file/field)
    ├── TokenizerError             a tokenizer could not be loaded
    ├── SpecError                  a budget spec or rules file is invalid (names file/line/field)
    ├── InputFormatError           an imported file or line is malformed (names file:line)
    ├── StoreError                 the usage store could not be read or written
    └── BudgetExceeded             a task's budget cap was hit (carries spend and limit)

The CLI maps every ``CtxBudgetError`` except ``BudgetExceeded`` to exit code 2
with one line of text; nothing a user did wrong ends in a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

__all__ = [
    "BudgetExceeded",
    "CtxBudgetError",
    "InputFormatError",
    "PriceFileError",
    "PricingError",
    "SpecError",
    "StoreError",
    "TokenizerError",
    "UnpricedModel",
    "UsageError",
]


class CtxBudgetError(Exception):
    """Base class of every error ctxbudget raises on purpose."""


class UsageError(CtxBudgetError, ValueError):
    """A usage object is inconsistent; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PricingError(CtxBudgetError):
    """A price could not be resolved."""


class UnpricedModel(PricingError, LookupError):
    """No price is known for a model. Never silently priced at $0."""

    def __init__(
        self, model: str, provider: str | None = None, near: Sequence[str] = ()
    ) -> None:
        self.model = model
        self.provider = provider
        self.near = tuple(near)
        where = f" (provider {provider})" if provider else ""
        hint = f"; near matches: {', '.join(self.near)}" if self.near else ""
        super().__init__(
            f"no price known for model {model!r}{where}{hint}; "
            "add it to a prices overrides file (see examples/prices-2026.yaml) "
            "and pass --prices FILE"
        )


class PriceFileError(PricingError):
    """A price overrides file is invalid."""


class TokenizerError(CtxBudgetError):
    """A tokenizer could not be loaded or used."""


class SpecError(CtxBudgetError, ValueError):
    """A spec / rules / config file is invalid; the message names file, line and field."""


class InputFormatError(CtxBudgetError, ValueError):
    """An input file or one of its lines is malformed; the message names file:line."""


class StoreError(CtxBudgetError):
    """The usage store could not be read or written."""


class BudgetExceeded(CtxBudgetError):
    """A task budget cap was reached.

    ``spent`` is what the task had consumed (in the limit's unit) when the check
    fired, ``limit`` the cap, ``metric`` one of ``cost_usd``, ``input_tokens``,
    ``calls``; ``projected`` is the spend the blocked call would have led to
    (pre-call checks) or ``None`` (post-call checks). ``cap`` is the keyword of
    ``ctxbudget.task`` that set the limit (``max_cost_usd``, ``max_input_tokens``,
    ``max_calls``).
    """

    def __init__(
        self,
        *,
        task_id: str,
        metric: str,
        spent: Decimal | int,
        limit: Decimal | int,
        projected: Decimal | int | None = None,
        phase: str = "pre-call",
    ) -> None:
        self.task_id = task_id
        self.metric = metric
        self.spent = spent
        self.limit = limit
        self.projected = projected
        self.phase = phase
        extra = f", this call would bring it to {projected}" if projected is not None else ""
        super().__init__(
            f"task {task_id!r} {metric} budget {limit} reached ({phase}): spent {spent}{extra}"
        )

    @property
    def cap(self) -> str:
        """The cap's keyword: ``max_cost_usd``, ``max_input_tokens`` or ``max_calls``."""
        return _CAPS.get(self.metric, self.metric)


_CAPS = {"cost_usd": "max_cost_usd", "input_tokens": "max_input_tokens", "calls": "max_calls"}
