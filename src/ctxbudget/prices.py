"""Prices and the one cost formula.

A :class:`Price` holds USD per million tokens for each :class:`~ctxbudget.usage.Usage`
bucket, with context-length tiers. :class:`PriceBook` resolves
(provider, model, timestamp, service tier) to a ``Price`` from, in order:

1. the user's overrides file(s) (YAML, see ``examples/prices-2026.yaml``);
2. the bundled catalog of the pinned ``genai-prices`` package (never auto-updated).

An unknown model raises :class:`~ctxbudget.errors.UnpricedModel`; nothing is ever
priced at $0 by omission.

The cost formula lives here and only here: :func:`cost_of` (Python, exact
``Decimal``) and :func:`cost_sql` (the same formula as a SQL expression, for bulk
analytics). Tier rule, as providers bill it: once the *whole prompt* (input + cache
read + cache writes) exceeds a tier's threshold, that tier's rates apply to *every*
token of the request.

Missing rates follow genai-prices: a model without a cache-read rate bills cache
reads at the input rate; without a 1h cache-write rate, 1h writes use the generic
cache-write rate, and without any cache-write rate, the input rate.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .errors import PriceFileError, PricingError, UnpricedModel
from .usage import BUCKETS, Usage


def genai_module(name: str) -> Any:
    """``genai_prices.<name>``, without running the package's ``__init__`` unless it
    has been imported already: that one imports the price-update client (httpx,
    asyncio: ~35 ms) which offline pricing never uses. The package is registered as
    a lazy module: its ``__init__`` runs on the first access to one of its own
    attributes (``genai_prices.calc_price``, ``from genai_prices import Usage``), so
    other code that imports it gets the real package, with these same submodules."""
    if "genai_prices" not in sys.modules:
        from importlib import util

        spec = util.find_spec("genai_prices")
        if spec is not None and spec.loader is not None and spec.submodule_search_locations:
            pkg = util.module_from_spec(spec)

            def _init(attr: str) -> Any:
                if attr.startswith("__") and attr not in ("__all__", "__version__"):
                    raise AttributeError(attr)
                if util.find_spec(f"genai_prices.{attr}") is not None:  # a submodule
                    return importlib.import_module(f"genai_prices.{attr}")
                del pkg.__dict__["__getattr__"]
                assert spec is not None and spec.loader is not None
                spec.loader.exec_module(pkg)
                return getattr(pkg, attr)

            pkg.__dict__["__getattr__"] = _init
            sys.modules["genai_prices"] = pkg
    return importlib.import_module(f"genai_prices.{name}")

__all__ = [
    "MILLION",
    "RATE_FIELDS",
    "Cost",
    "Price",
    "PriceBook",
    "Rates",
    "Tier",
    "cost_of",
    "cost_sql",
    "default_pricebook",
]

MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)

#: Rate fields of :class:`Rates`, one per billed bucket, in bucket order.
RATE_FIELDS: tuple[str, ...] = (
    "input_mtok",
    "cache_read_mtok",
    "cache_write_5m_mtok",
    "cache_write_1h_mtok",
    "output_mtok",
)
_BUCKET_OF_RATE = dict(
    zip(
        RATE_FIELDS,
        ("input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
         "cache_write_1h_tokens", "output_tokens"),
        strict=True,
    )
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rates:
    """USD per million tokens for each bucket, with fallbacks already applied."""

    input_mtok: Decimal
    """Rate for uncached input tokens."""
    cache_read_mtok: Decimal
    """Rate for cache-read tokens (the input rate when the provider has no discount)."""
    cache_write_5m_mtok: Decimal
    """Rate for 5-minute cache writes (the input rate when there is no write premium)."""
    cache_write_1h_mtok: Decimal
    """Rate for 1-hour cache writes."""
    output_mtok: Decimal
    """Rate for output tokens (reasoning included)."""
    _zeros: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    """``0 × rate / 1e6`` per bucket, precomputed: what :func:`_formula` yields for an
    empty bucket (same value *and* exponent as computing it), without the arithmetic."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zeros", tuple(
            0 * getattr(self, r) / MILLION for r in RATE_FIELDS))


@dataclass(frozen=True, slots=True)
class Tier:
    """Rates that replace the base rates once the prompt exceeds ``above_prompt_tokens``."""

    above_prompt_tokens: int
    rates: Rates


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """A model's price at one point in time, for one service tier."""

    provider: str
    model: str
    """Canonical model id of the catalog entry that matched."""
    base: Rates
    tiers: tuple[Tier, ...] = ()
    """Ascending by threshold; the highest threshold the prompt exceeds wins."""
    per_request_usd: Decimal = Decimal(0)
    """A fixed fee per request, when the provider charges one."""
    effective_from: date | None = None
    """First day (UTC) these rates apply; ``None`` means "since the model existed"."""
    source: str = ""
    """Where the price came from: ``genai-prices 0.2.3`` or ``overrides:<file>``."""
    service_tier: str | None = None
    """The variant these rates are for (``batch``, ``priority``...), ``None`` for standard."""
    context_window: int | None = None

    def rates_for(self, prompt_tokens: int) -> Rates:
        """The rates billed for a request whose whole prompt is ``prompt_tokens``."""
        rates = self.base
        for tier in self.tiers:
            if prompt_tokens > tier.above_prompt_tokens:
                rates = tier.rates
        return rates

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            **{k: str(getattr(self.base, k)) for k in RATE_FIELDS},
            "tiers": [
                {"above_prompt_tokens": t.above_prompt_tokens,
                 **{k: str(getattr(t.rates, k)) for k in RATE_FIELDS}}
                for t in self.tiers
            ],
            "per_request_usd": str(self.per_request_usd),
            "effective_from": self.effective_from.isoformat() if self.effective_from else None,
            "service_tier": self.service_tier,
            "source": self.source,
        }
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    """The cost of a usage under a price, per bucket, exact."""

    price: Price
    rates: Rates
    """The rates actually applied (after tier selection)."""
    usage: Usage
    requests: int
    buckets: Mapping[str, Decimal]
    """USD per bucket (``input_tokens``... ``output_tokens``), plus ``requests``."""
    total_usd: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.price.provider,
            "model": self.price.model,
            "source": self.price.source,
            "service_tier": self.price.service_tier,
            "effective_from": (self.price.effective_from.isoformat()
                               if self.price.effective_from else None),
            "tier_applied": self.rates is not self.price.base,
            "buckets": [
                {"bucket": _BUCKET_OF_RATE[r], "tokens": getattr(self.usage, _BUCKET_OF_RATE[r]),
                 "rate_mtok": str(getattr(self.rates, r)),
                 "usd": str(self.buckets[_BUCKET_OF_RATE[r]])}
                for r in RATE_FIELDS
            ],
            "requests_usd": str(self.buckets.get("requests", Decimal(0))),
            "reasoning_tokens": self.usage.reasoning_tokens,
            "total_usd": str(self.total_usd),
        }


def _formula(
    usage: Usage, price: Price, requests: int
) -> tuple[Rates, tuple[Decimal, Decimal, Decimal, Decimal, Decimal], Decimal, Decimal]:
    """THE cost formula, shared by :func:`cost_of` and :meth:`PriceBook.total_usd`.

    Returns (rates applied, USD per bucket in :data:`BUCKETS` order, per-request fees,
    total). Tokens × rate / 1e6 per bucket; the tier is chosen by the whole prompt.
    """
    rates = price.rates_for(usage.prompt_tokens)
    z = rates._zeros  # empty buckets (most calls have some) skip two Decimal operations
    i, r, w5, w1, o = (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_5m_tokens,
                       usage.cache_write_1h_tokens, usage.output_tokens)
    b = (
        i * rates.input_mtok / MILLION if i else z[0],
        r * rates.cache_read_mtok / MILLION if r else z[1],
        w5 * rates.cache_write_5m_mtok / MILLION if w5 else z[2],
        w1 * rates.cache_write_1h_mtok / MILLION if w1 else z[3],
        o * rates.output_mtok / MILLION if o else z[4],
    )
    total = b[0] + b[1] + b[2] + b[3] + b[4]
    fees = _ZERO
    if price.per_request_usd and requests:
        fees = price.per_request_usd * requests
        total += fees
    return rates, b, fees, total


def cost_of(usage: Usage, price: Price, *, requests: int = 1) -> Cost:
    """The cost of ``usage`` under ``price``, per bucket and in total (exact ``Decimal``).

    ``requests`` counts per-request fees (1 for a single call). The arithmetic is
    :func:`_formula`, the only cost formula in Python.
    """
    rates, b, fees, total = _formula(usage, price, requests)
    buckets = dict(zip(BUCKETS, b, strict=True))
    if fees:
        buckets["requests"] = fees
    return Cost(price=price, rates=rates, usage=usage, requests=requests, buckets=buckets,
                total_usd=total)


def cost_sql(tokens: Mapping[str, str], rates: Mapping[str, str]) -> str:
    """The same formula as :func:`cost_of`, as a SQL expression.

    ``tokens`` maps bucket names to SQL column expressions, ``rates`` maps
    :data:`RATE_FIELDS` to column expressions already chosen for the request's tier.
    Uses DECIMAL arithmetic so sums stay exact: the per-million scale is a multiplication
    by the DECIMAL literal 0.000001, because DuckDB (and Spark) turn a DECIMAL division
    into DOUBLE or round it.
    """
    parts = [
        f"CAST({tokens[_BUCKET_OF_RATE[r]]} AS DECIMAL(38,0)) * {rates[r]}" for r in RATE_FIELDS
    ]
    return "((" + " + ".join(parts) + ") * 0.000001)"


# --------------------------------------------------------------------------- catalog


def _dec(value: Any, where: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise PriceFileError(f"{where}: {value!r} is not a number") from None
    if not d.is_finite() or d < 0:
        raise PriceFileError(f"{where}: {value!r} must be a finite, non-negative number")
    return d


def _rates_from_mapping(m: Mapping[str, Any], where: str, fallback: Rates | None = None) -> Rates:
    """Build Rates from a mapping with ``*_mtok`` keys (genai-prices or overrides style)."""

    def get(key: str) -> Decimal | None:
        v = m.get(key)
        return None if v is None else _dec(v, f"{where}.{key}")

    inp = get("input_mtok")
    out = get("output_mtok")
    if inp is None:
        inp = fallback.input_mtok if fallback else None
    if out is None:
        out = fallback.output_mtok if fallback else None
    if inp is None or out is None:
        missing = "input_mtok" if inp is None else "output_mtok"
        raise PriceFileError(f"{where}: {missing} is required")
    read = get("cache_read_mtok")
    write = get("cache_write_mtok")
    w5 = get("cache_write_5m_mtok")
    w1 = get("cache_write_1h_mtok")
    if fallback is not None:
        read = read if read is not None else fallback.cache_read_mtok
        if w5 is None:
            w5 = write if write is not None else fallback.cache_write_5m_mtok
        w1 = w1 if w1 is not None else fallback.cache_write_1h_mtok
    generic_write = w5 if w5 is not None else write
    return Rates(
        input_mtok=inp,
        cache_read_mtok=read if read is not None else inp,
        cache_write_5m_mtok=generic_write if generic_write is not None else inp,
        cache_write_1h_mtok=w1 if w1 is not None else (write if write is not None else inp),
        output_mtok=out,
    )


@dataclass(frozen=True, slots=True)
class _OverrideEntry:
    provider: str | None
    names: frozenset[str]
    effective_from: date | None
    price: Price


def _tier_key(service_tier: str | None) -> str | None:
    """``None`` for the standard tier however it is spelled."""
    if not service_tier or service_tier in ("standard", "default"):
        return None
    return service_tier


def _price_context(service_tier: str | None) -> dict[str, str] | None:
    if not service_tier or service_tier in ("standard", "default"):
        return None
    if service_tier == "batch":
        return {"processing": "batch"}
    return {"service_tier": service_tier}


@dataclass
class PriceBook:
    """Resolves (provider, model, time, service tier) to a :class:`Price`.

    ``overrides`` are YAML files the user owns; they win over the bundled catalog.
    Resolutions are memoized per (provider, model, day, tier), so pricing millions
    of calls costs one dictionary lookup each.
    """

    overrides: Sequence[Path] = ()
    use_catalog: bool = True
    _entries: list[_OverrideEntry] = field(default_factory=list, init=False, repr=False)
    _memo: dict[tuple[str | None, str, date, str | None], Price] = field(
        default_factory=dict, init=False, repr=False
    )
    _built: dict[tuple[Any, ...], Price] = field(default_factory=dict, init=False, repr=False)
    """Catalog prices already built, keyed by (provider, model, tier, which of the
    model's dated / time-of-day constraints are active): a new day costs no rebuild."""

    def __post_init__(self) -> None:
        for path in self.overrides:
            self._entries.extend(_load_overrides(Path(path)))
        # newest first, so the first match at a date is the one in force
        self._entries.sort(key=lambda e: e.effective_from or date.min, reverse=True)

    # -- resolution --------------------------------------------------------
    def resolve(
        self,
        model: str,
        provider: str | None = None,
        at: datetime | date | None = None,
        service_tier: str | None = None,
    ) -> Price:
        """The price in force for ``model`` at ``at`` (default: now, UTC)."""
        if at is None:
            at = datetime.now(UTC)  # "now" is memoized per day like any other instant
        if isinstance(at, datetime):
            if at.tzinfo is not UTC:
                at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
            day = at.date()
        else:
            day = at
        key = (provider, model, day, service_tier)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        price = self._resolve_override(model, provider, day, service_tier)
        memoize = True
        if price is None:
            price, memoize = self._resolve_catalog(model, provider, at, service_tier)
        if memoize:
            self._memo[key] = price
        return price

    def cost(
        self,
        usage: Usage,
        model: str,
        provider: str | None = None,
        at: datetime | date | None = None,
        service_tier: str | None = None,
        *,
        requests: int = 1,
    ) -> Cost:
        """Resolve the price and apply :func:`cost_of`."""
        return cost_of(usage, self.resolve(model, provider, at, service_tier), requests=requests)

    def total_usd(
        self,
        usage: Usage,
        model: str,
        provider: str | None = None,
        at: datetime | date | None = None,
        service_tier: str | None = None,
    ) -> Decimal:
        """``cost(...).total_usd`` without building the :class:`Cost` (the scalar fast path)."""
        return _formula(usage, self.resolve(model, provider, at, service_tier), 1)[3]

    def _resolve_override(
        self, model: str, provider: str | None, day: date, service_tier: str | None
    ) -> Price | None:
        """The newest override in force on ``day`` for this model, provider and tier
        (a standard-tier override does not price batch calls, and vice versa)."""
        name = model.lower()
        tier = _tier_key(service_tier)
        for e in self._entries:
            if name not in e.names:
                continue
            if provider and e.provider and provider.lower() != e.provider:
                continue
            if e.effective_from is not None and day < e.effective_from:
                continue
            if _tier_key(e.price.service_tier) != tier:
                continue
            return e.price
        return None

    def _resolve_catalog(
        self,
        model: str,
        provider: str | None,
        at: datetime | date | None,
        service_tier: str | None,
    ) -> tuple[Price, bool]:
        """The catalog price, and whether it may be memoized per day."""
        if not self.use_catalog:
            raise UnpricedModel(model, provider, self.near_matches(model))
        data_snapshot = genai_module("data_snapshot")  # lazy: the catalog is ~30k lines

        snap = data_snapshot.get_snapshot()
        try:
            prov, info = snap.find_provider_model(model, None, provider, None)
        except LookupError:
            raise UnpricedModel(model, provider, self.near_matches(model, provider)) from None
        if isinstance(at, datetime):
            ts = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
        elif isinstance(at, date):
            ts = datetime(at.year, at.month, at.day, tzinfo=UTC)
        else:
            ts = datetime.now(UTC)
        ctx = _price_context(service_tier)
        if ctx and not any(info is m for m in prov.models):
            ctx = None  # as genai-prices: variants only apply to the provider's own models
        conds = [c.constraint for c in info.prices] if isinstance(info.prices, list) else []
        conds += [v.constraint for v in info.price_variants or ()]
        state = tuple(c is None or c.active(ts) for c in conds)
        bkey = (prov.id, info.id, service_tier, state)
        price = self._built.get(bkey)
        if price is None:
            mp = info.get_prices(ts, ctx)
            built = _price_from_genai(prov.id, info, mp, service_tier,
                                      _effective_from(info, ts, ctx))
            if built is None:
                raise UnpricedModel(model, provider, self.near_matches(model, provider))
            price = self._built[bkey] = built
        # time-of-day (off-peak) prices cannot be memoized per day
        time_varying = any(type(c).__name__ == "TimeOfDateConstraint" for c in conds)
        return price, not time_varying

    # -- listing -----------------------------------------------------------
    def near_matches(self, model: str, provider: str | None = None, n: int = 3) -> list[str]:
        names = {n_ for e in self._entries for n_ in e.names}
        if self.use_catalog:
            data_snapshot = genai_module("data_snapshot")

            for p in data_snapshot.get_snapshot().providers:
                if provider and p.id != provider.lower():
                    continue
                names.update(m.id for m in p.models)
        return difflib.get_close_matches(model.lower(), sorted(names), n=n, cutoff=0.6)

    def rows(self, pattern: str | None = None, at: datetime | None = None) -> list[Price]:
        """Every price row whose model or provider contains ``pattern`` (case-insensitive)."""
        pat = (pattern or "").lower()
        out: list[Price] = []
        seen: set[tuple[str, str]] = set()
        for e in self._entries:
            if pat in e.price.model.lower() or pat in e.price.provider.lower():
                out.append(e.price)
                seen.add((e.price.provider, e.price.model))
        if self.use_catalog:
            data_snapshot = genai_module("data_snapshot")

            ts = at or datetime.now(UTC)
            for p in data_snapshot.get_snapshot().providers:
                for m in p.models:
                    if (p.id, m.id) in seen:
                        continue
                    if pat and pat not in m.id.lower() and pat not in p.id.lower():
                        continue
                    price = _price_from_genai(p.id, m, m.get_prices(ts), None,
                                              _effective_from(m, ts, None))
                    if price is not None:
                        out.append(price)
        return out


@functools.cache
def _genai_version() -> str:
    from importlib.metadata import version  # reads package metadata: ~2 ms, so once

    return f"genai-prices {version('genai-prices')}"


def _effective_from(info: Any, ts: datetime, ctx: Mapping[str, str] | None) -> date | None:
    """First day of the catalog price in force at ``ts``: the start of the active dated
    price, or of the newest active service-tier variant when that one started later."""
    start: date | None = None
    if isinstance(info.prices, list):
        for c in reversed(info.prices):  # genai-prices: the last active price wins
            if c.constraint is None or c.constraint.active(ts):
                start = getattr(c.constraint, "start_date", None)
                break
    if not ctx:
        return start
    for v in info.price_variants or ():
        if v.constraint is not None and not v.constraint.active(ts):
            continue
        if not all(ctx.get(k) == val for k, val in v.when.items()):
            continue
        if not any(x is not None for x in v.prices.__dict__.values()):
            continue
        vs = getattr(v.constraint, "start_date", None)
        if vs is not None and (start is None or vs > start):
            start = vs
    return start


def _price_from_genai(
    provider: str, info: Any, mp: Any, service_tier: str | None, start: date | None
) -> Price | None:
    TieredPrices = genai_module("types").TieredPrices

    raw: dict[str, Any] = {}
    thresholds: set[int] = set()
    for key in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok",
                "cache_write_5m_mtok", "cache_write_1h_mtok"):
        v = getattr(mp, key, None)
        raw[key] = v
        if isinstance(v, TieredPrices):
            thresholds.update(t.start for t in v.tiers)
    if raw["input_mtok"] is None:
        return None
    if raw["output_mtok"] is None:
        # input-only models (embeddings, moderation): genai-prices bills output at 0 too
        raw["output_mtok"] = Decimal(0)

    def at_level(threshold: int | None) -> dict[str, Decimal | None]:
        out: dict[str, Decimal | None] = {}
        for k, v in raw.items():
            if isinstance(v, TieredPrices):
                rate = v.base
                if threshold is not None:
                    for t in v.tiers:
                        if threshold >= t.start:
                            rate = t.price
                out[k] = rate
            else:
                out[k] = v
        return out

    base = _rates_from_mapping(at_level(None), f"{provider}/{info.id}")
    tiers = tuple(
        Tier(th, _rates_from_mapping(at_level(th), f"{provider}/{info.id}"))
        for th in sorted(thresholds)
    )
    req = getattr(mp, "requests_kcount", None)
    per_req = (Decimal(req) / 1000) if isinstance(req, Decimal) else Decimal(0)
    return Price(
        provider=provider,
        model=info.id,
        base=base,
        tiers=tiers,
        per_request_usd=per_req,
        effective_from=start,
        source=_genai_version(),
        service_tier=service_tier,
        context_window=info.context_window,
    )


# --------------------------------------------------------------------------- overrides file


def _load_overrides(path: Path) -> list[_OverrideEntry]:
    from ._yamlio import read_yaml

    doc = read_yaml(path, PriceFileError, "prices file")
    if not isinstance(doc, Mapping) or not isinstance(doc.get("prices"), list):
        raise PriceFileError(f"{path}: expected a mapping with a 'prices' list")
    allowed = {"model", "provider", "aliases", "effective_from", "source", "tiers",
               "per_request_usd", "service_tier", "context_window", "cache_write_mtok",
               *RATE_FIELDS}
    entries: list[_OverrideEntry] = []
    for i, item in enumerate(doc["prices"]):
        where = f"{path}: prices[{i}]"
        if not isinstance(item, Mapping):
            raise PriceFileError(f"{where}: expected a mapping")
        unknown = set(item) - allowed
        if unknown:
            raise PriceFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                                 f"allowed: {', '.join(sorted(allowed))}")
        model = item.get("model")
        if not isinstance(model, str) or not model:
            raise PriceFileError(f"{where}.model: a model name is required")
        where = f"{path}: prices[{i}] ({model})"
        base = _rates_from_mapping(item, where)
        tiers: list[Tier] = []
        for j, t in enumerate(item.get("tiers") or []):
            tw = f"{where}.tiers[{j}]"
            if not isinstance(t, Mapping) or not isinstance(t.get("above_prompt_tokens"), int):
                raise PriceFileError(f"{tw}: needs an integer above_prompt_tokens")
            tiers.append(Tier(t["above_prompt_tokens"], _rates_from_mapping(t, tw, fallback=base)))
        tiers.sort(key=lambda t: t.above_prompt_tokens)
        eff = item.get("effective_from")
        if eff is not None and not isinstance(eff, date):
            try:
                eff = date.fromisoformat(str(eff))
            except ValueError:
                raise PriceFileError(f"{where}.effective_from: {eff!r} is not YYYY-MM-DD") from None
        aliases = item.get("aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise PriceFileError(f"{where}.aliases: expected a list of model names")
        provider = item.get("provider")
        price = Price(
            provider=str(provider or "custom"),
            model=model,
            base=base,
            tiers=tuple(tiers),
            per_request_usd=_dec(item.get("per_request_usd", 0), f"{where}.per_request_usd"),
            effective_from=eff,
            source=f"overrides:{path.name}"
            + (f" ({item['source']})" if item.get("source") else ""),
            service_tier=item.get("service_tier"),
            context_window=item.get("context_window"),
        )
        entries.append(_OverrideEntry(
            provider=str(provider).lower() if provider else None,
            names=frozenset(n.lower() for n in [model, *aliases]),
            effective_from=eff,
            price=price,
        ))
    return entries


_DEFAULT: PriceBook | None = None


def default_pricebook() -> PriceBook:
    """A process-wide PriceBook over the bundled catalog (no overrides)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = PriceBook()
    return _DEFAULT


def iter_models(
    book: PriceBook, pairs: Iterable[tuple[str | None, str]]
) -> dict[tuple[str | None, str], Price | PricingError]:
    """Resolve many (provider, model) pairs at once, keeping errors as values."""
    out: dict[tuple[str | None, str], Price | PricingError] = {}
    for prov, model in pairs:
        try:
            out[(prov, model)] = book.resolve(model, prov)
        except PricingError as exc:
            out[(prov, model)] = exc
    return out
