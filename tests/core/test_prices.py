"""PriceBook and the cost formula, checked against genai-prices' own calc_price."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as GUsage
from genai_prices import calc_price
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxbudget.errors import PriceFileError, PricingError, UnpricedModel
from ctxbudget.prices import MILLION, PriceBook, cost_of
from ctxbudget.usage import Usage

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "prices-2026.yaml"

#: Catalog models from several providers: plain, tiered (>200k / >272k / >100k prompts),
#: date-changed, 1h cache writes, cache writes billed by OpenAI, time-of-day (DeepSeek),
#: per-request fees (Perplexity), service-tier and batch variants.
MODELS: tuple[tuple[str, str], ...] = (
    ("anthropic", "claude-sonnet-4-5"),   # tiered at 200k, 5m + 1h writes
    ("anthropic", "claude-sonnet-4-6"),   # tiered until 2026-03-13, then flat
    ("anthropic", "claude-opus-4-6"),     # same, and batch variant since 2026-10-14
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-haiku-5-5"),    # tiered at 100k
    ("anthropic", "claude-opus-4-5"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),                # priority / flex / batch variants
    ("openai", "gpt-5"),
    ("openai", "gpt-5.4"),                # tiered at 272k
    ("openai", "gpt-5.6-terra"),          # tiered, cache writes, dated
    ("openai", "o3"),                     # price cut 2025-06-10
    ("openai", "gpt-3.5-turbo"),          # no cache rates at all
    ("openai", "text-embedding-3-small"),  # input only
    ("google", "gemini-2.5-flash"),
    ("google", "gemini-2.5-pro"),         # tiered at 200k
    ("google", "gemini-3-pro-preview"),   # tiered and dated
    ("google", "gemini-1.5-pro"),
    ("deepseek", "deepseek-chat"),        # off-peak (time of day) prices
    ("deepseek", "deepseek-v4-pro"),      # dated and time of day
    ("mistral", "mistral-large-2512"),
    ("mistral", "mistral-small-latest"),  # dated
    ("x-ai", "grok-4"),
    ("perplexity", "sonar-pro"),          # per-request fee
    ("aws", "global.anthropic.claude-haiku-5-5"),
)

TIERS = (None, "batch", "priority", "flex")


def genai_total(u: Usage, model: str, provider: str, at: datetime,
                service_tier: str | None = None) -> Decimal:
    """genai-prices' total for our disjoint usage (its input_tokens is inclusive)."""
    g = GUsage(
        input_tokens=u.input_tokens + u.cache_read_tokens + u.cache_write_5m_tokens
        + u.cache_write_1h_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_5m_tokens + u.cache_write_1h_tokens,
        cache_write_1h_tokens=u.cache_write_1h_tokens,
        output_tokens=u.output_tokens,
    )
    ctx: Any = None
    if service_tier == "batch":
        ctx = {"processing": "batch"}
    elif service_tier:
        ctx = {"service_tier": service_tier}
    return calc_price(g, model, provider_id=provider, genai_request_timestamp=at,
                      price_context=ctx).total_price


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


# --------------------------------------------------------------------------- acceptance


def test_acceptance_figure(book: PriceBook) -> None:
    u = Usage(input_tokens=20_000, cache_read_tokens=60_000, cache_write_5m_tokens=20_000,
              output_tokens=5_000)
    c = book.cost(u, "claude-sonnet-4-5", "anthropic", date(2026, 6, 1))
    assert c.total_usd == Decimal("0.228")
    assert c.buckets == {"input_tokens": Decimal("0.06"), "cache_read_tokens": Decimal("0.018"),
                         "cache_write_5m_tokens": Decimal("0.075"),
                         "cache_write_1h_tokens": Decimal(0), "output_tokens": Decimal("0.075")}
    assert book.total_usd(u, "claude-sonnet-4-5", "anthropic", date(2026, 6, 1)) == c.total_usd
    assert genai_total(u, "claude-sonnet-4-5", "anthropic",
                       datetime(2026, 6, 1, tzinfo=UTC)) == Decimal("0.228")


def test_overrides_example_file() -> None:
    ob = PriceBook(overrides=[EXAMPLE])
    c = ob.cost(Usage(input_tokens=100_000), "claude-sonnet-4-6", "anthropic", date(2026, 6, 1))
    assert c.total_usd == Decimal("0.30")
    assert str(c.total_usd) == "0.30"
    assert c.price.source.startswith("overrides:prices-2026.yaml")
    assert c.price.effective_from == date(2026, 1, 1)
    # an alias in the file
    luna = ob.resolve("gpt-5.6-luna-mini", "openai", date(2026, 6, 1))
    assert luna.model == "gpt-5.6-luna"
    assert luna.base.input_mtok == Decimal("0.4")
    # before the file's effective date the bundled catalog applies
    old = ob.resolve("claude-sonnet-4-6", "anthropic", date(2025, 12, 31))
    assert old.source.startswith("genai-prices")


# --------------------------------------------------------------------------- the property


COUNT = st.one_of(st.integers(0, 5_000), st.integers(0, 400_000))


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    out = draw(COUNT)
    return Usage(input_tokens=draw(COUNT), cache_read_tokens=draw(COUNT),
                 cache_write_5m_tokens=draw(COUNT), cache_write_1h_tokens=draw(COUNT),
                 output_tokens=out, reasoning_tokens=draw(st.integers(0, out)))


INSTANTS = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 3, 1),
                        timezones=st.just(UTC))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MODELS), usages(), INSTANTS, st.sampled_from(TIERS))
def test_total_equals_genai_prices(book: PriceBook, pm: tuple[str, str], u: Usage,
                                   at: datetime, tier: str | None) -> None:
    provider, model = pm
    if tier and not catalog_has_tier(model, provider, at, tier):
        # genai-prices silently falls back to the standard price here; we apply a dated
        # batch rule (named in the price) or refuse (tests in test_price_rules.py)
        try:
            price = book.resolve(model, provider, at, tier)
        except PricingError:
            return
        assert tier == "batch" and price.rule is not None
        return
    ours = book.total_usd(u, model, provider, at, tier)
    assert ours == genai_total(u, model, provider, at, tier)
    assert book.cost(u, model, provider, at, tier).total_usd == ours


def catalog_has_tier(model: str, provider: str, at: datetime, tier: str) -> bool:
    """Whether genai-prices has a variant of ``model`` for ``tier`` in force at ``at``."""
    from genai_prices import data_snapshot

    prov, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    if not any(info is m for m in prov.models):
        return True  # variants do not apply: genai-prices and we both use standard rates
    ctx = {"processing": "batch"} if tier == "batch" else {"service_tier": tier}
    return any((v.constraint is None or v.constraint.active(at))
               and all(ctx.get(k) == val for k, val in v.when.items())
               for v in info.price_variants or ())


def test_property_models_cover_the_hard_cases(book: PriceBook) -> None:
    """The model list really has tiers, dates, per-request fees, 20+ models, 5+ providers."""
    at = date(2026, 11, 1)
    prices = [book.resolve(m, p, at) for p, m in MODELS]
    assert len(MODELS) >= 20
    assert len({p for p, _ in MODELS}) >= 5
    assert sum(1 for p in prices if p.tiers) >= 6
    assert any(p.per_request_usd for p in prices)
    assert sum(1 for p in prices if p.effective_from) >= 3


# --------------------------------------------------------------------------- dates


def test_price_changes_by_date() -> None:
    """claude-sonnet-4-6 is tiered (>200k prompt) before 2026-03-13 and flat from that day."""
    book = PriceBook()
    u = Usage(input_tokens=300_000, output_tokens=10_000)
    before = datetime(2026, 3, 12, 23, 59, tzinfo=UTC)
    after = datetime(2026, 3, 13, 0, 0, tzinfo=UTC)
    p_before = book.resolve("claude-sonnet-4-6", "anthropic", before)
    p_after = book.resolve("claude-sonnet-4-6", "anthropic", after)
    assert p_before.effective_from is None
    assert p_after.effective_from == date(2026, 3, 13)
    assert p_before.tiers and not p_after.tiers
    t_before = book.total_usd(u, "claude-sonnet-4-6", "anthropic", before)
    t_after = book.total_usd(u, "claude-sonnet-4-6", "anthropic", after)
    assert t_before == (300_000 * Decimal(6) + 10_000 * Decimal("22.5")) / MILLION
    assert t_after == (300_000 * Decimal(3) + 10_000 * Decimal(15)) / MILLION
    assert t_before == genai_total(u, "claude-sonnet-4-6", "anthropic", before)
    assert t_after == genai_total(u, "claude-sonnet-4-6", "anthropic", after)


def test_naive_and_offset_timestamps_are_utc() -> None:
    book = PriceBook()
    u = Usage(input_tokens=300_000)
    # 2026-03-13 01:00 at UTC+2 is still 2026-03-12 in UTC: the old (tiered) price
    plus2 = datetime(2026, 3, 13, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert book.total_usd(u, "claude-sonnet-4-6", "anthropic", plus2) == Decimal("1.8")
    assert book.total_usd(u, "claude-sonnet-4-6", "anthropic",
                          datetime(2026, 3, 13, 0, 0)) == Decimal("0.9")


def test_time_of_day_prices_are_not_memoized_per_day() -> None:
    book = PriceBook()
    u = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    totals = {book.total_usd(u, "deepseek-chat", "deepseek",
                             datetime(2026, 6, 1, h, 0, tzinfo=UTC)) for h in range(24)}
    assert len(totals) >= 2, "DeepSeek's off-peak price should show within one day"
    for h in (0, 12, 17, 23):
        at = datetime(2026, 6, 1, h, 0, tzinfo=UTC)
        assert book.total_usd(u, "deepseek-chat", "deepseek", at) == \
            genai_total(u, "deepseek-chat", "deepseek", at)


# --------------------------------------------------------------------------- service tiers


@pytest.mark.parametrize(
    ("provider", "model", "tier", "input_rate"),
    [
        ("anthropic", "claude-opus-4-6", "batch", Decimal("2.5")),
        ("openai", "gpt-4.1", "batch", Decimal("1")),
        ("openai", "gpt-4.1", "priority", Decimal("3.5")),
        ("openai", "gpt-4.1", None, Decimal("2")),
        ("openai", "gpt-4.1", "standard", Decimal("2")),
        ("openai", "gpt-5", "flex", None),
    ],
)
def test_service_tiers_match_genai_price_context(provider: str, model: str, tier: str | None,
                                                 input_rate: Decimal | None) -> None:
    book = PriceBook()
    at = datetime(2026, 11, 1, tzinfo=UTC)
    u = Usage(input_tokens=123_456, cache_read_tokens=50_000, output_tokens=7_890)
    price = book.resolve(model, provider, at, tier)
    if input_rate is not None:
        assert price.base.input_mtok == input_rate
    assert price.service_tier == tier
    assert book.total_usd(u, model, provider, at, tier) == \
        genai_total(u, model, provider, at, None if tier == "standard" else tier)


def test_batch_is_cheaper_and_dated() -> None:
    book = PriceBook()
    u = Usage(input_tokens=10_000, cache_write_1h_tokens=10_000, output_tokens=1_000)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    std = book.cost(u, "claude-opus-4-6", "anthropic", at)
    batch = book.cost(u, "claude-opus-4-6", "anthropic", at, "batch")
    assert batch.total_usd * 2 == std.total_usd
    assert batch.price.effective_from == date(2026, 10, 14)
    # before the catalog's batch variant starts, Anthropic's documented batch discount
    # (50% of every rate, cache multipliers stacking) applies, and the price names the rule
    early = datetime(2026, 10, 1, tzinfo=UTC)
    eb = book.cost(u, "claude-opus-4-6", "anthropic", early, "batch")
    assert eb.total_usd * 2 == book.total_usd(u, "claude-opus-4-6", "anthropic", early)
    assert eb.price.rule == "anthropic-batch-50"
    assert "anthropic-batch-50" in eb.price.source
    assert eb.as_dict()["rule"] == "anthropic-batch-50"


# --------------------------------------------------------------------------- buckets, tiers


def test_1h_and_5m_writes(book: PriceBook) -> None:
    at = date(2026, 6, 1)
    w5 = book.total_usd(Usage(cache_write_5m_tokens=100_000), "claude-sonnet-4-5", "anthropic", at)
    w1 = book.total_usd(Usage(cache_write_1h_tokens=100_000), "claude-sonnet-4-5", "anthropic", at)
    assert (w5, w1) == (Decimal("0.375"), Decimal("0.6"))
    for u in (Usage(cache_write_5m_tokens=100_000), Usage(cache_write_1h_tokens=100_000)):
        assert book.total_usd(u, "claude-sonnet-4-5", "anthropic", at) == \
            genai_total(u, "claude-sonnet-4-5", "anthropic", datetime(2026, 6, 1, tzinfo=UTC))
    # OpenAI has no 1h write rate: both TTLs bill at its cache-write (here: input) rate
    o5 = book.total_usd(Usage(cache_write_5m_tokens=1000), "gpt-4o", "openai", at)
    o1 = book.total_usd(Usage(cache_write_1h_tokens=1000), "gpt-4o", "openai", at)
    assert o5 == o1


def test_tier_threshold_boundary(book: PriceBook) -> None:
    """At exactly 200,000 prompt tokens the base rate applies; one more and the tier rate
    applies to every token of the request, output included."""
    at = datetime(2026, 6, 1, tzinfo=UTC)
    m, p = "claude-sonnet-4-5", "anthropic"
    at_threshold = Usage(input_tokens=100_000, cache_read_tokens=100_000, output_tokens=1_000)
    over = Usage(input_tokens=100_001, cache_read_tokens=100_000, output_tokens=1_000)
    assert at_threshold.prompt_tokens == 200_000
    c0 = book.cost(at_threshold, m, p, at)
    c1 = book.cost(over, m, p, at)
    assert c0.total_usd == (100_000 * Decimal(3) + 100_000 * Decimal("0.3")
                            + 1_000 * Decimal(15)) / MILLION
    assert c1.total_usd == (100_001 * Decimal(6) + 100_000 * Decimal("0.6")
                            + 1_000 * Decimal("22.5")) / MILLION
    assert c0.as_dict()["tier_applied"] is False
    assert c1.as_dict()["tier_applied"] is True
    assert c0.total_usd == genai_total(at_threshold, m, p, at)
    assert c1.total_usd == genai_total(over, m, p, at)
    # cache writes count toward the threshold too
    w = Usage(input_tokens=199_000, cache_write_1h_tokens=1_001)
    assert book.cost(w, m, p, at).rates.input_mtok == Decimal(6)


def test_per_request_fee(book: PriceBook) -> None:
    at = datetime(2026, 6, 1, tzinfo=UTC)
    u = Usage(input_tokens=1000, output_tokens=100)
    c = book.cost(u, "sonar-pro", "perplexity", at)
    assert c.buckets["requests"] == Decimal("0.014")
    assert c.total_usd == Decimal("0.003") + Decimal("0.0015") + Decimal("0.014")
    assert c.total_usd == genai_total(u, "sonar-pro", "perplexity", at)
    assert cost_of(u, c.price, requests=3).total_usd == c.total_usd + 2 * Decimal("0.014")


# --------------------------------------------------------------------------- unknown models


def test_unpriced_model_with_near_matches(book: PriceBook) -> None:
    with pytest.raises(UnpricedModel) as ei:
        book.resolve("claude-sonet-4-5", "anthropic", date(2026, 6, 1))
    e = ei.value
    assert e.model == "claude-sonet-4-5"
    assert "claude-sonnet-4-5" in e.near
    msg = str(e)
    assert "claude-sonet-4-5" in msg and "near matches" in msg and "--prices" in msg
    with pytest.raises(UnpricedModel) as ei2:
        PriceBook(use_catalog=False).resolve("gpt-4o")
    assert ei2.value.near == ()
    with pytest.raises(UnpricedModel):
        book.total_usd(Usage(input_tokens=1), "no-such-model-xyz", None, date(2026, 6, 1))


def test_override_only_book_near_matches() -> None:
    ob = PriceBook(overrides=[EXAMPLE], use_catalog=False)
    with pytest.raises(UnpricedModel) as ei:
        ob.resolve("gemini-3.5-flsh", at=date(2026, 6, 1))
    assert "gemini-3.5-flash" in ei.value.near


# --------------------------------------------------------------------------- overrides file


def _write(tmp_path: Path, text: str, name: str = "prices.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("prices:\n  - model: x\n    input_mtok: [1\n", ["prices.yaml:", "not valid YAML"]),
        ("prices:\n  - model: x\n    input_mtok: 1\n    output_mtok: 2\n    colour: red\n",
         ["prices[0]", "colour"]),
        ("prices:\n  - model: x\n    input_mtok: -1\n    output_mtok: 2\n",
         ["prices[0] (x).input_mtok", "non-negative"]),
        ("prices:\n  - model: x\n    input_mtok: lots\n    output_mtok: 2\n",
         ["input_mtok", "not a number"]),
        ("prices:\n  - input_mtok: 1\n    output_mtok: 2\n", ["prices[0].model", "required"]),
        ("prices:\n  - model: x\n    output_mtok: 2\n", ["prices[0] (x)", "input_mtok"]),
        ("prices:\n  - model: x\n    input_mtok: 1\n    output_mtok: 2\n"
         "    effective_from: soon\n", ["effective_from", "YYYY-MM-DD"]),
        ("prices:\n  - model: x\n    input_mtok: 1\n    output_mtok: 2\n"
         "    tiers:\n      - input_mtok: 2\n", ["tiers[0]", "above_prompt_tokens"]),
        ("prices:\n  - model: x\n    input_mtok: 1\n    output_mtok: 2\n"
         "    aliases: y\n", ["aliases", "list"]),
        ("- model: x\n", ["'prices' list"]),
    ],
)
def test_override_file_errors_name_file_and_field(tmp_path: Path, text: str,
                                                  needles: list[str]) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(PriceFileError) as ei:
        PriceBook(overrides=[p])
    msg = str(ei.value)
    assert str(p) in msg
    for n in needles:
        assert n in msg


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "prices:\n  - model: x\n    input_mtok: 1\n  output_mtok: : 2\n")
    with pytest.raises(PriceFileError) as ei:
        PriceBook(overrides=[p])
    assert str(ei.value).startswith(f"{p}:4: not valid YAML")


def test_missing_overrides_file(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError) as ei:
        PriceBook(overrides=[tmp_path / "nope.yaml"])
    assert "nope.yaml" in str(ei.value) and "not found" in str(ei.value)


def test_effective_from_ordering(tmp_path: Path) -> None:
    # written newest first on purpose: the book orders by date, not by file position
    p = _write(tmp_path, """
prices:
  - model: house-model
    effective_from: 2026-06-01
    input_mtok: 4
    output_mtok: 8
  - model: house-model
    effective_from: 2026-01-01
    input_mtok: 3
    output_mtok: 6
  - model: house-model
    service_tier: batch
    effective_from: 2026-01-01
    input_mtok: 1
    output_mtok: 2
""")
    ob = PriceBook(overrides=[p], use_catalog=False)
    u = Usage(input_tokens=1_000_000)
    assert ob.total_usd(u, "house-model", at=date(2026, 3, 1)) == Decimal(3)
    assert ob.total_usd(u, "house-model", at=date(2026, 5, 31)) == Decimal(3)
    assert ob.total_usd(u, "house-model", at=date(2026, 6, 1)) == Decimal(4)
    assert ob.total_usd(u, "house-model", at=datetime(2027, 1, 1, tzinfo=UTC)) == Decimal(4)
    assert ob.total_usd(u, "house-model", at=date(2026, 6, 1), service_tier="batch") == 1
    with pytest.raises(UnpricedModel):
        ob.resolve("house-model", at=date(2025, 12, 31))
    assert ob.resolve("house-model").effective_from == date(2026, 6, 1)


def test_future_override_does_not_apply_today(tmp_path: Path) -> None:
    p = _write(tmp_path, "prices:\n  - model: gpt-4o\n    provider: openai\n"
                         "    effective_from: 2999-01-01\n    input_mtok: 99\n"
                         "    output_mtok: 99\n")
    ob = PriceBook(overrides=[p])
    assert ob.resolve("gpt-4o", "openai").source.startswith("genai-prices")
    assert ob.resolve("gpt-4o", "openai", date(2999, 1, 2)).base.input_mtok == 99


def test_override_provider_and_tiers(tmp_path: Path) -> None:
    p = _write(tmp_path, """
prices:
  - model: gpt-4o
    provider: openai
    input_mtok: 10
    output_mtok: 20
    cache_write_mtok: 12
    tiers:
      - above_prompt_tokens: 1000
        input_mtok: 30
""")
    ob = PriceBook(overrides=[p])
    at = date(2026, 6, 1)
    price = ob.resolve("gpt-4o", "openai", at)
    assert price.base.cache_read_mtok == 10          # no cache-read rate: the input rate
    assert price.base.cache_write_5m_mtok == 12
    assert price.base.cache_write_1h_mtok == 12
    tier = price.tiers[0].rates
    assert (tier.input_mtok, tier.output_mtok, tier.cache_write_5m_mtok) == (30, 20, 12)
    assert ob.total_usd(Usage(input_tokens=1000), "gpt-4o", "openai", at) == Decimal("0.01")
    assert ob.total_usd(Usage(input_tokens=1001), "gpt-4o", "openai", at) == Decimal("0.03003")
    # another provider's gpt-4o is not overridden
    assert ob.resolve("gpt-4o", "azure", at).source.startswith("genai-prices")


def test_rows_listing(book: PriceBook) -> None:
    rows = book.rows("sonnet-4-5", datetime(2026, 6, 1, tzinfo=UTC))
    assert any(r.provider == "anthropic" and r.model == "claude-sonnet-4-5" for r in rows)
    assert all("sonnet-4-5" in r.model.lower() or "sonnet-4-5" in r.provider for r in rows)
    d = rows[0].as_dict()
    assert {"input_mtok", "output_mtok", "tiers", "source", "effective_from"} <= set(d)
    ob = PriceBook(overrides=[EXAMPLE])
    assert ob.rows("claude-sonnet-4-6")[0].source.startswith("overrides:")
