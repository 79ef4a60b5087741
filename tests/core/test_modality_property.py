"""The modality and tool-fee formula equals genai-prices' calc_price on every model with
modality rates (hypothesis), and the modality detail never changes a total on a model
without them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from genai_prices import Usage as GUsage
from genai_prices import calc_price
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxbudget.prices import PriceBook, cost_of
from ctxbudget.usage import Usage

#: (provider, model, the modality fields it has rates for; cached subsets only where the
#: catalog has a cached-modality rate)
MODELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("openai", "gpt-realtime", ("input_audio_tokens", "cache_read_audio_tokens",
                                "output_audio_tokens", "input_image_tokens",
                                "cache_read_image_tokens")),
    ("openai", "gpt-4o-realtime-preview", ("input_audio_tokens", "cache_read_audio_tokens",
                                           "output_audio_tokens")),
    ("openai", "gpt-image-1.5", ("input_image_tokens", "cache_read_image_tokens",
                                 "output_image_tokens")),
    ("google", "gemini-2.5-flash", ("input_audio_tokens", "cache_read_audio_tokens")),
    ("google", "gemini-2.5-flash-image", ("output_image_tokens",)),
    ("google", "gemini-live-2.5-flash", ("input_audio_tokens", "output_audio_tokens",
                                         "input_image_tokens", "input_video_tokens")),
    ("openai", "gpt-4o", ()),           # web and file search fees, no modality rates
    ("google", "gemini-2.5-pro", ()),   # tiered, web search fee
)
AT = date(2026, 11, 1)
N = st.integers(0, 300_000)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, Usage]:
    provider, model, mods = draw(st.sampled_from(MODELS))
    inp, read, out = draw(N), draw(N), draw(N)
    detail: dict[str, int] = {}
    left = {"input": inp, "cache_read": read, "output": out}
    for f in mods:
        bucket = "cache_read" if f.startswith("cache_read") else f.split("_")[0]
        n = draw(st.integers(0, left[bucket]))
        left[bucket] -= n
        detail[f] = n
    tools = {"web_search_requests": draw(st.integers(0, 5))}
    if provider == "openai":
        tools["file_search_requests"] = draw(st.integers(0, 5))
    u = Usage(input_tokens=inp, cache_read_tokens=read, output_tokens=out,
              cache_write_5m_tokens=draw(st.integers(0, 50_000)) if provider == "openai" else 0,
              **detail, **tools)
    return provider, model, u


def genai_total(u: Usage, model: str, provider: str) -> Any:
    kw = {
        "input_tokens": u.prompt_tokens, "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens, "output_tokens": u.output_tokens,
        "input_audio_tokens": (u.input_audio_tokens or 0) + (u.cache_read_audio_tokens or 0),
        "cache_audio_read_tokens": u.cache_read_audio_tokens or 0,
        "output_audio_tokens": u.output_audio_tokens or 0,
        "input_image_tokens": (u.input_image_tokens or 0) + (u.cache_read_image_tokens or 0),
        "cache_image_read_tokens": u.cache_read_image_tokens or 0,
        "output_image_tokens": u.output_image_tokens or 0,
        "input_video_tokens": u.input_video_tokens or 0,
        "web_searches": u.web_search_requests or 0,
        "storage_searches": u.file_search_requests or 0,
    }
    g = GUsage(**{k: v for k, v in kw.items() if v or k.startswith("cache_")})
    return calc_price(g, model, provider_id=provider,
                      genai_request_timestamp=datetime(AT.year, AT.month, AT.day,
                                                       tzinfo=UTC)).total_price


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_modality_and_tool_fees_equal_genai_prices(case: tuple[str, str, Usage]) -> None:
    provider, model, u = case
    book = PriceBook()
    c = book.cost(u, model, provider, AT)
    assert c.total_usd == genai_total(u, model, provider)
    assert book.total_usd(u, model, provider, AT) == c.total_usd
    # the buckets plus the priced fees make the total
    assert sum(c.buckets.values()) + sum(f.usd or 0 for f in c.tool_fees) == c.total_usd


@settings(max_examples=100, deadline=None)
@given(N, N, st.data())
def test_modality_detail_without_rates_changes_nothing(inp: int, out: int,
                                                       data: st.DataObject) -> None:
    """claude-sonnet-4-5 has no modality rates: image tokens are billed as input."""
    img = data.draw(st.integers(0, inp))
    book = PriceBook()
    price = book.resolve("claude-sonnet-4-5", "anthropic", AT)
    plain = cost_of(Usage(input_tokens=inp, output_tokens=out), price)
    detailed = cost_of(Usage(input_tokens=inp, output_tokens=out, input_image_tokens=img), price)
    assert detailed.total_usd == plain.total_usd
    assert all(not m.modality_rate for m in detailed.modality)
