"""The usage store: a DuckDB file with numbered migrations (see :mod:`.schema`)."""

from __future__ import annotations

from .db import Store, calls_to_arrow, default_db_path, open_store
from .schema import CALL_COLUMNS, MIGRATIONS

__all__ = ["CALL_COLUMNS", "MIGRATIONS", "Store", "calls_to_arrow", "default_db_path", "open_store"]
