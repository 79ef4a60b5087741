"""What-if replay: exact re-pricing per task type, and each re-shaping lever by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ctxbudget.analyze.source import open_source
from ctxbudget.analyze.whatif import Scenario, whatif
from ctxbudget.errors import InputFormatError
from ctxbudget.prices import PriceBook
from ctxbudget.store import open_store
from ctxbudget.usage import Call, Usage

PRICES = """
prices:
  - {model: big-model, provider: acme, input_mtok: 3, cache_read_mtok: 0.3,
     cache_write_5m_mtok: 3.75, cache_write_1h_mtok: 6, output_mtok: 15}
  - {model: small-model, provider: acme, input_mtok: 1, cache_read_mtok: 0.1,
     cache_write_5m_mtok: 1.25, cache_write_1h_mtok: 2, output_mtok: 5}
"""
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
M = Decimal(1_000_000)


def _calls() -> list[Call]:
    out = []
    for i, (ttype, gap, u, comps, turn) in enumerate([
        ("support", 0, Usage(input_tokens=1000, cache_write_5m_tokens=2000, output_tokens=300),
         {"system_prompt": 500, "tools": 1500, "history": 0, "retrieved": 1000}, 1),
        ("support", 30, Usage(input_tokens=1800, cache_read_tokens=2000, output_tokens=200),
         {"system_prompt": 500, "tools": 1500, "history": 800, "retrieved": 1000}, 2),
        ("support", 600, Usage(input_tokens=2600, cache_write_5m_tokens=2000, output_tokens=100),
         {"system_prompt": 500, "tools": 1500, "history": 1600, "retrieved": 1000}, 3),
        ("research", 0, Usage(input_tokens=5000, output_tokens=1000), None, None),
    ]):
        sess = "s-support" if ttype == "support" else "s-research"
        out.append(Call(ts=T0 + timedelta(seconds=sum([0, 30, 600][:i + 1]) if i < 3 else 0),
                        provider="acme", model="big-model", usage=u, task_id=f"t-{sess}",
                        session_id=sess, task_type=ttype, request_id=f"r{i}",
                        components=comps, turn=turn))
        del gap
    return out


@pytest.fixture()
def env(tmp_path: Path) -> tuple[Path, PriceBook]:
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    db = tmp_path / "u.duckdb"
    with open_store(db) as st:
        st.insert_calls(_calls())
    return db, PriceBook(overrides=[prices])


def run(db: Path, book: PriceBook, sc: Scenario) -> dict[str, object]:
    with open_source(db) as src:
        res = whatif(src.con, sc, book=book)
    return {t.task_type: t for t in res.types} | {"_res": res}


def usd(u: Usage, r: tuple[str, str, str, str, str]) -> Decimal:
    rates = [Decimal(x) for x in r]
    return sum((Decimal(getattr(u, b)) * rate for b, rate in zip(
        ("input_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
         "output_tokens"), rates, strict=True)), Decimal(0)) / M


BIG = ("3", "0.3", "3.75", "6", "15")
SMALL = ("1", "0.1", "1.25", "2", "5")


def test_model_map_changes_only_that_type_by_the_price_ratio(env: tuple[Path, PriceBook]
                                                             ) -> None:
    db, book = env
    r = run(db, book, Scenario(model_map={"support": "small-model"}))
    sup, res_ = r["support"], r["research"]
    support_usage = sum((c.usage for c in _calls() if c.task_type == "support"), Usage())
    assert sup.before_usd == usd(support_usage, BIG)  # type: ignore[attr-defined]
    assert sup.after_usd == usd(support_usage, SMALL)  # type: ignore[attr-defined]
    assert sup.after_usd * 3 == sup.before_usd  # type: ignore[attr-defined]
    assert sup.before == sup.after  # type: ignore[attr-defined]
    assert res_.before_usd == res_.after_usd == usd(  # type: ignore[attr-defined]
        Usage(input_tokens=5000, output_tokens=1000), BIG)
    assert sup.models_after == ("small-model",)  # type: ignore[attr-defined]
    # by hand: 5400 input, 2000 read, 4000 writes, 600 output at $3 / $0.3 / $3.75 / $15
    assert sup.before_usd == Decimal("0.0408")  # type: ignore[attr-defined]


def test_caching_off(env: tuple[Path, PriceBook]) -> None:
    db, book = env
    sup = run(db, book, Scenario(caching="off"))["support"]
    assert sup.after == Usage(input_tokens=5400 + 6000, output_tokens=600)  # type: ignore[attr-defined]
    assert sup.after_usd == Decimal(11400 * 3 + 600 * 15) / M  # type: ignore[attr-defined]


def test_ttl_1h_turns_the_rewrite_after_a_10_minute_gap_into_a_read(
        env: tuple[Path, PriceBook]) -> None:
    db, book = env
    sup = run(db, book, Scenario(ttl="1h"))["support"]
    # call 3 came 600 s after call 2 (whose cached prefix was 2000 tokens): read, not written
    assert sup.after == Usage(input_tokens=5400, cache_read_tokens=4000,  # type: ignore[attr-defined]
                              cache_write_1h_tokens=2000, output_tokens=600)


def test_history_window(env: tuple[Path, PriceBook]) -> None:
    db, book = env
    sup = run(db, book, Scenario(history_window=1))["support"]
    # turn 3 keeps 1/2 of its 1600 history tokens: 800 fewer uncached input tokens
    assert sup.after.input_tokens == 5400 - 800  # type: ignore[attr-defined]
    assert sup.after.cache_read_tokens == 2000  # type: ignore[attr-defined]


def test_retrieval_k(env: tuple[Path, PriceBook]) -> None:
    db, book = env
    sup = run(db, book, Scenario(retrieval_k=2, current_k=5))["support"]
    assert sup.after.input_tokens == 5400 - 3 * 600  # type: ignore[attr-defined]
    with pytest.raises(InputFormatError, match="current-k"):
        run(db, book, Scenario(retrieval_k=2))


def test_caching_on_for_uncached_calls(tmp_path: Path, env: tuple[Path, PriceBook]) -> None:
    db, book = env
    with open_store(db) as st:
        st.insert_calls([Call(ts=T0 + timedelta(seconds=s), provider="acme", model="big-model",
                              usage=Usage(input_tokens=3000, output_tokens=10),
                              session_id="s-new", task_id="t-new", task_type="chat",
                              request_id=f"n{s}", components={"system_prompt": 1000,
                                                              "history": 2000})
                         for s in (0, 60, 400)])
    chat = run(db, book, Scenario(caching="on"))["chat"]
    # written at the first call, read 60 s later, written again after the 340 s gap
    assert chat.after == Usage(input_tokens=6000, cache_read_tokens=1000,  # type: ignore[attr-defined]
                               cache_write_5m_tokens=2000, output_tokens=30)


def test_cli_whatif_json(env: tuple[Path, PriceBook], tmp_path: Path) -> None:
    from ctxbudget.cli.main import app

    db, _ = env
    r = CliRunner().invoke(app, ["whatif", "--db", str(db), "--model-map",
                                 "support=small-model", "--prices",
                                 str(tmp_path / "prices.yaml"), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert "Quality is not assessed" in d["quality"] and d["assumptions"]
    by = {t["task_type"]: t for t in d["types"]}
    assert Decimal(by["support"]["before_usd"]) == 3 * Decimal(by["support"]["after_usd"])
    bad = CliRunner().invoke(app, ["whatif", "--db", str(db), "--model-map", "support"])
    assert bad.exit_code == 2 and "TASK_TYPE=MODEL" in bad.output


@settings(max_examples=30, deadline=None)
@given(usages=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]),
                                 st.lists(st.integers(0, 200_000), min_size=5, max_size=5)),
                       min_size=1, max_size=12),
       factor=st.sampled_from(["0.5", "0.25", "0.2", "2", "1.25"]))
def test_model_map_ratio_property(tmp_path_factory: pytest.TempPathFactory,
                                  usages: list[tuple[str, list[int]]], factor: str) -> None:
    import duckdb

    from ctxbudget.store import calls_to_arrow

    f = Decimal(factor)
    rates = [Decimal(x) for x in BIG]
    scaled = [r * f for r in rates]
    p = tmp_path_factory.mktemp("prices") / "p.yaml"
    p.write_text(PRICES + "  - {model: scaled-model, provider: acme, " + ", ".join(
        f"{k}: {v}" for k, v in zip(("input_mtok", "cache_read_mtok", "cache_write_5m_mtok",
                                      "cache_write_1h_mtok", "output_mtok"), scaled,
                                     strict=True)) + "}\n")
    calls = [Call(ts=T0 + timedelta(seconds=i), provider="acme", model="big-model",
                  usage=Usage(input_tokens=u[0], cache_read_tokens=u[1],
                              cache_write_5m_tokens=u[2], cache_write_1h_tokens=u[3],
                              output_tokens=u[4]),
                  task_type=t, task_id=f"t{i}", request_id=f"r{i}")
             for i, (t, u) in enumerate(usages)]
    con = duckdb.connect()
    con.register("calls", calls_to_arrow(calls))
    res = whatif(con, Scenario(model_map={"a": "scaled-model"}),
                 book=PriceBook(overrides=[p]))
    for t in res.types:
        assert t.before_usd is not None and t.after_usd is not None
        assert t.before_usd == usd(sum((c.usage for c in calls if c.task_type == t.task_type),
                                       Usage()), BIG)
        expected = t.before_usd * f if t.task_type == "a" else t.before_usd
        assert t.after_usd == expected
