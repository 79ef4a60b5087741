"""Where the store lives by default (no DuckDB import)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_db_path"]


def default_db_path() -> Path:
    """``$CTXBUDGET_HOME/usage.duckdb`` (``~/.ctxbudget`` by default)."""
    home = os.environ.get("CTXBUDGET_HOME") or str(Path.home() / ".ctxbudget")
    return Path(home) / "usage.duckdb"
