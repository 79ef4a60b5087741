"""Dated pricing rules for what the catalog lacks: tool fees and batch discounts.

Both come from YAML in the overrides format (top-level ``tool_fees:`` and
``batch_rules:`` lists): the bundled ``data/price_rules.yaml`` (documented rates, each
with a source) and the user's own ``--prices`` files, which win. :class:`PriceBook`
applies a rule only where the catalog has no rate of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .errors import PriceFileError

__all__ = ["BatchRule", "FeeRule", "Rules", "bundled_rules", "parse_rules"]

_RATE_FIELDS = ("input_mtok", "cache_read_mtok", "cache_write_5m_mtok", "cache_write_1h_mtok",
                "output_mtok")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeeRule:
    """A per-request fee of a server-side tool, from ``effective_from`` on."""

    provider: str
    tool: str
    usd_per_request: Decimal
    effective_from: date | None
    source: str
    models: frozenset[str] = frozenset()
    """Model names it is limited to (empty: every model of the provider)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchRule:
    """A provider's documented batch discount: ``rates`` scaled by ``scale``."""

    name: str
    provider: str
    scale: Decimal
    rates: tuple[str, ...]
    effective_from: date | None
    source: str


@dataclass(frozen=True, slots=True)
class Rules:
    fees: tuple[FeeRule, ...] = ()
    batch: tuple[BatchRule, ...] = ()

    def __add__(self, other: Rules) -> Rules:
        """``self`` wins: its entries come first (lookups take the first match)."""
        return Rules(self.fees + other.fees, self.batch + other.batch)

    def fee(self, provider: str, model: str, tool: str, day: date) -> FeeRule | None:
        best: FeeRule | None = None
        for r in self.fees:
            if r.provider != provider or r.tool != tool:
                continue
            if r.models and model.lower() not in r.models:
                continue
            if r.effective_from is not None and day < r.effective_from:
                continue
            if best is None or (r.effective_from or date.min) > (best.effective_from or date.min):
                best = r
        return best

    def tools(self, provider: str) -> set[str]:
        return {r.tool for r in self.fees if r.provider == provider}

    def batch_rule(self, provider: str, day: date) -> BatchRule | None:
        for r in self.batch:
            if r.provider == provider and (r.effective_from is None or day >= r.effective_from):
                return r
        return None


#: Largest price accepted from a file, in USD (per million tokens, or per request): a
#: larger one is a typo, and would overflow the exact arithmetic of the cost formula.
MAX_PRICE_USD = Decimal(10**6)


def dec_price(v: Any, where: str) -> Decimal:
    """A price from a user file as a ``Decimal``: finite, in 0..:data:`MAX_PRICE_USD`,
    else :class:`PriceFileError` naming ``where`` (never ``decimal.InvalidOperation``)."""
    if isinstance(v, bool):
        raise PriceFileError(f"{where}: {v!r} is not a number")
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):  # not a number, an int past the str limit
        raise PriceFileError(f"{where}: {_short(v)} is not a number") from None
    if not d.is_finite() or d < 0 or d > MAX_PRICE_USD:
        raise PriceFileError(f"{where}: {_short(v)} must be a finite, non-negative number "
                             f"(at most {MAX_PRICE_USD:,})")
    return d


def _short(v: Any) -> str:
    if isinstance(v, int) and v.bit_length() > 200:
        return f"an integer of {v.bit_length()} bits"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."



def _day(v: Any, where: str) -> date | None:
    if v is None or isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v))
    except ValueError:
        raise PriceFileError(f"{where}: {v!r} is not YYYY-MM-DD") from None


def _str(m: Mapping[str, Any], key: str, where: str) -> str:
    v = m.get(key)
    if not isinstance(v, str) or not v:
        raise PriceFileError(f"{where}.{key}: a non-empty string is required")
    return v


def _check(m: Any, allowed: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(m, Mapping):
        raise PriceFileError(f"{where}: expected a mapping")
    unknown = set(m) - allowed
    if unknown:
        raise PriceFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                             f"allowed: {', '.join(sorted(allowed))}")
    return m


def parse_rules(doc: Mapping[str, Any], name: str) -> Rules:
    """The ``tool_fees`` and ``batch_rules`` of a parsed overrides document."""
    fees: list[FeeRule] = []
    for i, item in enumerate(_list(doc, "tool_fees", name)):
        where = f"{name}: tool_fees[{i}]"
        m = _check(item, {"provider", "tool", "usd_per_request", "effective_from", "source",
                          "models"}, where)
        if "usd_per_request" not in m:
            raise PriceFileError(f"{where}.usd_per_request is required")
        models = m.get("models") or []
        if not isinstance(models, list) or not all(isinstance(x, str) for x in models):
            raise PriceFileError(f"{where}.models: expected a list of model names")
        fees.append(FeeRule(
            provider=_str(m, "provider", where).lower(), tool=_str(m, "tool", where),
            usd_per_request=dec_price(m["usd_per_request"], f"{where}.usd_per_request"),
            effective_from=_day(m.get("effective_from"), f"{where}.effective_from"),
            source=f"{name} ({m['source']})" if m.get("source") else name,
            models=frozenset(x.lower() for x in models)))
    batch: list[BatchRule] = []
    for i, item in enumerate(_list(doc, "batch_rules", name)):
        where = f"{name}: batch_rules[{i}]"
        m = _check(item, {"name", "provider", "scale", "rates", "effective_from", "source"},
                   where)
        rates = m.get("rates") or list(_RATE_FIELDS)
        if not isinstance(rates, list) or any(r not in _RATE_FIELDS for r in rates):
            raise PriceFileError(f"{where}.rates: expected a list of {', '.join(_RATE_FIELDS)}")
        scale = dec_price(m.get("scale"), f"{where}.scale")
        if scale > 1:
            raise PriceFileError(f"{where}.scale: a discount is at most 1, got {scale}")
        batch.append(BatchRule(
            name=_str(m, "name", where), provider=_str(m, "provider", where).lower(),
            scale=scale, rates=tuple(rates),
            effective_from=_day(m.get("effective_from"), f"{where}.effective_from"),
            source=f"{name} ({m['source']})" if m.get("source") else name))
    batch.sort(key=lambda r: r.effective_from or date.min, reverse=True)
    return Rules(tuple(fees), tuple(batch))


def _list(doc: Mapping[str, Any], key: str, name: str) -> Sequence[Any]:
    v = doc.get(key)
    if v is None:
        return ()
    if not isinstance(v, list):
        raise PriceFileError(f"{name}: {key} must be a list")
    return v


BUNDLED = Path(__file__).with_name("data") / "price_rules.yaml"


@functools.cache
def bundled_rules() -> Rules:
    """The rules shipped with ctxbudget (``data/price_rules.yaml``)."""
    from ._yamlio import read_yaml

    doc = read_yaml(BUNDLED, PriceFileError, "price rules")
    return parse_rules(doc, "ctxbudget price_rules.yaml")
