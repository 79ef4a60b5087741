"""One vocabulary across commands: walks every registered command (new ones included)
and fails on a second spelling of the same concept, a short flag with two meanings, a
name that is a flag here and takes a value there, or ``<bool>`` in the help."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ctxbudget.cli.main import build_app

#: canonical spelling -> spellings that mean the same and must not appear.
SYNONYMS: dict[str, set[str]] = {
    "--min-samples": {"--min-tasks", "--min-task", "--min-n", "--min-count", "--min-sample",
                      "--minimum-samples", "--min-calls"},
    "--model": {"--price-model", "--pricing-model", "--model-name"},
    "--format": {"--output-format", "--out-format", "--fmt"},
    "--from": {"--input-format", "--in-format", "--source-format", "--log-format"},
    "--db": {"--store", "--database", "--db-path", "--duckdb"},
    "--data": {"--parquet", "--data-file"},
    "--since": {"--start-time", "--from-date", "--after", "--begin"},
    "--until": {"--end", "--end-time", "--to-date", "--before"},
    "--out": {"--output-file", "--out-file", "--output-path"},
    "--prices": {"--price-file", "--prices-file", "--price-overrides", "--overrides"},
    "--json": {"--as-json", "--json-output"},
    "--tolerance": {"--tol", "--allowed-rise"},
    "--limit": {"--top", "--max-rows", "--rows"},
    "--tz": {"--timezone", "--time-zone"},
    "--ttl": {"--cache-ttl", "--ttl-seconds"},
    "--confidence": {"--confidence-level", "--conf"},
}
#: the reading commands of the analysis layer: same filters, engine and output options
_READ = {"--since", "--until", "--engine", "--db", "--data", "--prices", "--json"}
READING: dict[str, set[str]] = {
    **{cmd: _READ | {"--format"} for cmd in ("report", "signals", "check")},
    "baseline save": _READ,  # writes a file; --json prints its summary
}


def _commands() -> Iterator[tuple[str, Any]]:
    def walk(c: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
        subs = getattr(c, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), c

    yield from walk(typer.main.get_command(build_app()), [])


def _options(cmd: Any) -> Iterator[Any]:
    for p in cmd.params:
        if getattr(p, "param_type_name", "") == "option" and p.name != "help":
            yield p


COMMANDS = list(_commands())


def test_walks_every_registered_command() -> None:
    names = {n for n, _ in COMMANDS}
    assert {"report", "signals", "check", "baseline save", "simulate", "cost"} <= names
    assert len(names) >= 20


def test_no_second_spelling_of_a_concept() -> None:
    where: dict[str, set[str]] = defaultdict(set)
    for name, cmd in COMMANDS:
        for p in _options(cmd):
            for o in (*p.opts, *p.secondary_opts):
                where[o].add(name)
    bad = [f"{alt} (in {', '.join(sorted(where[alt]))}) is spelled {canon} elsewhere"
           for canon, alts in SYNONYMS.items() for alt in alts if alt in where]
    assert not bad, bad

    # spellings that differ only by word order or a plural are the same concept
    def norm(o: str) -> tuple[str, ...]:
        return tuple(sorted(w.rstrip("s") for w in o.lstrip("-").split("-")))

    forms: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for o in where:
        if o.startswith("--"):
            forms[norm(o)].add(o)
    clashes = [sorted(v) for v in forms.values() if len(v) > 1]
    assert not clashes, clashes


def test_short_flags_and_kinds_are_consistent() -> None:
    short: dict[str, set[str]] = defaultdict(set)
    kind: dict[str, set[str]] = defaultdict(set)
    for _name, cmd in COMMANDS:
        for p in _options(cmd):
            longs = [o for o in p.opts if o.startswith("--")]
            for o in p.opts:
                if not o.startswith("--"):
                    short[o].add(longs[0] if longs else "?")
            for o in (*longs, *p.secondary_opts):
                kind[o].add("flag" if p.is_flag else "value")
    assert not {s: v for s, v in short.items() if len(v) > 1}
    assert not {o: v for o, v in kind.items() if len(v) > 1}


@pytest.mark.parametrize("name", [n for n, _ in COMMANDS])
def test_help_has_no_bool_placeholder(name: str) -> None:
    r = CliRunner().invoke(build_app(), [*name.split(), "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "<bool>" not in r.output
    assert not re.search(r"--\w[\w-]*\s+BOOLEAN", r.output)


#: Commands with --db / --data that write the store rather than read it.
WRITERS = {"import", "ingest", "simulate"}


def test_reading_commands_share_filters_engine_and_formats() -> None:
    by_name = dict(COMMANDS)
    for cmd, need in READING.items():
        have = {o for p in _options(by_name[cmd]) for o in p.opts}
        assert need <= have, (cmd, sorted(need - have))
    for name, cmd in COMMANDS:  # a range is always both ends
        have = {o for p in _options(cmd) for o in p.opts}
        assert ("--since" in have) == ("--until" in have), name


def test_every_command_reading_the_store_takes_a_range_and_an_engine() -> None:
    """Whatever reads the store (--db) or call Parquet (--data) takes --since, --until and
    --engine, new commands included."""
    readers = []
    for name, cmd in COMMANDS:
        have = {o for p in _options(cmd) for o in p.opts}
        if name in WRITERS or not have & {"--db", "--data"}:
            continue
        readers.append(name)
        missing = {"--since", "--until", "--engine"} - have
        assert not missing, (name, sorted(missing))
    assert {"report", "audit", "whatif", "checklist", "export", "serve"} <= set(readers)


def test_duckdb_only_commands_refuse_spark_in_one_line(tmp_path: Any) -> None:
    runner = CliRunner()
    for name in ("audit", "whatif", "checklist", "export", "serve"):
        r = runner.invoke(build_app(), [*name.split(), "--engine", "spark"])
        assert r.exit_code == 2, (name, r.output)
        assert r.stderr.count("\n") == 1 and "runs on DuckDB only" in r.stderr, r.stderr
        r = runner.invoke(build_app(), [*name.split(), "--engine", "presto"])
        assert r.exit_code == 2 and "not one of duckdb, spark" in r.stderr, r.stderr


def test_format_means_output_format_everywhere() -> None:
    from ctxbudget.cli._common import FORMATS

    for name, cmd in COMMANDS:
        for p in _options(cmd):
            if "--format" in p.opts:
                assert all(f in (p.help or "") for f in FORMATS), (name, p.help)


def test_ttl_values_are_spelled_alike() -> None:
    from ctxbudget.analyze.cachesim import parse_ttl

    assert (parse_ttl("5m"), parse_ttl("1h")) == (300, 3600)
    for name, cmd in COMMANDS:
        for p in _options(cmd):
            if "--ttl" in p.opts:
                assert "5m" in (p.help or "") and "1h" in (p.help or ""), name
