"""Core commands: ``cost``, ``usage``, ``prices``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from ._common import console, fail, handles_errors, parse_day, print_json, user_errors


def _book(prices: list[Path] | None) -> Any:
    from ..prices import PriceBook

    return PriceBook(overrides=tuple(prices or ()))


def cost(
    model: str = typer.Option(..., "--model", "-m", help="Model name, e.g. claude-sonnet-4-5."),
    provider: str | None = typer.Option(None, "--provider", "-p", help="Provider id."),
    input_tokens: int = typer.Option(0, "--input", min=0, help="Uncached input tokens."),
    cache_read: int = typer.Option(0, "--cache-read", min=0, help="Cache-read tokens."),
    cache_write_5m: int = typer.Option(0, "--cache-write-5m", min=0, help="5-minute cache writes."),
    cache_write_1h: int = typer.Option(0, "--cache-write-1h", min=0, help="1-hour cache writes."),
    output_tokens: int = typer.Option(0, "--output", min=0,
                                      help="Output tokens (reasoning incl.)."),
    at: str | None = typer.Option(None, "--at", help="Price date YYYY-MM-DD (default: today)."),
    service_tier: str | None = typer.Option(None, "--service-tier",
                                            help="batch, priority, flex... (default standard)."),
    prices: list[Path] | None = typer.Option(None, "--prices", help="Price overrides YAML."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Price one usage: per-bucket tokens, rate and USD, and the total."""
    from ..usage import Usage

    with_day = parse_day(at, "--at")
    when = datetime(with_day.year, with_day.month, with_day.day, tzinfo=UTC) if with_day \
        else datetime.now(UTC)
    with user_errors():
        usage = Usage(input_tokens=input_tokens, cache_read_tokens=cache_read,
                      cache_write_5m_tokens=cache_write_5m, cache_write_1h_tokens=cache_write_1h,
                      output_tokens=output_tokens)
        c = _book(prices).cost(usage, model, provider, when, service_tier)
    d = c.as_dict()
    d["at"] = when.date().isoformat()
    if as_json:
        print_json(d)
        return
    from rich.table import Table

    t = Table(title=f"{c.price.provider}/{c.price.model} at {d['at']}  ({c.price.source})")
    t.add_column("bucket")
    t.add_column("tokens", justify="right")
    t.add_column("$/Mtok", justify="right")
    t.add_column("USD", justify="right")
    for b in d["buckets"]:
        t.add_row(b["bucket"], f"{b['tokens']:,}", b["rate_mtok"], b["usd"])
    if d["requests_usd"] != "0":
        t.add_row("requests", "1", "", d["requests_usd"])
    t.add_row("total", f"{usage.total_tokens:,}", "", d["total_usd"], style="bold")
    console().print(t)


def usage(
    file: str = typer.Argument(..., help="Response body or usage object (JSON); '-' for stdin."),
    provider: str = typer.Option(
        "auto", "--provider", "-p",
        help="Usage format: auto (detect from the body's shape), anthropic, openai, "
             "openai-chat, openai-responses, gemini, bedrock, bedrock-anthropic, "
             "vertex-anthropic, deepseek, mistral, groq, openrouter, xai or otel."),
    with_cost: bool = typer.Option(False, "--cost", help="Price every billed element: "
                                   "buckets, iterations, tool fees, total, source per line."),
    model: str | None = typer.Option(None, "--model", "-m",
                                     help="Model to price at (default: the body's)."),
    catalog_provider: str | None = typer.Option(
        None, "--catalog-provider",
        help="Price-catalog provider id (default: implied by the format, else from the model)."),
    at: str | None = typer.Option(None, "--at", help="Price date YYYY-MM-DD (default: today)."),
    service_tier: str | None = typer.Option(None, "--service-tier",
                                            help="batch, priority, flex... (default: the body's)."),
    prices: list[Path] | None = typer.Option(None, "--prices", help="Price overrides YAML."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Convert a raw provider usage object into ctxbudget's disjoint buckets (and price it)."""
    from ..adapters import adapt_usage

    text = sys.stdin.read() if file == "-" else _read(file)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{file}:{exc.lineno}: not valid JSON ({exc.msg})")
    if not isinstance(raw, dict):
        fail(f"{file}: expected a JSON object (a response body or a usage object)")
    with user_errors(prefix=f"{file}: "):
        a = adapt_usage(provider, raw)
    if with_cost:
        _usage_cost(a, raw, model, catalog_provider, at, service_tier, prices, as_json, file)
        return
    d: dict[str, Any] = {**a.usage.as_dict(), **a.usage.detail(),
                         "prompt_tokens": a.usage.prompt_tokens,
                         "source_input_inclusive": a.input_inclusive, "model": a.model,
                         "request_id": a.request_id, "format": a.format,
                         "provider": a.provider}
    if a.iterations:
        d["iterations"] = [{"type": it.type, "model": it.model,
                            **it.usage.as_dict(), **it.usage.detail()}
                           for it in a.iterations]
    if a.other_tool_requests:
        d["other_tool_requests"] = dict(a.other_tool_requests)
    if as_json:
        print_json(d)
        return
    from rich.table import Table

    t = Table(title=f"{a.format} usage ({'inclusive' if a.input_inclusive else 'exclusive'} "
                    "input)")
    t.add_column("bucket")
    t.add_column("tokens", justify="right")
    for k, v in {**a.usage.as_dict(), **a.usage.detail()}.items():
        t.add_row(k, f"{v:,}")
    for k, v in a.other_tool_requests:
        t.add_row(k, f"{v:,}")
    console().print(t)


def _usage_cost(a: Any, raw: Any, model: str | None, catalog_provider: str | None,
                at: str | None, service_tier: str | None, prices: list[Path] | None,
                as_json: bool, file: str) -> None:
    from ..priced import body_time, price_adapted

    when: Any = parse_day(at, "--at") or body_time(raw)  # --at, else the body's own time
    with user_errors(prefix=f"{file}: "):
        r = price_adapted(a, provider=catalog_provider, model=model, at=when,
                          service_tier=service_tier, book=_book(prices))
    if as_json:
        print_json(r.as_dict())
        return
    from rich.table import Table

    t = Table(title=f"{r.provider}/{r.model} at {r.at.date().isoformat()}"
                    + (f" ({r.service_tier})" if r.service_tier else ""))
    for col in ("part", "element", "quantity", "rate", "USD", "source"):
        t.add_column(col, justify="right" if col in ("quantity", "rate", "USD") else "left")
    for p in r.parts:
        c = p.cost
        src = c.price.source + (f" [{c.price.rule}]" if c.price.rule else "")
        for b in c.as_dict()["buckets"]:
            if b["tokens"]:
                t.add_row(p.label, b["bucket"], f"{b['tokens']:,}", f"{b['rate_mtok']}/Mtok",
                          b["usd"], src)
        for m in c.modality:
            t.add_row(p.label, f"  of which {m.field}", f"{m.tokens:,}",
                      f"{m.rate_mtok}/Mtok", str(m.usd),
                      "modality rate" if m.modality_rate else "no modality rate: bucket rate")
        if "requests" in c.buckets:
            t.add_row(p.label, "request fee", "1", "", str(c.buckets["requests"]), src)
    for f in r.tool_fees:
        t.add_row("response", f"tool {f.tool}", f"{f.requests:,}",
                  "" if f.usd_per_request is None else f"{f.usd_per_request}/request",
                  "UNPRICED FEE" if f.usd is None else str(f.usd), f.source)
    t.add_row("total", "", f"{r.usage.total_tokens:,}", "", str(r.total_usd), "",
              style="bold")
    console().print(t)
    if r.unpriced:
        console().print(f"[bold red]unpriced:[/] {', '.join(r.unpriced)} (not in the total)")
    for note in r.notes:
        console().print(f"[yellow]note:[/] {note}")


def prices_cmd(
    pattern: str | None = typer.Argument(None, help="Substring of model or provider."),
    prices: list[Path] | None = typer.Option(None, "--prices", help="Price overrides YAML."),
    at: str | None = typer.Option(None, "--at", help="Date YYYY-MM-DD (default today)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the price rows matching PATTERN, with source and effective date."""
    day = parse_day(at, "--at")
    when = datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
    with user_errors():
        rows = _book(prices).rows(pattern, when)
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    from rich.table import Table

    t = Table(title=f"{len(rows)} price rows (USD per million tokens)")
    for col in ("provider", "model", "input", "cache read", "write 5m", "write 1h", "output",
                "tiers", "from", "source"):
        t.add_column(col, justify="right" if col not in ("provider", "model", "source") else "left")
    for r in rows:
        b = r.base
        t.add_row(r.provider, r.model, str(b.input_mtok), str(b.cache_read_mtok),
                  str(b.cache_write_5m_mtok), str(b.cache_write_1h_mtok), str(b.output_mtok),
                  ", ".join(f">{x.above_prompt_tokens:,}" for x in r.tiers),
                  r.effective_from.isoformat() if r.effective_from else "", r.source)
    console().print(t)


def _read(path: str) -> str:
    p = Path(path)
    if not p.exists():
        fail(f"{path}: file not found")
    return p.read_text(encoding="utf-8")


def register(app: typer.Typer) -> None:
    app.command("cost")(handles_errors(cost))
    app.command("usage")(handles_errors(usage))
    app.command("prices")(handles_errors(prices_cmd))
