"""JSON renderer: analyze results as plain JSON values (money as exact strings)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["to_jsonable"]


def to_jsonable(obj: Any) -> Any:
    """Recursively convert results (``as_dict``), Decimals (strings), dates (ISO)."""
    as_dict = getattr(obj, "as_dict", None)
    if callable(as_dict):
        return to_jsonable(as_dict())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    return obj
