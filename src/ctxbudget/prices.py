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
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._price_rules import BatchRule, Rules, bundled_rules, dec_price, parse_rules
from .errors import PriceFileError, PricingError, UnpricedModel
from .usage import BUCKETS, MODALITY_FIELDS, Usage


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
    "FeeLine",
    "ModalityLine",
    "Price",
    "PriceBook",
    "Rates",
    "Tier",
    "ToolFee",
    "cost_of",
    "cost_sql",
    "default_pricebook",
    "tool_fees_sql",
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
    modality_mtok: tuple[tuple[str, Decimal], ...] = ()
    """Rates for modality subsets of a bucket, keyed by the :class:`Usage` detail field
    (``input_audio_tokens``, ``cache_read_audio_tokens``, ``output_image_tokens``...).
    A subset without a rate here is billed at its bucket's rate (as text)."""
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
    tool_fees: tuple[ToolFee, ...] = ()
    """Per-request fees of server-side tools (web search...) known for this model."""
    rule: str | None = None
    """The dated rule that derived these rates when the catalog lacked them (e.g.
    ``openai-batch-50``), ``None`` when the rates are the source's own."""

    def tool_fee(self, tool: str) -> ToolFee | None:
        """The fee of ``tool`` (``web_search``...), ``None`` when none is known."""
        for f in self.tool_fees:
            if f.tool == tool:
                return f
        return None

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
        if self.base.modality_mtok:
            out["modality_mtok"] = {k: str(v) for k, v in self.base.modality_mtok}
        if self.tool_fees:
            out["tool_fees"] = [f.as_dict() for f in self.tool_fees]
        if self.rule:
            out["rule"] = self.rule
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolFee:
    """The fee of one server-side tool request (a web search, a file search...)."""

    tool: str
    """Tool name: ``web_search``, ``web_fetch``, ``file_search``, ``code_execution``, or a
    provider counter such as ``live_search_sources``."""
    usd_per_request: Decimal
    source: str
    """``genai-prices 0.2.3`` or the rate table / overrides file entry it came from."""
    effective_from: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "usd_per_request": str(self.usd_per_request),
                "source": self.source,
                "effective_from": self.effective_from.isoformat() if self.effective_from
                else None}


@dataclass(frozen=True, slots=True, kw_only=True)
class FeeLine:
    """One tool-fee line of a :class:`Cost`: a count times a per-request rate, or unpriced."""

    tool: str
    requests: int
    usd_per_request: Decimal | None
    """``None``: no rate known anywhere -- an *unpriced fee*, not added to the total."""
    usd: Decimal | None
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "requests": self.requests,
                "usd_per_request": None if self.usd_per_request is None
                else str(self.usd_per_request),
                "usd": None if self.usd is None else str(self.usd),
                "source": self.source,
                "status": "priced" if self.usd is not None else "unpriced fee"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ModalityLine:
    """Tokens of one modality subset billed at their own rate (moved out of their bucket)."""

    field: str
    """The :class:`Usage` detail field (``input_audio_tokens``...)."""
    bucket: str
    tokens: int
    rate_mtok: Decimal
    usd: Decimal
    modality_rate: bool
    """False when the catalog has no rate for this modality: billed at the bucket rate."""

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "bucket": self.bucket, "tokens": self.tokens,
                "rate_mtok": str(self.rate_mtok), "usd": str(self.usd),
                "rate": "modality" if self.modality_rate else "bucket (no modality rate)"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    """The cost of a usage under a price, per bucket, exact."""

    price: Price
    rates: Rates
    """The rates actually applied (after tier selection)."""
    usage: Usage
    requests: int
    buckets: Mapping[str, Decimal]
    """USD per bucket (``input_tokens``... ``output_tokens``), plus ``requests``. A bucket's
    USD includes its modality subsets (see ``modality``)."""
    total_usd: Decimal
    """Every priced element: buckets, per-request fees and priced tool fees. Unpriced
    fees are not in it: see ``unpriced``."""
    modality: tuple[ModalityLine, ...] = ()
    tool_fees: tuple[FeeLine, ...] = ()

    @property
    def unpriced(self) -> tuple[str, ...]:
        """Elements billed by the provider that no rate prices (``web_fetch x 2``...)."""
        return tuple(f"{f.tool} x {f.requests}" for f in self.tool_fees if f.usd is None)

    def as_dict(self) -> dict[str, Any]:
        d = self._as_dict()
        if self.modality:
            d["modality"] = [m.as_dict() for m in self.modality]
        if self.tool_fees:
            d["tool_fees"] = [f.as_dict() for f in self.tool_fees]
            d["unpriced"] = list(self.unpriced)
        if self.price.rule:
            d["rule"] = self.price.rule
        return d

    def _as_dict(self) -> dict[str, Any]:
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

    Returns (rates applied, USD per bucket in :data:`BUCKETS` order, per-request and tool
    fees, total). Tokens × rate / 1e6 per bucket; the tier is chosen by the whole prompt.
    A usage with modality or tool detail goes through :func:`_formula_detail`.
    """
    if not usage._plain:
        rates, b, fees, total, _, _ = _formula_detail(usage, price, requests)
        return rates, b, fees, total
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


_BUCKET_RATE = {"input_tokens": "input_mtok", "cache_read_tokens": "cache_read_mtok",
                "output_tokens": "output_mtok"}
_MODALITY_BUCKET = {f: b for f, b, _ in MODALITY_FIELDS}


def _formula_detail(
    usage: Usage, price: Price, requests: int
) -> tuple[Rates, tuple[Decimal, Decimal, Decimal, Decimal, Decimal], Decimal, Decimal,
           tuple[ModalityLine, ...], tuple[FeeLine, ...]]:
    """The formula with modality subsets and server-side tool fees.

    A modality subset with its own rate is taken out of its bucket and billed at that
    rate; without one it stays in the bucket (billed as text). Each tool request count
    is billed at the price's per-request fee; a count without a fee is an *unpriced*
    line (``usd=None``) and is not added to the total."""
    rates = price.rates_for(usage.prompt_tokens)
    mod_rates = dict(rates.modality_mtok)
    counts = {"input_tokens": usage.input_tokens, "cache_read_tokens": usage.cache_read_tokens,
              "output_tokens": usage.output_tokens}
    mods: list[ModalityLine] = []
    extra = dict.fromkeys(counts, _ZERO)
    for fname, bucket, _mod in MODALITY_FIELDS:
        n = getattr(usage, fname)
        if not n:
            continue
        rate = mod_rates.get(fname)
        own = rate is not None
        if rate is None:
            rate = getattr(rates, _BUCKET_RATE[bucket])
        else:
            counts[bucket] -= n
            extra[bucket] += n * rate / MILLION
        mods.append(ModalityLine(field=fname, bucket=bucket, tokens=n, rate_mtok=rate,
                                 usd=n * rate / MILLION, modality_rate=own))
    b = (
        counts["input_tokens"] * rates.input_mtok / MILLION + extra["input_tokens"],
        counts["cache_read_tokens"] * rates.cache_read_mtok / MILLION
        + extra["cache_read_tokens"],
        usage.cache_write_5m_tokens * rates.cache_write_5m_mtok / MILLION,
        usage.cache_write_1h_tokens * rates.cache_write_1h_mtok / MILLION,
        counts["output_tokens"] * rates.output_mtok / MILLION + extra["output_tokens"],
    )
    total = b[0] + b[1] + b[2] + b[3] + b[4]
    fees = _ZERO
    if price.per_request_usd and requests:
        fees = price.per_request_usd * requests
    lines = tuple(fee_line(price, tool, n) for tool, n in usage.tool_requests().items())
    for line in lines:
        if line.usd is not None:
            fees += line.usd
    total += fees
    return rates, b, fees, total, tuple(mods), lines


def fee_line(price: Price, tool: str, n: int) -> FeeLine:
    """``n`` requests of ``tool`` under ``price``: priced, or an unpriced-fee line."""
    fee = price.tool_fee(tool)
    if fee is None:
        return FeeLine(tool=tool, requests=n, usd_per_request=None, usd=None,
                       source=f"no rate for {tool} of {price.provider}/{price.model}")
    return FeeLine(tool=tool, requests=n, usd_per_request=fee.usd_per_request,
                   usd=n * fee.usd_per_request, source=fee.source)


def cost_of(usage: Usage, price: Price, *, requests: int = 1) -> Cost:
    """The cost of ``usage`` under ``price``, per bucket and in total (exact ``Decimal``).

    ``requests`` counts per-request fees (1 for a single call). The arithmetic is
    :func:`_formula` / :func:`_formula_detail`, the only cost formula in Python.
    """
    mods: tuple[ModalityLine, ...] = ()
    lines: tuple[FeeLine, ...] = ()
    if usage._plain:
        rates, b, _fees, total = _formula(usage, price, requests)
    else:
        rates, b, _fees, total, mods, lines = _formula_detail(usage, price, requests)
    buckets = dict(zip(BUCKETS, b, strict=True))
    req_fee = price.per_request_usd * requests if price.per_request_usd and requests else _ZERO
    if req_fee:
        buckets["requests"] = req_fee
    return Cost(price=price, rates=rates, usage=usage, requests=requests, buckets=buckets,
                total_usd=total, modality=mods, tool_fees=lines)


def cost_sql(tokens: Mapping[str, str], rates: Mapping[str, str],
             modality: Mapping[str, tuple[str, str]] | None = None,
             tools: Mapping[str, tuple[str, str]] | None = None) -> str:
    """The same formula as :func:`cost_of`, as a SQL expression.

    ``tokens`` maps bucket names to SQL column expressions, ``rates`` maps
    :data:`RATE_FIELDS` to column expressions already chosen for the request's tier.
    Uses DECIMAL arithmetic so sums stay exact: the per-million scale is a multiplication
    by the DECIMAL literal 0.000001, because DuckDB (and Spark) turn a DECIMAL division
    into DOUBLE or round it.

    The detail of :func:`_formula_detail`, for the fields given: ``modality`` maps a
    modality field (``input_audio_tokens``...) to (its token count, its modality rate
    or NULL) -- a subset with a rate is billed at it instead of its bucket's rate, one
    without stays at the bucket's rate; ``tools`` maps a tool (``web_search``...) to
    (its request count, its fee per request or NULL) -- :func:`tool_fees_sql`. NULL
    counts are 0 (not reported).
    """
    parts = [
        f"CAST({tokens[_BUCKET_OF_RATE[r]]} AS DECIMAL(38,0)) * {rates[r]}" for r in RATE_FIELDS
    ]
    for fname, (n, rate) in (modality or {}).items():
        b = rates[_BUCKET_RATE[_MODALITY_BUCKET[fname]]]
        parts.append(f"CAST(COALESCE({n}, 0) AS DECIMAL(38,0)) * (COALESCE({rate}, {b}) - {b})")
    expr = "((" + " + ".join(parts) + ") * 0.000001"
    if tools:
        expr += " + " + tool_fees_sql(tools)
    return expr + ")"


def tool_fees_sql(tools: Mapping[str, tuple[str, str]]) -> str:
    """The priced server-side tool fees of :func:`cost_of` as a SQL expression: for each
    tool, (request count, fee per request) column expressions; a count without a fee
    (NULL) adds nothing -- it is an *unpriced fee*, reported apart, never $0."""
    if not tools:
        return "CAST(0 AS DECIMAL(18,9))"
    return "(" + " + ".join(f"CAST(COALESCE({n}, 0) AS DECIMAL(38,0)) * COALESCE({fee}, 0)"
                            for n, fee in tools.values()) + ")"


# --------------------------------------------------------------------------- catalog


_dec = dec_price


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

    _rules: Rules = field(default_factory=Rules, init=False, repr=False)
    """Tool fees and batch rules: the overrides files' first, then the bundled table."""

    def __post_init__(self) -> None:
        rules = Rules()
        for path in self.overrides:
            entries, r = _load_overrides(Path(path))
            self._entries.extend(entries)
            rules = rules + r
        self._rules = rules + bundled_rules()
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
        price = self._with_rule_fees(price, day)
        if memoize:
            self._memo[key] = price
        return price

    def _with_rule_fees(self, price: Price, day: date) -> Price:
        """Add the rate table's tool fees the price does not have (the catalog's win)."""
        have = {f.tool for f in price.tool_fees}
        extra = []
        for tool in sorted(self._rules.tools(price.provider) - have):
            r = self._rules.fee(price.provider, price.model, tool, day)
            if r is not None:
                extra.append(ToolFee(tool=tool, usd_per_request=r.usd_per_request,
                                     source=r.source, effective_from=r.effective_from))
        if not extra:
            return price
        return replace(price, tool_fees=(*price.tool_fees, *extra))

    def provider_for(self, model: str) -> str:
        """The provider of ``model`` when a format does not say: the user's overrides, then
        the catalog's own match, then the one provider listing the model. Ambiguous or
        unknown names are an error naming the candidates (use ``--provider``)."""
        name = model.lower()
        for e in self._entries:
            if name in e.names and e.provider:
                return e.provider
        if not self.use_catalog:
            raise UnpricedModel(model, None, self.near_matches(model))
        from genai_prices import data_snapshot

        snap = data_snapshot.get_snapshot()
        try:
            prov, _ = snap.find_provider_model(model, None, None, None)
            return str(prov.id)
        except LookupError:
            pass
        found = sorted({p.id for p in snap.providers for m in p.models if m.is_match(model)})
        if len(found) == 1:
            return str(found[0])
        if not found:
            raise UnpricedModel(model, None, self.near_matches(model))
        raise PricingError(
            f"model {model!r} is sold by several providers ({', '.join(found)}); "
            "name one with --provider")

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
            rule: BatchRule | None = None
            if ctx and not _variant_active(info, ts, ctx):
                # the catalog has no price for this tier on this date
                if ctx.get("processing") == "batch":
                    rule = self._rules.batch_rule(prov.id, ts.date())
                if rule is None:
                    raise PricingError(
                        f"no {service_tier!r} price for {prov.id}/{info.id} on "
                        f"{ts.date().isoformat()}: the catalog has none for that date "
                        f"(tiers it knows: {', '.join(_known_tiers(info)) or 'standard only'}) "
                        "and no dated rule covers it; add one to a --prices file")
                ctx = None
            mp = info.get_prices(ts, ctx)
            built = _price_from_genai(prov.id, info, mp, service_tier,
                                      _effective_from(info, ts, ctx))
            if built is None:
                raise UnpricedModel(model, provider, self.near_matches(model, provider))
            if rule is not None:
                built = _apply_batch_rule(built, rule)
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


def _variant_active(info: Any, ts: datetime, ctx: Mapping[str, str]) -> bool:
    """Whether the catalog has a price variant for ``ctx`` in force at ``ts``."""
    for v in info.price_variants or ():
        if v.constraint is not None and not v.constraint.active(ts):
            continue
        if all(ctx.get(k) == val for k, val in v.when.items()):
            return True
    return False


def _known_tiers(info: Any) -> list[str]:
    out = set()
    for v in info.price_variants or ():
        for k, val in v.when.items():
            out.add("batch" if k == "processing" and val == "batch" else val)
    return sorted(out)


def _apply_batch_rule(price: Price, rule: BatchRule) -> Price:
    """``price`` with ``rule.rates`` scaled (every tier), named as the rule's result."""

    def scaled(r: Rates) -> Rates:
        return replace(r, **{k: getattr(r, k) * rule.scale for k in rule.rates})

    return replace(
        price, base=scaled(price.base),
        tiers=tuple(Tier(t.above_prompt_tokens, scaled(t.rates)) for t in price.tiers),
        effective_from=max(filter(None, (price.effective_from, rule.effective_from)),
                           default=None),
        source=f"{price.source} standard rates x {rule.scale} ({rule.name}: {rule.source})",
        rule=rule.name)


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

    mod_raw: dict[str, Any] = {}
    for ours, theirs in _GENAI_MODALITY.items():
        v = getattr(mp, theirs, None)
        if v is not None:
            mod_raw[ours] = v
            if isinstance(v, TieredPrices):
                thresholds.update(t.start for t in v.tiers)

    def with_mod(r: Rates, threshold: int | None) -> Rates:
        if not mod_raw:
            return r
        lv = {}
        for k, v in mod_raw.items():
            rate = v
            if isinstance(v, TieredPrices):
                rate = v.base
                if threshold is not None:
                    for t in v.tiers:
                        if threshold >= t.start:
                            rate = t.price
            lv[k] = rate
        return replace(r, modality_mtok=tuple(sorted(lv.items())))

    base = with_mod(_rates_from_mapping(at_level(None), f"{provider}/{info.id}"), None)
    tiers = tuple(
        Tier(th, with_mod(_rates_from_mapping(at_level(th), f"{provider}/{info.id}"), th))
        for th in sorted(thresholds)
    )
    req = getattr(mp, "requests_kcount", None)
    per_req = (Decimal(req) / 1000) if isinstance(req, Decimal) else Decimal(0)
    fees = []
    for tool, key in _GENAI_TOOLS.items():
        v = getattr(mp, key, None)
        if isinstance(v, TieredPrices):
            v = v.base
        if isinstance(v, Decimal):
            fees.append(ToolFee(tool=tool, usd_per_request=v / 1000, source=_genai_version(),
                                effective_from=start))
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
        tool_fees=tuple(fees),
    )


#: Our modality detail fields -> genai-prices price keys.
_GENAI_MODALITY = {
    "input_audio_tokens": "input_audio_mtok",
    "cache_read_audio_tokens": "cache_audio_read_mtok",
    "output_audio_tokens": "output_audio_mtok",
    "input_image_tokens": "input_image_mtok",
    "cache_read_image_tokens": "cache_image_read_mtok",
    "output_image_tokens": "output_image_mtok",
    "input_video_tokens": "input_video_mtok",
    "cache_read_video_tokens": "cache_video_read_mtok",
    "output_video_tokens": "output_video_mtok",
}

#: Tool names -> genai-prices per-thousand price keys.
_GENAI_TOOLS = {
    "web_search": "web_searches_kcount",
    "file_search": "storage_searches_kcount",
    "code_execution": "code_executions_kcount",
}


# --------------------------------------------------------------------------- overrides file


def _load_overrides(path: Path) -> tuple[list[_OverrideEntry], Rules]:
    from ._yamlio import read_yaml

    doc = read_yaml(path, PriceFileError, "prices file")
    if not isinstance(doc, Mapping) or not (
            isinstance(doc.get("prices"), list) or "tool_fees" in doc or "batch_rules" in doc):
        raise PriceFileError(f"{path}: expected a mapping with a 'prices' list "
                             "(and/or 'tool_fees', 'batch_rules' lists)")
    unknown_top = set(doc) - {"prices", "tool_fees", "batch_rules"}
    if unknown_top:
        raise PriceFileError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown_top))}; "
                             "allowed: prices, tool_fees, batch_rules")
    rules = parse_rules(doc, f"overrides:{path.name}")
    allowed = {"model", "provider", "aliases", "effective_from", "source", "tiers",
               "per_request_usd", "service_tier", "context_window", "cache_write_mtok",
               *RATE_FIELDS, *_GENAI_MODALITY.values()}
    entries: list[_OverrideEntry] = []
    for i, item in enumerate(doc.get("prices") or []):
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
        mod = tuple(sorted((ours, _dec(item[theirs], f"{where}.{theirs}"))
                           for ours, theirs in _GENAI_MODALITY.items()
                           if item.get(theirs) is not None))
        if mod:
            base = replace(base, modality_mtok=mod)
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
    return entries, rules


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
