"""Assertions shared by the integration tests."""

from __future__ import annotations

from decimal import Decimal

from ctxbudget.adapters import AdaptedUsage
from ctxbudget.prices import default_pricebook
from ctxbudget.usage import Call


def assert_same_as_adapter(call: Call, expected: AdaptedUsage, *, provider: str, model: str
                           ) -> Decimal:
    """The recorded buckets equal the adapter's on the same response, and so does the cost
    (the same PriceBook, the expected provider and model). Returns the cost."""
    assert call.usage == expected.usage, (call.usage, expected.usage)
    assert call.provider == provider, call.provider
    assert call.model == model, call.model
    pb = default_pricebook()
    got = pb.cost(call.usage, call.model, call.provider, call.ts).total_usd
    want = pb.cost(expected.usage, model, provider, call.ts).total_usd
    assert got == want
    assert got > 0
    return got
