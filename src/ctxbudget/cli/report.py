"""Analysis commands: ``report``, ``signals``, ``check``, ``baseline save``, ``demo``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from . import _daily
from ._common import (
    EXIT_CHECK_FAILED,
    EXIT_SIDE_EFFECT_FAILED,
    FORMAT_HELP,
    check_engine,
    console,
    engine_option,
    fail,
    handles_errors,
    output_format,
    print_json,
    since_option,
    time_range,
    until_option,
    write_private,
)
from ._logs import FROM_FORMATS, default_log_paths

_DB = typer.Option(None, "--db", help="Usage store (default: $CTXBUDGET_HOME/usage.duckdb).")
_DATA = typer.Option(None, "--data", help="Read calls from a Parquet file instead of a store "
                     "(a sibling NAME.tasks.parquet supplies task outcomes).")
_SINCE = since_option()
_UNTIL = until_option()
_TZ = typer.Option("UTC", "--tz", help="Time zone of the day buckets (IANA name).")
_ENGINE = engine_option()
_MASTER = typer.Option("local[2]", "--spark-master", help="Spark master URL for --engine spark.")
_PRICES = typer.Option(None, "--prices", help="Price overrides YAML (repeatable).")
_JSON = typer.Option(False, "--json", help="Print JSON (same as --format json).")
_FORMAT = typer.Option("table", "--format", help=FORMAT_HELP)
_HTML = typer.Option(None, "--html", help="Also write the HTML report here.")
_WASTE = typer.Option(True, "--waste/--no-waste", help="Compute wasted cache writes (one "
                      "more pass over the calls; skip it on huge data).")
_LIMIT = typer.Option(50, "--limit", help="Rows shown in the table or Markdown (0: all; "
                      "json and csv print all).")
_RULES = typer.Option(None, "--rules", help="Alert rules YAML.")
_BASELINE = typer.Option(None, "--baseline", help="Baseline JSON to compare.")
_TOLERANCE = typer.Option("10%", "--tolerance", help="Allowed rise over the baseline.")
_BASEFILE = typer.Argument(..., help="Where to write the baseline JSON.")
_OUT = typer.Option(Path("ctxbudget-demo"), "--out", help="Output folder.")


def _filters(since: str | None, until: str | None, tz: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from ..analyze.sql import Filters

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"--tz: unknown time zone {tz!r} (use an IANA name like Europe/Paris)")
    lo, hi = time_range(since, until)
    return Filters(since=lo, until=hi, tz=tz)


@contextmanager
def _open(db: Path | None, data: Path | None, engine: str, master: str,
          store: Any = None) -> Iterator[Any]:
    from ..analyze.engine import DuckDBEngine, SparkEngine
    from ..analyze.source import open_source

    if db is not None and data is not None:
        fail("--db and --data are exclusive: give one")
    check_engine(engine)
    src = open_source(db=db, data=data, store=store)
    try:
        if engine == "spark":
            try:
                import pyspark  # noqa: F401
            except ImportError:
                fail("--engine spark needs pyspark: pip install 'ctxbudget[spark]'")
            eng = SparkEngine(src, master=master)
            try:
                yield eng
            finally:
                eng.close()
        else:
            yield DuckDBEngine(src)
    finally:
        src.close()


def _book(prices: list[Path] | None) -> Any:
    from ..prices import PriceBook, default_pricebook

    return PriceBook(overrides=tuple(prices)) if prices else default_pricebook()


def _log_paths(fmt: str, path: Path | None) -> list[Path]:
    """The logs ``report --from FORMAT [PATH]`` reads (exit 2 when one is missing)."""
    if fmt not in FROM_FORMATS:
        fail(f"--from: {fmt!r} is not one of {', '.join(FROM_FORMATS)}")
    paths = [path] if path is not None else default_log_paths(fmt)
    missing = [p for p in paths if not p.exists()]
    if missing:
        hint = "" if path is not None else (" (set CLAUDE_CONFIG_DIR or give PATH)"
                                            if fmt == "claude-code"
                                            else " (set CODEX_HOME or give PATH)")
        fail(f"{missing[0]}: no such folder{hint}")
    return paths


def _import_new(fmt: str, paths: list[Path], db: Path | None, quiet: bool) -> Any:
    """Open the store and import what is new under ``paths`` into it; return the open
    store (the report reads the same connection)."""
    from ..errors import InputFormatError
    from ..sources import get_importer, import_paths
    from ..store import open_store

    store = open_store(db)
    try:
        stats = import_paths(get_importer(fmt), paths, store)
    except InputFormatError:
        store.close()
        raise
    if not quiet:
        grown = f", {stats.appended_files:,} grown" if stats.appended_files else ""
        sys.stderr.write(
            f"imported {fmt}: {stats.accepted:,} calls from {stats.files:,} files read{grown}, "
            f"{stats.unchanged_files:,} unchanged"
            + (f", {stats.rejected:,} lines rejected" if stats.rejected else "") + "\n")
    return store


def report(
    path: Path | None = typer.Argument(None, metavar="[PATH]", help="With --from: the log "
                                       "folder or file (default: the format's usual folder)."),
    from_: str | None = typer.Option(None, "--from", help="First import what is new from "
                                     "these logs into the store (claude-code: "
                                     "$CLAUDE_CONFIG_DIR or ~/.claude; codex: "
                                     "$CODEX_HOME/sessions), then report: one command."),
    by: str = typer.Option("task", "--by", help="task, type, model, day or session."),
    since: str | None = _SINCE, until: str | None = _UNTIL, tz: str = _TZ,
    db: Path | None = _DB, data: Path | None = _DATA,
    html: Path | None = _HTML,
    engine: str = _ENGINE, spark_master: str = _MASTER, prices: list[Path] | None = _PRICES,
    limit: int = _LIMIT,
    waste: bool = _WASTE,
    fmt: str = _FORMAT,
    as_json: bool = _JSON,
) -> None:
    """Cost and cache metrics per task, type, model, day or session (priced per call date)."""
    from ..analyze.metrics import compute_report
    from ..analyze.sql import DIMENSIONS

    out = output_format(fmt, as_json)
    if by not in DIMENSIONS:
        fail(f"--by: {by!r} is not one of {', '.join(DIMENSIONS)}")
    if limit < 0:
        fail(f"--limit: {limit} is negative (0 shows all rows)")
    f = _filters(since, until, tz)
    logs = None
    if from_ is not None:
        if data is not None or engine != "duckdb":
            fail("--from imports into the store: it does not combine with --data or "
                 "--engine spark")
        logs = _log_paths(from_, path)
    elif path is not None:
        fail(f"{path}: a PATH argument needs --from FORMAT (e.g. --from claude-code)")
    summary = _daily.eligible(by=by, since=since, until=until, tz=tz, data=data, engine=engine,
                              prices=prices, html=html, from_=from_)
    if summary and _daily.run(db=db, logs=logs, out=out, limit=limit, wasted=waste):
        return
    book = _book(prices)
    every = out in ("json", "csv")
    store = None
    if from_ is not None:
        assert logs is not None
        store = _import_new(from_, logs, db, quiet=out != "table")
    with _open(db, data, engine, spark_master, store) as eng:
        # the table shows the first --limit rows: the others stay in the engine
        rep = compute_report(eng, by, f, book, source=eng.source.label, wasted=waste,
                             rows_limit=None if every or not limit else limit)
        if html is not None:
            _write_html(eng, f, book, html)
        if summary:
            _write_summary(eng, book)
    _daily.render(rep, out, limit)
    if html is not None:
        sys.stderr.write(f"HTML report: {html}\n")


def _write_summary(eng: Any, book: Any) -> None:
    """Write the day summary of the store the report just read (see analyze.summary);
    a store it cannot represent, or a failure, just leaves none."""
    import logging

    from ..analyze._summary_build import build_summary
    from ..analyze.metrics import usage_missing_calls
    from ..analyze.summary import enabled
    from ..store.pending import pending_path

    store = eng.source._owned
    if store is None or not enabled() or pending_path(store.path).exists():
        return
    try:
        spool = {str(r[0]): int(r[1]) for r in eng.source.con.execute(
            'SELECT file, "offset" FROM spool_offsets WHERE NOT done').fetchall()}
        build_summary(eng.source.con, store.path, book, spool=spool,
                      quarantined=store.quarantined(),
                      usage_missing=usage_missing_calls(eng, _filters(None, None, "UTC")))
    except Exception as exc:  # a cache: the report stands without it
        logging.getLogger(__name__).debug("no day summary: %s", exc)


def _write_html(eng: Any, f: Any, book: Any, path: Path) -> None:
    from ..analyze.dashboard import compute_dashboard
    from ..report.html import render_html

    d = compute_dashboard(eng, f, book, source=eng.source.label)
    write_private(path, render_html(d))


def signals(
    since: str | None = _SINCE, until: str | None = _UNTIL, tz: str = _TZ,
    db: Path | None = _DB, data: Path | None = _DATA,
    engine: str = _ENGINE, spark_master: str = _MASTER, prices: list[Path] | None = _PRICES,
    alpha: float = typer.Option(0.01, "--alpha", help="Significance of the rising-cost test."),
    min_samples: int = typer.Option(20, "--min-samples",
                                    help="Fewer tasks in either window: no rising-cost test."),
    max_output_ratio: float = typer.Option(3.0, "--max-output-ratio",
                                           help="Output / prompt tokens that counts as heavy."),
    fmt: str = _FORMAT,
    as_json: bool = _JSON,
) -> None:
    """The four warning signals, each with evidence and a suggested fix."""
    from ..analyze.signals import SignalConfig, compute_signals

    out = output_format(fmt, as_json)
    if not 0 < alpha < 1:
        fail(f"--alpha: {alpha} is not between 0 and 1 (e.g. 0.01)")
    if min_samples < 1:
        fail(f"--min-samples: {min_samples} is not a positive number of tasks")
    cfg = SignalConfig(alpha=alpha, min_tasks=min_samples, max_output_ratio=max_output_ratio)
    with _open(db, data, engine, spark_master) as eng:
        found = compute_signals(eng, _filters(since, until, tz), _book(prices), cfg)
    if out == "json":
        from ..report.json import to_jsonable

        print_json({"signals": to_jsonable(found)})
    elif out == "csv":
        from ..report.formats import write_csv
        from ..report.terminal import signals_csv_rows

        write_csv(signals_csv_rows(found), sys.stdout)
    elif out == "markdown":
        from ..report.terminal import signals_markdown

        sys.stdout.write(signals_markdown(found))
    else:
        from ..report.terminal import SignalsView

        console().print(SignalsView(found))


def check(
    rules: Path | None = _RULES,
    baseline: Path | None = _BASELINE,
    tolerance: str = _TOLERANCE,
    confidence: float = typer.Option(
        0.95, "--confidence", help="Confidence that a breach is real (one-sided; 0.5 < c < 1)."),
    min_samples: int = typer.Option(
        30, "--min-samples", help="Fewer tasks than this on either side: inconclusive "
                                  "(rules may set their own min_samples)."),
    fail_inconclusive: bool = typer.Option(
        False, "--fail-inconclusive", help="Fail (exit 1) when a comparison is inconclusive."),
    webhook: str | None = typer.Option(
        None, "--webhook", help="POST the result here when the check fails (retried; exit 3 "
                                "if it cannot be delivered)."),
    webhook_format: str = typer.Option(
        "auto", "--webhook-format", help="json, slack, teams or auto (from the URL's host)."),
    since: str | None = _SINCE, until: str | None = _UNTIL,
    db: Path | None = _DB, data: Path | None = _DATA,
    engine: str = _ENGINE, spark_master: str = _MASTER, prices: list[Path] | None = _PRICES,
    fmt: str = _FORMAT,
    as_json: bool = _JSON,
) -> None:
    """Evaluate alert rules and/or a baseline; exit 1 when any is breached (CI gate).

    Exit codes: 0 pass, 1 breach (or inconclusive, --fail-inconclusive), 2 user error,
    3 a side effect failed (webhook, $GITHUB_STEP_SUMMARY) whatever the verdict.
    """
    from ..analyze.rules import (
        check_baseline,
        check_rules,
        load_rules,
        merge_results,
        parse_tolerance,
        task_metrics,
    )

    out = output_format(fmt, as_json)
    if rules is None and baseline is None:
        fail("give --rules FILE and/or --baseline FILE")
    from ..analyze.notify import WEBHOOK_FORMATS

    if webhook_format not in WEBHOOK_FORMATS:
        fail(f"--webhook-format: {webhook_format!r} is not one of {', '.join(WEBHOOK_FORMATS)}")
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        fail(f"--webhook: {webhook!r} is not an http(s) URL")
    if not 0.5 < confidence < 1:
        fail(f"--confidence: {confidence} is not between 0.5 and 1 (e.g. 0.95)")
    if min_samples < 1:
        fail(f"--min-samples: {min_samples} is not a positive number of tasks")
    loaded = load_rules(rules) if rules is not None else []
    tol = parse_tolerance(tolerance)
    with _open(db, data, engine, spark_master) as eng:
        tasks = task_metrics(eng, _filters(since, until, "UTC"), _book(prices))
    parts = []
    if loaded:
        parts.append(check_rules(loaded, tasks, min_samples=min_samples, confidence=confidence))
    if baseline is not None:
        parts.append(check_baseline(baseline, tasks, tol, min_samples, confidence=confidence))
    result = merge_results(parts, fail_inconclusive=fail_inconclusive)
    from ..report.terminal import check_markdown

    if out == "json":
        from ..report.json import to_jsonable

        print_json(to_jsonable(result))
    elif out == "csv":
        from ..report.formats import write_csv
        from ..report.terminal import check_csv_rows

        write_csv(check_csv_rows(result), sys.stdout)
    elif out == "markdown":
        sys.stdout.write(check_markdown(result))
    else:
        from ..report.terminal import CheckView

        console().print(CheckView(result))
    side_ok = _step_summary(check_markdown(result))
    if not result.ok and webhook:
        side_ok = _notify(webhook, webhook_format, result) and side_ok
    if not side_ok:
        raise typer.Exit(EXIT_SIDE_EFFECT_FAILED)
    if not result.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _step_summary(markdown: str) -> bool:
    """Append the summary to $GITHUB_STEP_SUMMARY when set; False if it cannot be."""
    import os

    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return True
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    except OSError as exc:
        sys.stderr.write(f"warning: GITHUB_STEP_SUMMARY {path}: {exc.strerror or exc}\n")
        return False
    return True


def _notify(url: str, fmt: str, result: Any) -> bool:
    """POST the result to the webhook; False (one line on stderr) if it failed."""
    from ..analyze.notify import WebhookError, post_webhook
    from ..report.terminal import check_markdown

    try:
        post_webhook(url, result, fmt=fmt, summary=check_markdown(result))
    except WebhookError as exc:
        sys.stderr.write(f"warning: {exc}\n")
        return False
    return True


def baseline_save(
    file: Path = _BASEFILE,
    since: str | None = _SINCE, until: str | None = _UNTIL,
    db: Path | None = _DB, data: Path | None = _DATA,
    engine: str = _ENGINE, spark_master: str = _MASTER, prices: list[Path] | None = _PRICES,
    as_json: bool = _JSON,
) -> None:
    """Store per-task cost and tokens per task type (with reference p50 / p95 / mean) for
    `check --baseline`."""
    from ..analyze.rules import save_baseline, task_metrics

    with _open(db, data, engine, spark_master) as eng:
        tasks = task_metrics(eng, _filters(since, until, "UTC"), _book(prices))
        label = eng.source.label
    if not tasks:
        fail("no tasks in the selected data: nothing to save as a baseline")
    doc = save_baseline(file, tasks, source=label, filters={"since": since, "until": until})
    if as_json:
        print_json({k: v for k, v in doc.items() if k not in ("all", "types")}
                   | {"types": {k: v["tasks"] for k, v in doc["types"].items()}, "file": str(file)})
    else:
        console().print(f"baseline of {doc['created_from_tasks']:,} tasks "
                        f"({len(doc['types'])} types) written to {file}")


def demo(
    out: Path = _OUT,
    seed: int = typer.Option(7, "--seed", help="Simulation seed."),
    as_json: bool = _JSON,
) -> None:
    """Simulate a week of an example agent with a mid-week regression, then analyze it."""
    run_demo(out, seed=seed, as_json=as_json)


#: The demo's example agent: a support / research assistant on Claude Sonnet 4.6 at the
#: seed article's 2026 prices, 8 tools, history cached, 3-20 turns per task.
DEMO_SPEC = """\
name: demo support agent
prices: prices.yaml
models:
  - model: claude-sonnet-4-6
    provider: anthropic
fixed:
  system_prompt: {tokens: 1800}
  tools: {tokens: 250, count: 8}
  safety: {tokens: 200}
variable:
  history: {accumulate: [user_message, output, tool_outputs]}
  retrieved: {chunks: 4, chunk_tokens: 500}
  user_message: {tokens: 150}
  tool_outputs: {tokens: 300}
  output: {tokens: 450}
session:
  turns: {distribution: uniform, min: 3, max: 20}
  seconds_between_calls: 40
caching:
  cacheable: [system_prompt, tools, safety]
  history: true
  ttl: 5m
task_types: {support: 3, research: 1}
"""

DEMO_PRICES = """\
prices:
  - model: claude-sonnet-4-6
    provider: anthropic
    effective_from: 2026-01-01
    source: seed pricing table, mid-2026
    input_mtok: 3.00
    cache_read_mtok: 0.30
    cache_write_5m_mtok: 3.75
    cache_write_1h_mtok: 6.00
    output_mtok: 15.00
"""

DEMO_RULES = """\
rules:
  - name: support p95 cost per task
    metric: p95_cost_per_task
    scope: {task_type: support}
    window: 3d
    threshold: 0.40
    min_samples: 50
  - name: cache hit rate
    metric: cache_hit_rate
    op: "<"
    window: 3d
    threshold: 0.30
    min_samples: 50
"""

#: The regression injected mid-week: from day 4 the support agent's prompt prefix
#: changes on every call (think: a timestamp interpolated into the system prompt).
DEMO_INJECT = ("cache-break@day4:support",)


def run_demo(out: Path, *, seed: int = 7, as_json: bool = False) -> dict[str, Any]:
    """Simulate, save a baseline of the first days, then report, signals, check and HTML."""
    import time

    from ..analyze.engine import DuckDBEngine
    from ..analyze.metrics import compute_report
    from ..analyze.rules import (
        check_baseline,
        check_rules,
        load_rules,
        merge_results,
        save_baseline,
        task_metrics,
    )
    from ..analyze.signals import compute_signals
    from ..analyze.source import open_source
    from ..analyze.sql import Filters
    from ..plan.simulate import iter_simulate, write_parquet
    from ..prices import PriceBook

    began = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    spec, prices, rules = out / "agent.yaml", out / "prices.yaml", out / "rules.yaml"
    spec.write_text(DEMO_SPEC, encoding="utf-8")
    prices.write_text(DEMO_PRICES, encoding="utf-8")
    rules.write_text(DEMO_RULES, encoding="utf-8")
    start = datetime(2026, 3, 2, tzinfo=UTC)
    chunks, tasks_fn = iter_simulate(spec, tasks=2800, days=7, seed=seed, failure_rate=0.08,
                                     inject=DEMO_INJECT, start=start)
    calls_file = out / "calls.parquet"
    _, _, n_calls = write_parquet(chunks, tasks_fn, calls_file)
    book = PriceBook(overrides=(prices,))
    html_file = out / "report.html"
    baseline_file = out / "baseline.json"
    say = console() if not as_json else None
    if say:
        say.print(f"[bold]ctxbudget demo[/]: a week of a support/research agent, "
                  f"{n_calls:,} calls; regression injected: {', '.join(DEMO_INJECT)} "
                  f"(day 4 = {(start + timedelta(days=3)).date()})\n")
    with open_source(data=calls_file) as src:
        eng = DuckDBEngine(src)
        first3 = Filters(until=start + timedelta(days=3))
        save_baseline(baseline_file, task_metrics(eng, first3, book))
        rep = compute_report(eng, "day", Filters(), book, source=str(calls_file))
        found = compute_signals(eng, Filters(), book)
        last3 = Filters(since=start + timedelta(days=4))
        tasks = task_metrics(eng, last3, book)
        result = merge_results([check_rules(load_rules(rules), tasks),
                                check_baseline(baseline_file, tasks, 0.10, min_samples=20)])
        _write_html(eng, Filters(), book, html_file)
    summary = {"out": str(out), "calls": n_calls, "calls_file": str(calls_file),
               "html": str(html_file), "baseline": str(baseline_file), "rules": str(rules),
               "signals": [s.kind + ":" + s.task_type for s in found],
               "check_ok": result.ok, "breaches": len(result.breaches),
               "seconds": round(time.perf_counter() - began, 2)}
    if say is None:
        print_json(summary)
        return summary
    from ..report.terminal import CheckView, ReportView, SignalsView

    say.print(ReportView(rep, limit=None))
    say.print("\n[bold]Warning signals[/] (ctxbudget signals)")
    say.print(SignalsView(found))
    say.print("\n[bold]CI gate[/] (ctxbudget check --rules rules.yaml --baseline baseline.json "
              "--tolerance 10%, last 3 days vs the first 3)")
    say.print(CheckView(result))
    say.print(f"\n(in CI, `ctxbudget check` would exit {0 if result.ok else 1})")
    say.print(f"\n[bold green]HTML report:[/] {html_file}")
    say.print(f"Try: ctxbudget report --data {calls_file} --prices {prices} --by type")
    return summary


def register(app: typer.Typer) -> None:
    app.command("report")(handles_errors(report))
    app.command("signals")(handles_errors(signals))
    app.command("check")(handles_errors(check))
    app.command("demo")(handles_errors(demo))
    base = typer.Typer(name="baseline", help="Save cost baselines for `check --baseline`.",
                       no_args_is_help=True)
    base.command("save")(handles_errors(baseline_save))
    app.add_typer(base, name="baseline")
