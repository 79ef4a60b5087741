"""Price a whole provider response: every billed element, itemised, with its source.

:func:`price_response` is what ``ctxbudget usage FILE --cost`` prints and what the
tracker, the gateway and the importers call (:func:`price_adapted` when they already
hold an :class:`~ctxbudget.adapters.AdaptedUsage`)::

    from ctxbudget import price_response
    r = price_response(body, provider="auto")       # body: a response dict / SDK object
    r.total_usd, r.unpriced, r.as_dict()

The result has one *part* per sampling iteration (Anthropic ``usage.iterations``: each
priced at its own model, with its own context-length tier) or one part for a plain
response, each a :class:`~ctxbudget.prices.Cost` (buckets, modality lines, the rates and
their source), plus the server-side tool fees (priced at the response's model) and the
list of unpriced elements. Nothing is dropped: an element without a rate is listed in
``unpriced`` and makes ``complete`` false; an unknown model is an error, never $0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from .adapters import AdaptedUsage, adapt_usage
from .errors import PricingError
from .prices import Cost, FeeLine, PriceBook, default_pricebook, fee_line
from .usage import TOOL_FIELDS, Usage

__all__ = ["PricedPart", "PricedResponse", "body_time", "price_adapted", "price_response"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PricedPart:
    """One priced sampling iteration (or the whole response when it has none)."""

    label: str
    """``response``, or ``iteration 0 (compaction)``..."""
    model: str
    usage: Usage
    cost: Cost


@dataclass(frozen=True, slots=True, kw_only=True)
class PricedResponse:
    """Every billed element of one response, priced."""

    adapted: AdaptedUsage
    provider: str
    model: str
    at: datetime
    service_tier: str | None
    parts: tuple[PricedPart, ...]
    tool_fees: tuple[FeeLine, ...]
    total_usd: Decimal
    """Sum of the parts and the priced tool fees (unpriced elements are not in it)."""

    @property
    def usage(self) -> Usage:
        """The billed usage (the sum over iterations)."""
        return self.adapted.usage

    @property
    def unpriced(self) -> tuple[str, ...]:
        """Billed elements no rate prices (``code_execution x 1``...)."""
        return tuple(f"{f.tool} x {f.requests}" for f in self.tool_fees if f.usd is None)

    @property
    def notes(self) -> tuple[str, ...]:
        """Modality tokens billed at their bucket's (text) rate because the price has no
        rate for that modality: exact when the provider bills them as text, an
        under-estimate otherwise (add the rate to an overrides file)."""
        return tuple(
            f"{m.field} x {m.tokens} of {p.model} priced at the {m.bucket} rate: "
            f"{p.cost.price.source} has no {m.field.split('_')[-2]} rate for it"
            for p in self.parts for m in p.cost.modality if not m.modality_rate)

    @property
    def complete(self) -> bool:
        """True when every billed element has a price."""
        return not self.unpriced

    def as_dict(self) -> dict[str, Any]:
        u = self.usage
        return {
            "format": self.adapted.format,
            "provider": self.provider,
            "model": self.model,
            "at": self.at.date().isoformat(),
            "service_tier": self.service_tier,
            "request_id": self.adapted.request_id,
            "source_input_inclusive": self.adapted.input_inclusive,
            "usage": {**u.as_dict(), **u.detail(), "prompt_tokens": u.prompt_tokens},
            "iterations": [
                {"label": p.label, "model": p.model, "usage": {**p.usage.as_dict(),
                                                               **p.usage.detail()},
                 "cost": p.cost.as_dict(), "total_usd": str(p.cost.total_usd)}
                for p in self.parts
            ],
            "tool_fees": [f.as_dict() for f in self.tool_fees],
            "unpriced": list(self.unpriced),
            "notes": list(self.notes),
            "complete": self.complete,
            "reported_cost_usd": None if self.adapted.reported_cost_usd is None
            else str(self.adapted.reported_cost_usd),
            "total_usd": str(self.total_usd),
        }


def _when(at: datetime | date | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if isinstance(at, datetime):
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    return datetime(at.year, at.month, at.day, tzinfo=UTC)


def body_time(body: Any) -> datetime | None:
    """When the response was created, if the body says: OpenAI ``created`` /
    ``created_at`` (epoch seconds), Gemini ``createTime`` and xAI ``created`` (ISO 8601)."""
    if not isinstance(body, Mapping):
        return None
    for key in ("created", "created_at", "createTime"):
        v = body.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return datetime.fromtimestamp(v, UTC)
        if isinstance(v, str) and v:
            try:
                t = datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                continue
            return t if t.tzinfo else t.replace(tzinfo=UTC)
    return None


def _tokens_only(u: Usage) -> Usage:
    """``u`` without its tool counts (they are priced once, at the response level)."""
    if not u.tool_requests():
        return u
    return replace(u, **{f: None for f, _ in TOOL_FIELDS})  # type: ignore[arg-type]


def price_adapted(
    adapted: AdaptedUsage,
    *,
    provider: str | None = None,
    model: str | None = None,
    at: datetime | date | None = None,
    service_tier: str | None = None,
    book: PriceBook | None = None,
) -> PricedResponse:
    """Price an adapted usage. ``provider`` / ``model`` / ``service_tier`` override what
    the body says; a provider the format does not imply is resolved from the model
    through the catalog (:meth:`PriceBook.provider_for`)."""
    book = book or default_pricebook()
    when = _when(at)
    mdl = model or adapted.model
    if not mdl:
        raise PricingError("the body names no model: pass --model (model=...)")
    prov = provider or adapted.provider or book.provider_for(mdl)
    tier = service_tier if service_tier is not None else adapted.service_tier
    parts: list[PricedPart] = []
    if adapted.iterations:
        for i, it in enumerate(adapted.iterations):
            imodel = it.model if (it.model and it.model != adapted.model) else mdl
            parts.append(PricedPart(
                label=f"iteration {i} ({it.type})", model=imodel, usage=it.usage,
                cost=book.cost(it.usage, imodel, prov, when, tier)))
    else:
        tok = _tokens_only(adapted.usage)
        parts.append(PricedPart(label="response", model=mdl, usage=tok,
                                cost=book.cost(tok, mdl, prov, when, tier)))
    price = book.resolve(mdl, prov, when, tier)
    fees = [fee_line(price, tool, n) for tool, n in adapted.usage.tool_requests().items()]
    fees += [fee_line(price, tool, n) for tool, n in adapted.other_tool_requests]
    total = sum((p.cost.total_usd for p in parts), Decimal(0))
    total += sum((f.usd for f in fees if f.usd is not None), Decimal(0))
    return PricedResponse(adapted=adapted, provider=prov, model=mdl, at=when,
                          service_tier=tier, parts=tuple(parts), tool_fees=tuple(fees),
                          total_usd=total)


def price_response(
    body: Any,
    provider: str = "auto",
    *,
    model: str | None = None,
    price_provider: str | None = None,
    at: datetime | date | None = None,
    service_tier: str | None = None,
    book: PriceBook | None = None,
) -> PricedResponse:
    """Convert ``body`` with the adapter ``provider`` (``auto``: detected from its shape)
    and price every billed element. ``price_provider`` forces the catalog provider
    (e.g. ``groq`` for an OpenAI-shaped body). ``at`` defaults to the body's creation
    time (:func:`body_time`), else now."""
    if isinstance(body, Mapping) or hasattr(body, "model_dump") or hasattr(body, "__dict__"):
        adapted = adapt_usage(provider, body)
    else:
        raise PricingError(f"expected a response body (a mapping), got {type(body).__name__}")
    if at is None:
        at = body_time(body)
    return price_adapted(adapted, provider=price_provider, model=model, at=at,
                         service_tier=service_tier, book=book)
