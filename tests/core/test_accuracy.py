"""Every billed element of real recorded responses, priced exactly (issue #11).

The bodies in ``data/responses/`` are recorded provider responses from public
repositories (provenance in ``data/responses/README.md``). Each test asserts the exact
buckets and the exact cost, and equality with ``genai_prices.calc_price`` wherever the
catalog covers the element.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as GUsage
from genai_prices import calc_price
from typer.testing import CliRunner

from ctxbudget.adapters import PROVIDERS, adapt_usage, detect_format, from_otel
from ctxbudget.cli.main import app
from ctxbudget.errors import PricingError, UsageError
from ctxbudget.priced import PricedResponse, price_response
from ctxbudget.prices import PriceBook
from ctxbudget.usage import Usage

DATA = Path(__file__).parent / "data" / "responses"
M = Decimal(1_000_000)


def body(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def genai(u: Usage, model: str, provider: str, at: date, tier: str | None = None) -> Decimal:
    """genai-prices' own total for one of our usages (its input is inclusive)."""
    kw: dict[str, int] = {
        "input_tokens": u.prompt_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
        "output_tokens": u.output_tokens,
        "input_audio_tokens": (u.input_audio_tokens or 0) + (u.cache_read_audio_tokens or 0),
        "cache_audio_read_tokens": u.cache_read_audio_tokens or 0,
        "output_audio_tokens": u.output_audio_tokens or 0,
        "input_image_tokens": (u.input_image_tokens or 0) + (u.cache_read_image_tokens or 0),
        "output_image_tokens": u.output_image_tokens or 0,
        "input_video_tokens": (u.input_video_tokens or 0) + (u.cache_read_video_tokens or 0),
        "web_searches": u.web_search_requests or 0,
        "storage_searches": u.file_search_requests or 0,
    }
    ctx: Any = {"processing": "batch"} if tier == "batch" else None
    g = GUsage(**{k: v for k, v in kw.items() if v or k.startswith("cache_")})
    return calc_price(g, model, provider_id=provider,
                      genai_request_timestamp=datetime(at.year, at.month, at.day, tzinfo=UTC),
                      price_context=ctx).total_price


def assert_matches_genai(r: PricedResponse) -> None:
    """Each part, and the priced tool fees, equal genai-prices' calc_price of the same."""
    at = r.at.date()
    for p in r.parts:
        assert p.cost.total_usd == genai(p.usage, p.model, r.provider, at), p.label
    with_fees = sum((p.cost.total_usd for p in r.parts), Decimal(0))
    if len(r.parts) == 1 and r.complete:
        assert r.total_usd == genai(r.usage, r.model, r.provider, at)
    assert r.total_usd >= with_fees


# --------------------------------------------------------------------------- 1. iterations


def test_compaction_iterations_are_summed_and_priced_each() -> None:
    """The issue's own case: the compaction step wrote 55,096 cache tokens that the
    top-level usage (229 input + 5 output) does not show."""
    r = price_response(body("anthropic_compaction.json"), at=date(2026, 6, 1))
    assert r.usage == Usage(input_tokens=329, cache_write_5m_tokens=55_096, output_tokens=136)
    assert [(p.label, p.usage) for p in r.parts] == [
        ("iteration 0 (compaction)",
         Usage(input_tokens=100, cache_write_5m_tokens=55_096, output_tokens=131)),
        ("iteration 1 (message)", Usage(input_tokens=229, output_tokens=5)),
    ]
    # claude-sonnet-4-6: $3 input, $3.75 5-minute write, $15 output per million
    assert r.parts[0].cost.total_usd == (100 * 3 + 55_096 * Decimal("3.75") + 131 * 15) / M
    assert r.parts[1].cost.total_usd == Decimal("0.000762")
    assert r.total_usd == Decimal("0.209637")
    assert_matches_genai(r)
    # what pricing only the top-level usage gave before: 275 times less
    top = PriceBook().total_usd(Usage(input_tokens=229, output_tokens=5), "claude-sonnet-4-6",
                                "anthropic", date(2026, 6, 1))
    assert top == Decimal("0.000762") and int(r.total_usd / top) == 275


def test_usage_cost_json_on_a_compaction_response() -> None:
    res = CliRunner().invoke(app, ["usage", str(DATA / "anthropic_compaction.json"), "--cost",
                                   "--json", "--at", "2026-06-01"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["format"] == "anthropic" and d["model"] == "claude-sonnet-4-6"
    assert d["usage"]["cache_write_5m_tokens"] == 55_096
    assert [it["label"] for it in d["iterations"]] == ["iteration 0 (compaction)",
                                                       "iteration 1 (message)"]
    assert Decimal(d["total_usd"]) == sum(Decimal(it["total_usd"]) for it in d["iterations"])
    assert d["total_usd"] == "0.209637" and d["complete"] is True
    assert all(it["cost"]["source"].startswith("genai-prices") for it in d["iterations"])


def test_advisor_iteration_is_priced_at_its_own_model() -> None:
    r = price_response(body("anthropic_advisor.json"), at=date(2026, 11, 1))
    assert [(p.model, p.usage.input_tokens, p.usage.output_tokens) for p in r.parts] == [
        ("claude-sonnet-5", 1128, 110), ("claude-opus-4-8", 2518, 22),
        ("claude-sonnet-5", 1262, 11)]
    # top-level usage (2390 in / 121 out) is the executor's iterations only
    assert r.usage.input_tokens == 2390 + 2518 and r.usage.output_tokens == 121 + 22
    assert r.usage.reasoning_tokens == 28
    assert r.parts[1].cost.price.model == "claude-opus-4-8"
    assert r.total_usd == Decimal("0.019130")
    assert_matches_genai(r)


# --------------------------------------------------------------------------- 2. tool fees


def test_anthropic_web_search_fee_from_the_catalog() -> None:
    r = price_response(body("anthropic_web_search.json"), at=date(2025, 6, 1))
    assert r.usage.web_search_requests == 1
    (fee,) = r.tool_fees
    assert (fee.tool, fee.requests, fee.usd_per_request, fee.usd) == (
        "web_search", 1, Decimal("0.01"), Decimal("0.01"))
    assert fee.source.startswith("genai-prices")
    # 8,984 input at $3 + 520 output at $15, plus $10 per 1,000 searches
    assert r.total_usd == (8984 * 3 + 520 * 15) / M + Decimal("0.01") == Decimal("0.044752")
    assert r.total_usd == genai(r.usage, r.model, "anthropic", date(2025, 6, 1))


def test_web_fetch_priced_from_the_dated_rate_table() -> None:
    r = price_response(body("anthropic_web_fetch.json"), at=date(2025, 10, 1))
    (fee,) = r.tool_fees
    assert (fee.tool, fee.requests, fee.usd) == ("web_fetch", 1, Decimal(0))
    assert "price_rules.yaml" in fee.source and "web-fetch" in fee.source
    assert r.total_usd == Decimal("0.024351") and r.complete


def test_a_fee_without_any_rate_is_reported_unpriced_never_dropped() -> None:
    """xAI's recorded web search: the catalog has no x-ai web search fee."""
    r = price_response(body("xai_web_search.json"), at=date(2026, 1, 19))
    assert r.unpriced == ("web_search x 1",) and not r.complete
    assert r.tool_fees[0].usd is None
    res = CliRunner().invoke(app, ["usage", str(DATA / "xai_web_search.json"), "--cost",
                                   "--at", "2026-01-19"], terminal_width=200)
    assert res.exit_code == 0 and "UNPRICED" in res.output and "web_search x 1" in res.output


def test_openai_responses_web_search_call_items_are_counted() -> None:
    r = price_response(body("openai_responses_web_search.json"), at=date(2025, 9, 1))
    assert r.usage == Usage(input_tokens=851, cache_read_tokens=8448, output_tokens=577,
                            reasoning_tokens=512, web_search_requests=1)
    assert [(f.tool, f.usd) for f in r.tool_fees] == [("web_search", Decimal("0.01"))]
    # gpt-5: $1.25 input, $0.125 cached, $10 output per million
    assert r.total_usd == (851 * Decimal("1.25") + 8448 * Decimal("0.125") + 577 * 10) / M \
        + Decimal("0.01")
    assert r.total_usd == genai(r.usage, r.model, "openai", date(2025, 9, 1))


def test_gemini_grounding_is_a_web_search_fee() -> None:
    r = price_response(body("gemini_grounding.json"), at=date(2025, 8, 1))
    # 17 prompt + 119 tool-use prompt tokens; 201 candidates + 213 thoughts
    assert r.usage == Usage(input_tokens=136, output_tokens=414, reasoning_tokens=213,
                            web_search_requests=1)
    assert [(f.tool, f.usd) for f in r.tool_fees] == [("web_search", Decimal("0.035"))]
    assert r.total_usd == (136 * Decimal("1.25") + 414 * 10) / M + Decimal("0.035")
    assert r.total_usd == genai(r.usage, r.model, "google", date(2025, 8, 1))


# --------------------------------------------------------------------------- 3. modalities


def test_gemini_audio_input_at_the_audio_rate() -> None:
    r = price_response(body("gemini_audio_input.json"), at=date(2025, 6, 1))
    assert r.usage == Usage(input_tokens=159, output_tokens=22, input_audio_tokens=150)
    (m,) = r.parts[0].cost.modality
    assert (m.field, m.tokens, m.rate_mtok, m.modality_rate) == (
        "input_audio_tokens", 150, Decimal("0.7"), True)
    # gemini-2.0-flash: 9 text tokens at $0.10, 150 audio at $0.70, 22 output at $0.40
    assert r.total_usd == (9 * Decimal("0.1") + 150 * Decimal("0.7") + 22 * Decimal("0.4")) / M
    assert r.total_usd == genai(r.usage, r.model, "google", date(2025, 6, 1))
    assert r.notes == ()


def test_gemini_image_output_at_the_image_rate() -> None:
    r = price_response(body("gemini_image_output.json"), at=date(2025, 10, 1))
    assert r.usage == Usage(input_tokens=17, output_tokens=1336, output_image_tokens=1290)
    assert r.total_usd == (17 * Decimal("0.3") + 46 * Decimal("2.5") + 1290 * 30) / M
    assert r.total_usd == genai(r.usage, r.model, "google", date(2025, 10, 1))


def test_video_without_a_catalog_rate_is_billed_at_the_bucket_rate_and_noted() -> None:
    r = price_response(body("gemini_video_input.json"), at=date(2025, 6, 1))
    assert r.usage.input_video_tokens == 258 and r.usage.input_tokens == 268
    assert r.total_usd == genai(r.usage, r.model, "google", date(2025, 6, 1))
    assert r.notes and "input_video_tokens x 258" in r.notes[0]


def test_openai_audio_input_rate_from_an_overrides_file(tmp_path: Path) -> None:
    """The catalog has no audio rate for gpt-4o-audio-preview: priced as text with a note;
    an overrides file with ``input_audio_mtok`` prices the 44 audio tokens at that rate."""
    b = body("openai_chat_audio_input.json")
    r = price_response(b, at=date(2025, 1, 1))
    assert r.usage == Usage(input_tokens=64, output_tokens=9, input_audio_tokens=44)
    assert r.notes and "input_audio_tokens x 44" in r.notes[0]
    assert r.total_usd == genai(r.usage, r.model, "openai", date(2025, 1, 1))
    f = tmp_path / "audio.yaml"
    f.write_text("prices:\n  - model: gpt-4o-audio-preview-2024-12-17\n    provider: openai\n"
                 "    input_mtok: 2.5\n    output_mtok: 10\n    input_audio_mtok: 40\n"
                 "    source: OpenAI pricing page, audio tokens\n")
    r2 = price_response(b, at=date(2025, 1, 1), book=PriceBook(overrides=[f]))
    assert r2.total_usd == (20 * Decimal("2.5") + 44 * 40 + 9 * 10) / M and not r2.notes


# --------------------------------------------------------------------------- 6. no silent zeros


def test_a_body_of_another_shape_fails_naming_adapter_and_fields() -> None:
    b = body("openai_responses_web_search.json")
    with pytest.raises(UsageError) as ei:
        adapt_usage("deepseek", b)
    msg = str(ei.value)
    assert msg.startswith("deepseek adapter: no usage fields found; expected one of "
                          "usage.prompt_tokens, usage.completion_tokens")
    assert "--provider openai-responses" in msg
    for name in PROVIDERS:  # every adapter refuses a body with none of its fields
        with pytest.raises(UsageError):
            adapt_usage(name, {"usage": {"foo": 1}})


def test_cli_exit_2_and_one_line_for_an_unrecognised_body(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["usage", str(DATA / "openai_responses_web_search.json"),
                                   "--provider", "deepseek"])
    assert res.exit_code == 2
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "deepseek adapter" in lines[0] and "openai-responses" in lines[0]
    f = tmp_path / "nothing.json"
    f.write_text('{"id": "x", "result": {"text": "hi"}}')
    res = CliRunner().invoke(app, ["usage", str(f)])
    assert res.exit_code == 2 and "no usage fields recognised" in res.output


# --------------------------------------------------------------------------- 5/7. providers


@pytest.mark.parametrize(("name", "fmt"), [
    ("anthropic_compaction.json", "anthropic"), ("openai_chat_audio_input.json", "openai-chat"),
    ("openai_responses_web_search.json", "openai-responses"), ("groq_chat.json", "groq"),
    ("openrouter_usage.json", "openrouter"), ("xai_web_search.json", "xai"),
    ("gemini_audio_input.json", "gemini"), ("mistral_cached.json", "openai-chat"),
])
def test_auto_detects_the_shape(name: str, fmt: str) -> None:
    assert detect_format(body(name)) == fmt


def test_mistral_cached_prompt_tokens() -> None:
    r = price_response(body("mistral_cached.json"), "mistral", at=date(2025, 11, 1))
    assert r.usage == Usage(input_tokens=44, cache_read_tokens=224, output_tokens=5)
    assert r.provider == "mistral"
    assert r.total_usd == genai(r.usage, r.model, "mistral", date(2025, 11, 1))


def test_groq_chat() -> None:
    r = price_response(body("groq_chat.json"), at=date(2025, 4, 7))
    assert (r.adapted.format, r.provider) == ("groq", "groq")
    assert r.usage == Usage(input_tokens=48, output_tokens=8)
    assert r.total_usd == (48 * Decimal("0.59") + 8 * Decimal("0.79")) / M
    assert r.total_usd == genai(r.usage, r.model, "groq", date(2025, 4, 7))


def test_openrouter_usage_matches_what_openrouter_charged() -> None:
    r = price_response(body("openrouter_usage.json"), at=date(2025, 11, 1))
    assert r.usage == Usage(input_tokens=17, output_tokens=2177, reasoning_tokens=960)
    assert r.adapted.reported_cost_usd == Decimal("0.00435825")
    assert r.total_usd == r.adapted.reported_cost_usd
    assert r.total_usd == genai(r.usage, r.model, "openrouter", date(2025, 11, 1))
    # its web search is not in the catalog for this model: unpriced, and the gap shows
    w = price_response(body("openrouter_web_search.json"), at=date(2025, 11, 1))
    assert w.unpriced == ("web_search x 1",)
    assert w.adapted.reported_cost_usd is not None
    assert w.adapted.reported_cost_usd - w.total_usd == Decimal("0.01")


def test_xai_reasoning_is_billed_beside_the_completion() -> None:
    """total_tokens 2680 = prompt 2332 + completion 38 + reasoning 310."""
    r = price_response(body("xai_web_search.json"), at=date(2026, 1, 19))
    assert r.usage == Usage(input_tokens=792, cache_read_tokens=1540, output_tokens=348,
                            reasoning_tokens=310, web_search_requests=1)
    assert r.parts[0].cost.total_usd == genai(r.parts[0].usage, r.model, "x-ai",
                                              date(2026, 1, 19))


def test_bedrock_invoke_model_anthropic_priced_as_aws() -> None:
    r = price_response(body("bedrock_invoke_anthropic.json"), "bedrock-anthropic",
                       at=date(2025, 11, 1))
    assert r.provider == "aws" and r.parts[0].cost.price.provider == "aws"
    assert r.usage == Usage(input_tokens=3, cache_read_tokens=9511, cache_write_5m_tokens=1956,
                            output_tokens=44)
    assert r.total_usd == genai(r.usage, r.model, "aws", date(2025, 11, 1))


def test_vertex_anthropic_priced_with_vertex_prices() -> None:
    """An Anthropic-shaped body priced through the Vertex (google) catalog entry."""
    b = body("anthropic_web_search.json")
    r = price_response(b, "vertex-anthropic", model="claude-sonnet-4@20250514",
                       at=date(2025, 6, 1))
    assert r.provider == "google" and r.parts[0].cost.price.provider == "google"
    assert r.parts[0].cost.total_usd == genai(r.parts[0].usage, "claude-sonnet-4@20250514",
                                              "google", date(2025, 6, 1))


def test_provider_from_the_model_when_the_format_does_not_say() -> None:
    book = PriceBook()
    assert book.provider_for("gpt-4o-mini-2024-07-18") == "openai"
    assert book.provider_for("llama-3.3-70b-versatile") == "groq"
    with pytest.raises(PricingError, match="several providers"):
        book.provider_for("openai/gpt-oss-120b")


# --------------------------------------------------------------------------- 4. tiers


def test_batch_rule_for_dates_the_catalog_lacks() -> None:
    res = CliRunner().invoke(app, ["cost", "--model", "gpt-4o-mini-2024-07-18", "--input", "42",
                                   "--output", "20", "--service-tier", "batch", "--at",
                                   "2024-12-23", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["rule"] == "openai-batch-50" and "openai-batch-50" in d["source"]
    # gpt-4o-mini standard $0.15 / $0.60 per million, halved
    assert Decimal(d["total_usd"]) == (42 * Decimal("0.075") + 20 * Decimal("0.3")) / M
    std = genai(Usage(input_tokens=42, output_tokens=20), "gpt-4o-mini", "openai",
                date(2024, 12, 23))
    assert Decimal(d["total_usd"]) * 2 == std
    # from the catalog's own batch variant on, the catalog prices it (no rule)
    late = PriceBook().resolve("gpt-4o-mini", "openai", date(2026, 11, 1), "batch")
    assert late.rule is None


def test_unknown_or_unavailable_service_tier_is_an_error() -> None:
    for tier, at in (("turbo", "2026-11-01"), ("priority", "2024-12-23"),
                     ("batch", "2023-12-01")):
        res = CliRunner().invoke(app, ["cost", "--model", "gpt-4o-mini", "--input", "10",
                                       "--service-tier", tier, "--at", at])
        assert res.exit_code == 2, (tier, res.output)
        assert f"no {tier!r} price for openai/gpt-4o-mini" in res.output


# --------------------------------------------------------------------------- 9. OpenTelemetry


def _pydantic_ai_attributes(b: dict[str, Any]) -> dict[str, Any]:
    """The span attributes pydantic-ai / Logfire write for this Anthropic response
    (pydantic-ai's own usage mapping and ``opentelemetry_attributes``)."""
    from anthropic.types.beta import BetaMessage
    from pydantic_ai.models.anthropic._response import map_usage

    msg = BetaMessage.model_validate({**b, "content": [], "role": "assistant",
                                      "type": "message", "stop_reason": "end_turn",
                                      "stop_sequence": None})
    u = map_usage(msg, "anthropic", "https://api.anthropic.com", str(b["model"]))
    return {**u.opentelemetry_attributes(), "gen_ai.response.model": b["model"]}


def test_otel_pydantic_ai_attributes_of_a_compaction_response() -> None:
    b = body("anthropic_compaction.json")
    attrs = _pydantic_ai_attributes(b)
    a = from_otel(attrs)
    direct = adapt_usage("anthropic", b).usage
    assert a.usage == direct == Usage(input_tokens=329, cache_write_5m_tokens=55_096,
                                      output_tokens=136)


def test_otel_one_hour_cache_write_is_priced_at_the_1h_rate() -> None:
    """pydantic-ai reports the 1-hour share as ``gen_ai.usage.details.ephemeral_1h_input_tokens``
    (usage constructed: no recorded response with 1-hour writes was found)."""
    b = body("bedrock_invoke_anthropic.json")
    b = {**b, "model": "claude-sonnet-4-5", "usage": {
        **b["usage"], "cache_creation": {"ephemeral_5m_input_tokens": 956,
                                         "ephemeral_1h_input_tokens": 1000}}}
    attrs = _pydantic_ai_attributes(b)
    assert attrs["gen_ai.usage.details.ephemeral_1h_input_tokens"] == 1000
    a = from_otel(attrs)
    assert a.usage == Usage(input_tokens=3, cache_read_tokens=9511, cache_write_5m_tokens=956,
                            cache_write_1h_tokens=1000, output_tokens=44)
    cost = PriceBook().cost(a.usage, "claude-sonnet-4-5", "anthropic", date(2025, 11, 1))
    assert cost.buckets["cache_write_1h_tokens"] == 1000 * 6 / M  # $6, not $3.75
    assert cost.total_usd == genai(a.usage, "claude-sonnet-4-5", "anthropic", date(2025, 11, 1))


def test_otel_openllmetry_and_semconv_names() -> None:
    openllmetry = {"gen_ai.usage.prompt_tokens": 10_003, "gen_ai.usage.completion_tokens": 44,
                   "gen_ai.usage.cache_read_input_tokens": 9511,
                   "gen_ai.usage.cache_creation_input_tokens": 489,
                   "gen_ai.usage.reasoning_tokens": 4}
    semconv = {"gen_ai.usage.input_tokens": 10_003, "gen_ai.usage.output_tokens": 44,
               "gen_ai.usage.cache_read.input_tokens": 9511,
               "gen_ai.usage.cache_creation.input_tokens": 489,
               "gen_ai.usage.reasoning.output_tokens": 4}
    want = Usage(input_tokens=3, cache_read_tokens=9511, cache_write_5m_tokens=489,
                 output_tokens=44, reasoning_tokens=4)
    assert from_otel(openllmetry).usage == from_otel(semconv).usage == want


def test_otel_advisor_totals_without_a_model_are_reported_unpriced() -> None:
    """pydantic-ai records the advisor iteration only as ``details.advisor_*`` totals,
    without its model: reported as an unpriced element, never dropped or mispriced."""
    attrs = _pydantic_ai_attributes(body("anthropic_advisor.json"))
    a = from_otel(attrs)
    assert a.usage.input_tokens == 2390 and a.usage.output_tokens == 121  # executor only
    assert a.other_tool_requests == (("advisor_iteration_tokens", 2518 + 22),)
    from ctxbudget.priced import price_adapted

    r = price_adapted(a, provider="anthropic", at=date(2026, 11, 1))
    assert r.unpriced == ("advisor_iteration_tokens x 2540",) and not r.complete


def test_otel_spans_import_with_pydantic_ai_names(tmp_path: Path) -> None:
    """An OTLP JSON file whose span carries pydantic-ai's attribute names imports with
    the same buckets as the response itself."""
    from ctxbudget.sources import get_importer, import_paths
    from ctxbudget.store import open_store

    b = body("anthropic_compaction.json")
    attrs = {**_pydantic_ai_attributes(b), "gen_ai.system": "anthropic"}

    def val(v: Any) -> dict[str, Any]:
        return {"intValue": str(v)} if isinstance(v, int) else {"stringValue": str(v)}

    doc = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [{
        "traceId": "t1", "spanId": "s1", "name": "chat claude-sonnet-4-6",
        "startTimeUnixNano": "1780000000000000000", "endTimeUnixNano": "1780000001000000000",
        "attributes": [{"key": k, "value": val(v)} for k, v in attrs.items()]}]}]}]}
    f = tmp_path / "trace.json"
    f.write_text(json.dumps(doc))
    with open_store(tmp_path / "o.duckdb") as st:
        stats = import_paths(get_importer("otel"), [f], st)
        row = st.con.execute("SELECT provider, input_tokens, cache_write_5m_tokens, "
                             "output_tokens FROM calls").fetchall()
    assert stats.accepted == 1
    assert row == [("anthropic", 329, 55_096, 136)]


def test_cost_defaults_to_the_body_creation_date() -> None:
    """groq_chat.json was created 2025-04-07 (``created`` 1744043573)."""
    r = price_response(body("groq_chat.json"))
    assert r.at.date() == date(2025, 4, 7)
    res = CliRunner().invoke(app, ["usage", str(DATA / "groq_chat.json"), "--cost", "--json"])
    assert json.loads(res.output)["at"] == "2025-04-07"
