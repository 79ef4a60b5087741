"""Helpers for plan tests: write a spec (and a prices file) into a temp folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

PRICES = """\
prices:
  - model: test-sonnet
    provider: anthropic
    input_mtok: 3.00
    cache_read_mtok: 0.30
    cache_write_5m_mtok: 3.75
    cache_write_1h_mtok: 6.00
    output_mtok: 15.00
  - model: test-haiku-4-5
    provider: anthropic
    input_mtok: 1.00
    cache_read_mtok: 0.10
    cache_write_5m_mtok: 1.25
    cache_write_1h_mtok: 2.00
    output_mtok: 5.00
  - model: test-gpt
    provider: openai
    input_mtok: 1.25
    cache_read_mtok: 0.125
    output_mtok: 10.00
  - model: test-gemini-2.5-flash
    provider: google
    input_mtok: 0.30
    cache_read_mtok: 0.03
    output_mtok: 2.50
"""


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str], Path]:
    (tmp_path / "prices.yaml").write_text(PRICES, encoding="utf-8")

    def write(text: str, name: str = "spec.yaml") -> Path:
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        return p

    return write
