"""Fixtures for token-counter tests: real texts and a fresh memo per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ctxbudget.tokens import clear_cache


@pytest.fixture(autouse=True)
def _fresh_memo() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.fixture(scope="session")
def real_texts(data_dir: Path) -> dict[str, str]:
    """The seed article and DESIGN.md: real prose with tables, code and Unicode."""
    shared = data_dir.parent
    out = {}
    for p in (shared / "seed" / "token-budget-planning-and-execution.txt", shared / "DESIGN.md"):
        if not p.is_file():
            pytest.skip(f"{p} is missing")
        out[p.name] = p.read_text(encoding="utf-8")
    return out
