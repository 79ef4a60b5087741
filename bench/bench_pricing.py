"""Scalar pricing speed: ctxbudget PriceBook vs genai-prices calc_price vs LiteLLM.

    python3 bench/bench_pricing.py [--n 100000] [--seed 42] [--no-litellm]

Generates N random usages over ten models from five providers with timestamps
spread over 2026 (some prompts past the 200k context tiers), then prices every
record one call at a time with:

(a) ``genai_prices.calc_price`` (the reference: ctxbudget's catalog is its data),
(b) ``ctxbudget.PriceBook.total_usd`` (fresh PriceBook, so resolution is timed too),
(c) ``litellm.cost_per_token`` (LiteLLM's bundled cost map, no network).

Every engine gets the usage in its own convention, built before the clock starts:
genai-prices' ``Usage.input_tokens`` is *inclusive* of cache reads and writes;
LiteLLM's ``prompt_tokens`` too, and it has no argument for 1-hour cache writes, so
they are passed as plain cache-creation tokens. Prints calls/s, the ratio vs
genai-prices and each engine's summed total. ctxbudget's total must equal
genai-prices' exactly (the script exits 1 otherwise).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ctxbudget import PriceBook, Usage

#: (provider, model, LiteLLM model name)
MODELS: tuple[tuple[str, str, str], ...] = (
    ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5", "claude-haiku-4-5"),
    ("anthropic", "claude-opus-4-6", "claude-opus-4-6"),
    ("openai", "gpt-4o", "gpt-4o"),
    ("openai", "gpt-4.1-mini", "gpt-4.1-mini"),
    ("openai", "gpt-5", "gpt-5"),
    ("google", "gemini-2.5-flash", "gemini/gemini-2.5-flash"),
    ("google", "gemini-2.5-pro", "gemini/gemini-2.5-pro"),
    ("mistral", "mistral-large-2512", "mistral/mistral-large-2512"),
    ("mistral", "mistral-small-latest", "mistral/mistral-small-latest"),
)


@dataclass(frozen=True, slots=True)
class Record:
    provider: str
    model: str
    litellm_model: str
    ts: datetime
    usage: Usage


def make_records(n: int, seed: int) -> list[Record]:
    rnd = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for _ in range(n):
        provider, model, lmodel = rnd.choice(MODELS)
        big = rnd.random() < 0.05  # a few long-context calls, past the 200k tiers
        cached = provider != "mistral" or rnd.random() < 0.5
        inp = rnd.randint(0, 250_000 if big else 8_000)
        read = rnd.randint(0, 150_000 if big else 40_000) if cached else 0
        w5 = rnd.randint(0, 20_000) if provider == "anthropic" and rnd.random() < 0.3 else 0
        w1 = rnd.randint(0, 20_000) if provider == "anthropic" and rnd.random() < 0.1 else 0
        out_tok = rnd.randint(0, 4_000)
        out.append(Record(
            provider=provider, model=model, litellm_model=lmodel,
            ts=start + timedelta(seconds=rnd.randint(0, 330 * 86_400)),
            usage=Usage(input_tokens=inp, cache_read_tokens=read, cache_write_5m_tokens=w5,
                        cache_write_1h_tokens=w1, output_tokens=out_tok,
                        reasoning_tokens=rnd.randint(0, out_tok)),
        ))
    return out


def to_genai(u: Usage) -> Any:
    """Our disjoint buckets → genai-prices' inclusive Usage."""
    from genai_prices import Usage as GUsage

    return GUsage(
        input_tokens=u.prompt_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
        cache_write_1h_tokens=u.cache_write_1h_tokens,
        output_tokens=u.output_tokens,
    )


@dataclass
class Result:
    name: str
    seconds: float
    total: Decimal | float
    totals: list[Any]
    errors: int = 0


def timed(name: str, fn: Callable[[], tuple[list[Any], int]]) -> Result:
    t0 = time.perf_counter()
    totals, errors = fn()
    dt = time.perf_counter() - t0
    exact = bool(totals) and isinstance(totals[0], Decimal)
    s: Decimal | float = sum(totals, Decimal(0)) if exact else float(sum(totals))
    return Result(name, dt, s, totals, errors)


def run_genai(records: list[Record]) -> Result:
    from genai_prices import calc_price

    gusages = [to_genai(r.usage) for r in records]

    def go() -> tuple[list[Any], int]:
        return [
            calc_price(g, r.model, provider_id=r.provider, genai_request_timestamp=r.ts).total_price
            for r, g in zip(records, gusages, strict=True)
        ], 0

    return timed("genai-prices calc_price", go)


def run_ours(records: list[Record]) -> Result:
    book = PriceBook()  # cold: every (provider, model, day) resolution is timed too

    def go() -> tuple[list[Any], int]:
        total_usd = book.total_usd
        return [total_usd(r.usage, r.model, r.provider, r.ts) for r in records], 0

    return timed("ctxbudget PriceBook.total_usd", go)


def run_litellm(records: list[Record]) -> Result:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    t0 = time.perf_counter()
    import litellm  # lazy: ~3-7 s import; not timed below

    import_s = time.perf_counter() - t0
    print(f"(litellm {getattr(litellm, 'version', '')} imported in {import_s:.1f} s, not timed)")
    args = [
        dict(model=r.litellm_model, prompt_tokens=r.usage.prompt_tokens,
             completion_tokens=r.usage.output_tokens,
             cache_read_input_tokens=r.usage.cache_read_tokens,
             cache_creation_input_tokens=r.usage.cache_write_tokens)
        for r in records
    ]

    def go() -> tuple[list[Any], int]:
        out: list[Any] = []
        errors = 0
        cpt = litellm.cost_per_token
        for a in args:
            try:
                p, c = cpt(**a)
                out.append(p + c)
            except Exception:  # unknown model in LiteLLM's map
                errors += 1
                out.append(float("nan"))
        return out, errors

    return timed("litellm cost_per_token", go)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-litellm", action="store_true")
    args = ap.parse_args(argv)

    records = make_records(args.n, args.seed)
    print(f"{args.n:,} usages over {len(MODELS)} models, timestamps in 2026, one call each\n")
    genai = run_genai(records)
    ours = run_ours(records)
    results = [genai, ours]
    if not args.no_litellm:
        try:
            results.append(run_litellm(records))
        except ImportError:
            print("(litellm not installed: pip install litellm)")

    w = max(len(r.name) for r in results)
    print(f"\n{'engine':<{w}}  {'seconds':>8}  {'calls/s':>11}  {'vs genai':>8}  total USD")
    for r in results:
        rate = args.n / r.seconds
        ratio = genai.seconds / r.seconds
        err = f"  ({r.errors:,} errors)" if r.errors else ""
        print(f"{r.name:<{w}}  {r.seconds:8.2f}  {rate:11,.0f}  {ratio:7.1f}x  {r.total}{err}")

    mismatches = sum(1 for a, b in zip(ours.totals, genai.totals, strict=True) if a != b)
    same = "IDENTICAL" if ours.total == genai.total else "DIFFER"
    print(f"\nctxbudget vs genai-prices: totals {same} ({ours.total} vs {genai.total}),"
          f" {mismatches:,} per-record mismatches")
    if len(results) > 2:
        lite = results[2]
        by_model: dict[str, list[float]] = {}
        for rec, a, b in zip(records, ours.totals, lite.totals, strict=True):
            d = by_model.setdefault(rec.model, [0.0, 0.0])
            d[0] += float(a)
            d[1] += b
        print("\nLiteLLM vs ctxbudget, summed per model. LiteLLM uses its own price map and"
              " float math;\ncalled this way it bills Claude prompts over 200k tokens at the"
              " base rate (Gemini's tier\nmatches), 1h cache writes at the 5m rate (no argument"
              " for them), and has one price per\nmodel (no price dates):")
        for model, (a, b) in by_model.items():
            rel = (b - a) / a * 100 if a else float("nan")
            print(f"  {model:<22} ctxbudget {a:14.6f}  litellm {b:14.6f}  {rel:+7.2f}%")
    return 0 if ours.total == genai.total and mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
