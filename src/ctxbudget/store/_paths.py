"""Where the store lives by default (no DuckDB import)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import StoreError

__all__ = ["default_db_path", "private_dir"]


def default_db_path() -> Path:
    """``$CTXBUDGET_HOME/usage.duckdb`` (``~/.ctxbudget`` by default)."""
    home = os.environ.get("CTXBUDGET_HOME") or str(Path.home() / ".ctxbudget")
    return Path(home) / "usage.duckdb"


def private_dir(d: Path) -> None:
    """Create ``d`` (and missing parents) with mode 0700."""
    if not d.is_dir():
        try:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(f"{d}: cannot create the folder: {exc.strerror or exc}") from exc
