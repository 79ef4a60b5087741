"""The usage store: a DuckDB file with numbered migrations (see :mod:`.schema`).

The names below are imported on first use, so a submodule (the store's lock, the
pending calls of the day summary) loads without the store's DuckDB code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .db import Store, calls_to_arrow, default_db_path, open_store
    from .schema import CALL_COLUMNS, MIGRATIONS

__all__ = ["CALL_COLUMNS", "MIGRATIONS", "Store", "calls_to_arrow", "default_db_path", "open_store"]

_LAZY = {"Store": ".db", "calls_to_arrow": ".db", "default_db_path": ".db", "open_store": ".db",
         "CALL_COLUMNS": ".schema", "MIGRATIONS": ".schema"}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value
