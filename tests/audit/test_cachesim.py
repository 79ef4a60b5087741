"""Prefix-cache simulation: Mooncake acceptance figures, semantics, engine agreement, cost."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ctxbudget.analyze.cachesim import (
    Trace,
    load_mooncake,
    load_trace,
    parse_ttl,
    price_simulation,
    simulate_cache,
    trace_from_blocks,
)
from ctxbudget.errors import InputFormatError
from ctxbudget.prices import Price, Rates

MOONCAKE = "traces/mooncake_synthetic_trace.jsonl"


@pytest.fixture(scope="module")
def mooncake(data_dir: Path) -> Trace:
    return load_mooncake(data_dir / MOONCAKE)


def test_mooncake_unlimited_matches_paper(mooncake: Trace) -> None:
    res = simulate_cache(mooncake)
    assert res.requests == 3993
    assert round(res.prompt_tokens / res.requests) == 15325  # paper: average input 15,325
    # paper (Table 2): cache ratio 66% with an unlimited prefix cache
    assert abs(res.token_hit_ratio - 0.66) <= 0.03
    assert abs(res.block_hit_ratio - 0.66) <= 0.03


def test_mooncake_lru_capacity_curve(mooncake: Trace) -> None:
    full = simulate_cache(mooncake).token_hit_ratio
    at_3m = simulate_cache(mooncake, capacity_tokens=3_000_000, engine="python").token_hit_ratio
    at_50m = simulate_cache(mooncake, capacity_tokens=50_000_000,
                            engine="python").token_hit_ratio
    # paper (Figure 9): 3M tokens reach about 48% of the maximum, 50M nearly all of it
    assert 0.43 <= at_3m / full <= 0.53
    assert at_50m / full >= 0.99
    assert simulate_cache(mooncake, capacity_tokens=0, engine="python").hit_tokens == 0


def test_ttl_semantics_by_hand() -> None:
    # A then B at 200 s (hit, refreshes) then C at 450 s: within 300 s of B, not of A
    tr = trace_from_blocks([(0, ["a", "b"], 100, 200, 1), (200, ["a", "b", "c"], 100, 300, 1),
                            (450, ["a", "b", "c", "d"], 100, 350, 1)])
    for engine in ("numpy", "python", "numba"):
        if engine == "numba":
            pytest.importorskip("numba")
        res = simulate_cache(tr, ttl_s=300, engine=engine)
        assert res.hit_blocks_per_request.tolist() == [0, 2, 3], engine
        assert res.hit_tokens_per_request.tolist() == [0, 200, 300], engine
        no_refresh = trace_from_blocks([(0, ["a", "b"], 100, 200, 1),
                                        (200, ["x"], 100, 100, 1),
                                        (450, ["a", "b"], 100, 200, 1)])
        assert simulate_cache(no_refresh, ttl_s=300, engine=engine).hit_blocks == 0
    # the last block holds the rest of the prompt
    assert tr.block_tokens.tolist() == [100, 100, 100, 100, 100, 100, 100, 100, 50]


def test_prefix_stops_at_first_miss() -> None:
    tr = trace_from_blocks([(0, ["a", "b", "c"], 10, 30, 0), (1, ["a", "x", "c"], 10, 30, 0)])
    assert simulate_cache(tr).hit_blocks_per_request.tolist() == [0, 1]


def test_rows_sorted_by_time() -> None:
    tr = trace_from_blocks([(5, ["a", "b"], 10, 20, 0), (1, ["a"], 10, 10, 0)])
    assert tr.ts_s.tolist() == [1.0, 5.0]
    assert simulate_cache(tr).hit_blocks_per_request.tolist() == [0, 1]


traces = st.lists(
    st.tuples(st.floats(0, 1000), st.lists(st.integers(0, 6), min_size=0, max_size=6),
              st.integers(1, 64)),
    min_size=1, max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(rows=traces, ttl=st.sampled_from([None, 30.0, 300.0]),
       cap=st.sampled_from([None, 0, 50, 200, 10_000]))
def test_engines_agree(rows: list[tuple[float, list[int], int]], ttl: float | None,
                       cap: int | None) -> None:
    # chained ids: block k of a request is its prefix tuple, as real prefix hashes are
    built = [(t, [tuple(ks[:k + 1]) for k in range(len(ks))], size, size * len(ks), 0)
             for t, ks, size in rows]
    tr = trace_from_blocks(built)
    ref = simulate_cache(tr, ttl_s=ttl, capacity_tokens=cap, engine="python")
    assert 0 <= ref.hit_tokens <= ref.prompt_tokens
    if cap is None:
        fast = simulate_cache(tr, ttl_s=ttl, engine="numpy")
        assert fast.hit_blocks_per_request.tolist() == ref.hit_blocks_per_request.tolist()
    try:
        import numba  # noqa: F401
    except ImportError:
        return
    nb = simulate_cache(tr, ttl_s=ttl, capacity_tokens=cap, engine="numba")
    assert nb.hit_blocks_per_request.tolist() == ref.hit_blocks_per_request.tolist()


def test_more_capacity_never_hurts(mooncake: Trace) -> None:
    small = Trace(ts_s=mooncake.ts_s[:400], offsets=mooncake.offsets[:401],
                  blocks=mooncake.blocks[:mooncake.offsets[400]],
                  block_tokens=mooncake.block_tokens[:mooncake.offsets[400]],
                  prompt_tokens=mooncake.prompt_tokens[:400],
                  output_tokens=mooncake.output_tokens[:400], n_ids=mooncake.n_ids)
    hits = [simulate_cache(small, capacity_tokens=c, engine="python").hit_tokens
            for c in (0, 100_000, 1_000_000, 10_000_000, None)]
    assert hits == sorted(hits) and hits[0] == 0 and hits[-1] > 0


def test_price_with_and_without_cache_by_hand() -> None:
    tr = trace_from_blocks([(0, ["a", "b"], 1000, 2500, 100), (10, ["a", "b"], 1000, 2500, 50)])
    res = simulate_cache(tr)
    price = Price(provider="test", model="m", base=Rates(
        input_mtok=Decimal(3), cache_read_mtok=Decimal("0.3"),
        cache_write_5m_mtok=Decimal("3.75"), cache_write_1h_mtok=Decimal(6),
        output_mtok=Decimal(15)))
    cost = price_simulation(tr, res, price)
    # call 1: 2000 written + 500 uncached input + 100 out; call 2: 2000 read + 500 input + 50 out
    with_cache = (Decimal(2000) * Decimal("3.75") + Decimal(1000) * 3 + Decimal(2000)
                  * Decimal("0.3") + Decimal(150) * 15) / Decimal(1_000_000)
    without = (Decimal(5000) * 3 + Decimal(150) * 15) / Decimal(1_000_000)
    assert cost.with_cache_usd == with_cache
    assert cost.without_cache_usd == without
    assert cost.with_cache.cache_read_tokens == 2000 and cost.with_cache.input_tokens == 1000
    res_1h = simulate_cache(tr, ttl_s=3600)
    assert price_simulation(tr, res_1h, price).with_cache.cache_write_1h_tokens == 2000


def test_parse_ttl() -> None:
    assert parse_ttl("none") is None
    assert parse_ttl("5m") == 300 and parse_ttl("1h") == 3600 and parse_ttl("24h") == 86400
    assert parse_ttl("90") == 90 and parse_ttl("2m") == 120
    with pytest.raises(InputFormatError, match="--ttl"):
        parse_ttl("soon")


def test_bad_mooncake_line_is_named(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text('{"timestamp": 0, "input_length": 10, "hash_ids": [1]}\n{"timestamp": 1,\n')
    with pytest.raises(InputFormatError, match=r"t.jsonl:2"):
        load_mooncake(p)


def test_requests_format_from_cassette(data_dir: Path) -> None:
    tr = load_trace(data_dir / "api-responses" / "test_openai_chat_prompt_cache_e2e.yaml")
    res = simulate_cache(tr)
    assert res.requests == 2
    # the second call repeats the first: every block of it hits
    assert res.hit_blocks_per_request.tolist() == [0, 3]
    assert res.hit_tokens == int(np.asarray(tr.block_tokens)[3:].sum())


def test_store_format(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from ctxbudget.store import open_store
    from ctxbudget.usage import Call, Usage

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    calls = [Call(ts=t0 + timedelta(seconds=s), provider="anthropic", model="claude-sonnet-4-5",
                  usage=Usage(input_tokens=p), prefix_fingerprint=fp, session_id="s",
                  request_id=f"r{i}")
             for i, (s, fp, p) in enumerate([(0, ("h1", "h2"), 2000), (60, ("h1", "h2", "h3"),
                                                                         3000),
                                            (500, ("h1", "h9"), 2000)])]
    db = tmp_path / "u.duckdb"
    with open_store(db) as st_:
        st_.insert_calls(calls)
    tr = load_trace(db)
    assert simulate_cache(tr).hit_blocks_per_request.tolist() == [0, 2, 1]
    assert simulate_cache(tr, ttl_s=300).hit_blocks_per_request.tolist() == [0, 2, 0]


def test_cli_simulate_cache_json(data_dir: Path) -> None:
    from ctxbudget.cli.main import app

    r = CliRunner().invoke(app, ["simulate-cache", str(data_dir / MOONCAKE), "--from",
                                 "mooncake", "--capacity-tokens", "3000000", "--model",
                                 "claude-sonnet-4-5", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["capacity_tokens"] == 3_000_000 and 0.28 < d["token_hit_ratio"] < 0.35
    assert Decimal(d["cost"]["with_cache"]["usd"]) < Decimal(d["cost"]["without_cache"]["usd"])
    text = CliRunner().invoke(app, ["simulate-cache", str(data_dir / MOONCAKE), "--ttl", "5m"],
                              env={"COLUMNS": "160"})
    assert text.exit_code == 0 and "token hit ratio" in text.output and "59.5%" in text.output
    bad = CliRunner().invoke(app, ["simulate-cache", "/nonexistent.jsonl"])
    assert bad.exit_code == 2 and "not found" in bad.output
