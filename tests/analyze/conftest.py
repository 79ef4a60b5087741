"""Fixtures for analyze tests: seeded synthetic stores and `ctxbudget simulate` Parquet."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parents[1]


def _synth() -> Any:
    spec = importlib.util.spec_from_file_location("ctxb_test_synth", _HERE / "synth.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ctxb_test_synth"] = mod
    spec.loader.exec_module(mod)
    return mod


synth = _synth()


@pytest.fixture(scope="session")
def synth_mod() -> Any:
    return synth


@pytest.fixture(scope="session")
def make_store(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Build (once per argument set) a store from :func:`synth.make_workload`."""
    cache: dict[str, Path] = {}

    def build(**kw: Any) -> Path:
        key = repr(sorted(kw.items()))
        if key not in cache:
            p = tmp_path_factory.mktemp("store") / "usage.duckdb"
            calls, tasks = synth.make_workload(**kw)
            synth.write_store(p, calls, tasks)
            cache[key] = p
        return cache[key]

    return build


@pytest.fixture(scope="session")
def simulate_parquet(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`ctxbudget simulate` of examples/seed-example.yaml to Parquet (cached per arguments)."""
    from ctxbudget.plan.simulate import iter_simulate, write_parquet

    cache: dict[str, Path] = {}

    def build(*, inject: tuple[str, ...] = (), seed: int = 1, tasks: int = 400,
              days: int = 7, failure_rate: float = 0.1) -> Path:
        key = repr((inject, seed, tasks, days, failure_rate))
        if key not in cache:
            out = tmp_path_factory.mktemp("sim") / "calls.parquet"
            chunks, tasks_fn = iter_simulate(
                ROOT / "examples" / "seed-example.yaml", tasks=tasks, days=days, seed=seed,
                failure_rate=failure_rate, inject=list(inject),
                task_types="support:1,research:1")
            write_parquet(chunks, tasks_fn, out)
            cache[key] = out
        return cache[key]

    return build


@pytest.fixture(scope="session")
def seed_book() -> Any:
    """The price book the seed example uses (examples/prices-2026.yaml overrides)."""
    from ctxbudget.prices import PriceBook

    return PriceBook(overrides=[ROOT / "examples" / "prices-2026.yaml"])


@pytest.fixture
def duck() -> Iterator[Callable[..., Any]]:
    """Open a DuckDB engine over a store or Parquet file; closed after the test."""
    from ctxbudget.analyze.engine import DuckDBEngine
    from ctxbudget.analyze.source import open_source

    opened: list[Any] = []

    def open_(*, db: Path | None = None, data: Path | None = None) -> Any:
        src = open_source(db=db, data=data)
        opened.append(src)
        return DuckDBEngine(src)

    yield open_
    for s in opened:
        s.close()
