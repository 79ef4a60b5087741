"""Audit commands: ``audit``, ``simulate-cache``, ``whatif``, ``checklist``."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from ._common import (
    EXIT_CHECK_FAILED,
    check_engine,
    console,
    engine_option,
    fail,
    handles_errors,
    print_json,
    since_option,
    time_range,
    until_option,
)

_SINCE = since_option()
_UNTIL = until_option()
_ENGINE = engine_option(duckdb_only=True)


def _book(prices: list[Path] | None) -> Any:
    from ..prices import PriceBook

    return PriceBook(overrides=tuple(prices or ()))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


# --------------------------------------------------------------------------- simulate-cache


def simulate_cache_cmd(
    trace: Path = typer.Argument(..., help="Mooncake JSONL, DuckDB store, or request-body "
                                           "JSONL / cassette YAML."),
    fmt: str = typer.Option("auto", "--from",
                            help="Trace format: mooncake, store, requests or auto (by "
                                 "content)."),
    ttl: str = typer.Option("none", "--ttl",
                            help="none, 5m, 1h, 24h or seconds: blocks expire this long "
                                 "after their last use (refreshed on hit)."),
    capacity_tokens: int | None = typer.Option(None, "--capacity-tokens", min=0,
                                               help="LRU capacity in tokens (default: "
                                                    "unlimited)."),
    block: int = typer.Option(512, "--block", min=1,
                              help="Tokens per hash id (mooncake format)."),
    price_model: str | None = typer.Option(None, "--model",
                                           help="Price the replay with this model's rates."),
    provider: str | None = typer.Option(None, "--provider", help="Provider of --model."),
    prices: list[Path] | None = typer.Option(None, "--prices", help="Price overrides YAML."),
    engine: str = typer.Option("auto", "--kernel", help="Replay kernel: auto, numba, numpy or "
                                                        "python."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Replay a trace's prefix blocks through a prompt cache (TTL and/or LRU capacity).

    A request's hit is the longest prefix of its blocks already cached; every block
    is then touched (hit: TTL refreshed; miss: written). Reports token-, block- and
    request-weighted hit ratios and, with --model, cost with and without caching.
    """
    from ..analyze.cachesim import load_trace, parse_ttl, price_simulation, simulate_cache

    ttl_s = parse_ttl(ttl)
    t0 = time.perf_counter()
    tr = load_trace(trace, fmt, block_size=block)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = simulate_cache(tr, ttl_s=ttl_s, capacity_tokens=capacity_tokens, engine=engine)
    t_sim = time.perf_counter() - t0
    d: dict[str, Any] = {"trace": str(trace), **res.as_dict(),
                         "load_seconds": round(t_load, 4), "simulate_seconds": round(t_sim, 4)}
    cost = None
    if price_model:
        price = _book(prices).resolve(price_model, provider)
        cost = price_simulation(tr, res, price)
        d["cost"] = cost.as_dict()
    if as_json:
        print_json(d)
        return
    from rich.table import Table

    cap = f"{capacity_tokens:,} tokens" if capacity_tokens is not None else "unlimited"
    t = Table(title=f"prefix-cache replay of {trace.name}: TTL {ttl}, capacity {cap}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("requests", f"{res.requests:,}")
    t.add_row("blocks", f"{res.blocks:,}")
    t.add_row("prompt tokens", f"{res.prompt_tokens:,}")
    t.add_row("hit tokens", f"{res.hit_tokens:,}")
    t.add_row("token hit ratio (hit / prompt tokens)", _pct(res.token_hit_ratio))
    t.add_row("block hit ratio (hit / all blocks)", _pct(res.block_hit_ratio))
    t.add_row("request hit ratio (mean per request)", _pct(res.request_hit_ratio))
    t.add_row("requests with a hit", f"{res.requests_with_hit:,}")
    rate = res.requests / t_sim if t_sim > 0 else float("inf")
    t.add_row("engine / time", f"{res.engine}, {t_sim * 1e3:.1f} ms ({rate:,.0f} requests/s)")
    if cost is not None:
        t.add_row(f"cost with caching ({cost.price.model})", f"${cost.with_cache_usd:.4f}")
        t.add_row("cost without caching", f"${cost.without_cache_usd:.4f}")
        t.add_row("saved", f"${cost.saved_usd:.4f}")
    console().print(t)


# --------------------------------------------------------------------------- audit


def audit_cmd(
    files: list[Path] | None = typer.Argument(None, help="Request logs: JSONL of {timestamp, "
                                                         "request, response} or cassette "
                                                         "YAML."),
    db: Path | None = typer.Option(None, "--db", help="Audit the store's prefix fingerprints."),
    ttl: str | None = typer.Option(None, "--ttl", help="Override the TTL (5m, 1h...); default: "
                                                      "what each request asked for."),
    show_bytes: bool = typer.Option(False, "--show-bytes",
                                    help="Show the differing bytes (redacted by default)."),
    prices: list[Path] | None = typer.Option(None, "--prices", help="Price overrides YAML."),
    check: bool = typer.Option(False, "--check", help="Exit 1 when any miss is found (CI)."),
    since: str | None = _SINCE, until: str | None = _UNTIL, engine: str = _ENGINE,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Explain prompt-cache misses: where each call's prefix diverged, why, and the cost.

    --since / --until select the calls (stored ones and logged requests) by time."""
    from ..analyze.audit import audit_requests, load_requests, requests_from_store
    from ..analyze.cachesim import parse_ttl

    check_engine(engine, "audit")
    lo, hi = time_range(since, until)
    if not files and db is None:
        fail("give request log files, or --db DB")
    ttl_s = parse_ttl(ttl) if ttl else None
    reqs: list[Any] = []
    notes: list[str] = []
    for path in files or []:
        loaded, file_notes = load_requests(path, ttl_s=ttl_s)
        loaded = [x for x in loaded if _in_range(x.ts, lo, hi)]
        base = len(reqs)
        reqs.extend([replace(x, index=base + i) for i, x in enumerate(loaded)])
        notes.extend(file_notes)
    if db is not None:
        stored = requests_from_store(db, ttl_s=ttl_s, since=lo, until=hi)
        base = len(reqs)
        reqs.extend([replace(x, index=base + i) for i, x in enumerate(stored)])
    rep = audit_requests(reqs, book=_book(prices), show_bytes=show_bytes, notes=notes)
    if as_json:
        print_json(rep.as_dict())
    else:
        _print_audit(rep)
    if check and rep.findings:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _in_range(ts: Any, lo: Any, hi: Any) -> bool:
    """A logged request's time within [lo, hi) (a request without a time is kept only
    when no range is given)."""
    if lo is None and hi is None:
        return True
    if ts is None:
        return False
    return (lo is None or ts >= lo) and (hi is None or ts < hi)


def _print_audit(rep: Any) -> None:
    from rich.table import Table

    c = console()
    if not rep.findings:
        c.print(f"{rep.requests} calls audited: no cache miss explained by a prefix change, "
                "TTL or cache rule.")
    else:
        t = Table(title=f"cache misses in {rep.requests} calls")
        for col in ("call", "cause", "component", "lost tokens", "lost $", "detail"):
            t.add_column(col, justify="right" if col.startswith("lost") else "left")
        for f in rep.findings:
            t.add_row(f.where, f.cause, f.block or f.component, f"{f.lost_tokens:,}",
                      "unpriced" if f.lost_usd is None else f"{f.lost_usd:.6f}",
                      f.detail + (f"  [provider: {f.provider_reason}]"
                                  if f.provider_reason else ""))
        c.print(t)
        s = Table(title="by cause")
        for col in ("cause", "findings", "lost tokens", "lost $"):
            s.add_column(col, justify="left" if col == "cause" else "right")
        for cause, v in sorted(rep.by_cause().items(), key=lambda kv: -kv[1]["lost_tokens"]):
            s.add_row(cause, str(v["findings"]), f"{v['lost_tokens']:,}",
                      "unpriced" if v["lost_usd"] is None else f"{v['lost_usd']:.6f}")
        c.print(s)
        for f in rep.findings:
            if f.diff:
                c.print(f"{f.where} {f.block}: first difference at byte {f.diff['offset']}: "
                        f"{f.diff['earlier']!r} -> {f.diff['this']!r}", markup=False)
    for note in rep.notes:
        c.print(f"note: {note}", markup=False)


# --------------------------------------------------------------------------- whatif


def whatif_cmd(
    db: Path | None = typer.Option(None, "--db", help="Usage store (default: yours)."),
    data: Path | None = typer.Option(None, "--data", help="Calls Parquet (from simulate)."),
    model_map: list[str] | None = typer.Option(None, "--model-map",
                                               help="TASK_TYPE=MODEL (repeatable; * = all)."),
    ttl: str | None = typer.Option(None, "--ttl", help="5m or 1h."),
    history_window: int | None = typer.Option(None, "--history-window", min=0,
                                              help="Keep the last N turns of history."),
    retrieval_k: int | None = typer.Option(None, "--retrieval-k", min=0,
                                           help="Retrieved chunks per call."),
    current_k: int | None = typer.Option(None, "--current-k", min=1,
                                         help="The k the logged calls used."),
    caching: str | None = typer.Option(None, "--caching", help="on or off."),
    prices: list[Path] | None = typer.Option(None, "--prices", help="Price overrides YAML."),
    since: str | None = _SINCE, until: str | None = _UNTIL, engine: str = _ENGINE,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Re-price and re-shape stored calls under another model, TTL, window, k or caching.

    Shows cost per task type before / after with the assumptions made. Quality is
    not assessed.
    """
    from ..analyze.source import open_source, restrict
    from ..analyze.whatif import QUALITY_NOTE, Scenario, parse_model_map, whatif

    check_engine(engine, "whatif")
    lo, hi = time_range(since, until)
    if ttl is not None and ttl not in ("5m", "1h"):
        fail(f"--ttl: {ttl!r} is not 5m or 1h")
    if caching is not None and caching not in ("on", "off"):
        fail(f"--caching: {caching!r} is not on or off")
    if db is not None and data is not None:
        fail("give --db or --data, not both")
    sc = Scenario(model_map=parse_model_map(model_map), ttl=ttl, history_window=history_window,
                  retrieval_k=retrieval_k, current_k=current_k, caching=caching)
    if not (sc.model_map or ttl or caching or history_window is not None
            or retrieval_k is not None):
        fail("nothing to change: give --model-map, --ttl, --history-window, --retrieval-k "
             "or --caching")
    with open_source(db, data) as src:
        restrict(src, lo, hi)
        res = whatif(src.con, sc, book=_book(prices), source=src.label)
    if as_json:
        print_json(res.as_dict())
        return
    from rich.table import Table

    def usd(v: Any) -> str:
        return "unpriced" if v is None else f"{v:.4f}"

    t = Table(title=f"what if: {res.source}")
    for col in ("task type", "calls", "tasks", "model before -> after", "$ before", "$ after",
                "delta", "$/task before", "$/task after"):
        t.add_column(col, justify="left" if col in ("task type", "model before -> after")
                     else "right")
    for r in res.types:
        t.add_row(r.task_type, f"{r.calls:,}", f"{r.tasks:,}",
                  f"{', '.join(r.models_before)} -> {', '.join(r.models_after)}",
                  usd(r.before_usd), usd(r.after_usd), usd(r.delta_usd),
                  usd(r.per_task(r.before_usd)), usd(r.per_task(r.after_usd)))
    t.add_row("total", "", "", "", usd(res.before_usd), usd(res.after_usd), "", "", "",
              style="bold")
    c = console()
    c.print(t)
    for a in sc.assumptions():
        c.print(f"assumption: {a}", markup=False)
    for n in (*res.notes, *(f"unpriced: {u}" for u in res.unpriced)):
        c.print(f"note: {n}", markup=False)
    c.print(QUALITY_NOTE, markup=False)


# --------------------------------------------------------------------------- checklist


def checklist_cmd(
    spec: Path | None = typer.Option(None, "--spec", help="Budget spec YAML."),
    db: Path | None = typer.Option(None, "--db", help="Usage store with the call logs."),
    data: Path | None = typer.Option(None, "--data", help="Calls Parquet (from simulate)."),
    rules: Path | None = typer.Option(None, "--rules", help="Alert rules YAML."),
    baseline: Path | None = typer.Option(None, "--baseline", help="Baseline JSON."),
    since: str | None = _SINCE, until: str | None = _UNTIL, engine: str = _ENGINE,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The seed's nine pre-deployment checks, each pass / fail / unknown with its evidence.

    Exit 1 when any item fails. --since / --until select the calls checked.
    """
    from ..analyze.checklist import run_checklist

    check_engine(engine, "checklist")
    lo, hi = time_range(since, until)

    if db is not None and data is not None:
        fail("give --db or --data, not both")
    if spec is None and db is None and data is None:
        fail("give --spec SPEC and/or call logs (--db DB or --data FILE.parquet)")
    if db is not None or data is not None:
        from ..analyze.source import open_source, restrict

        with open_source(db, data) as src:
            restrict(src, lo, hi)
            res = run_checklist(spec_path=spec, con=src.con, logs_label=src.label,
                                rules_path=rules, baseline_path=baseline)
    else:
        res = run_checklist(spec_path=spec, rules_path=rules, baseline_path=baseline)
    if as_json:
        print_json(res.as_dict())
    else:
        from rich.table import Table

        t = Table(title="pre-deployment token budget checklist", show_lines=True)
        t.add_column("#", justify="right")
        t.add_column("item")
        t.add_column("status")
        t.add_column("evidence")
        style = {"pass": "green", "fail": "bold red", "unknown": "yellow"}
        for i, it in enumerate(res.items, 1):
            t.add_row(str(i), it.title, f"[{style[it.status]}]{it.status}[/]",
                      "\n".join(it.evidence))
        console().print(t)
    if res.failed:
        raise typer.Exit(EXIT_CHECK_FAILED)


def register(app: typer.Typer) -> None:
    app.command("simulate-cache")(handles_errors(simulate_cache_cmd))
    app.command("audit")(handles_errors(audit_cmd))
    app.command("whatif")(handles_errors(whatif_cmd))
    app.command("checklist")(handles_errors(checklist_cmd))


__all__ = ["register"]
