from decimal import Decimal

from ctxbudget import PriceBook, Usage


def test_cost_acceptance_figure() -> None:
    u = Usage(input_tokens=20000, cache_read_tokens=60000, cache_write_5m_tokens=20000,
              output_tokens=5000)
    assert PriceBook().total_usd(u, "claude-sonnet-4-5", "anthropic") == Decimal("0.228")
