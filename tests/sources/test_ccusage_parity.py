"""The claude-code importer reproduces ccusage@20.0.24's daily and session reports.

Reference: ``shared/data/claude-code/ccusage-{daily,session}-offline.json``, printed by
``ccusage claude {daily,session} --json --offline`` with ``TZ=UTC``. Tokens must be
equal per day and per session; cost (PriceBook + cost_of, per call at its own date)
within $0.000001.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from ctxbudget.prices import PriceBook, cost_of
from ctxbudget.sources import get_importer, import_paths
from ctxbudget.store import open_store
from ctxbudget.usage import Usage

TOKENS = {
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "cacheReadTokens": "cache_read_tokens",
}


@pytest.fixture(scope="module")
def store(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    st = open_store(tmp_path_factory.mktemp("parity") / "usage.duckdb")
    import_paths(get_importer("claude-code"), [data_dir / "claude-code"], st)
    yield st
    st.close()


def _grouped(store, key_sql: str) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    rows = store.con.execute(
        f"SELECT {key_sql} AS k, ts, model, provider, service_tier, input_tokens, "
        "cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens "
        "FROM calls"
    ).fetchall()
    book = PriceBook()
    out: dict[str, dict[str, object]] = defaultdict(
        lambda: {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0,
                 "cache_write": 0, "cost": Decimal(0), "models": set()})
    for k, ts, model, provider, tier, i, cr, w5, w1, o in rows:
        u = Usage(input_tokens=i, cache_read_tokens=cr, cache_write_5m_tokens=w5,
                  cache_write_1h_tokens=w1, output_tokens=o)
        g = out[str(k)]
        for name, v in (("input_tokens", i), ("output_tokens", o), ("cache_read_tokens", cr),
                        ("cache_write", w5 + w1)):
            g[name] += v  # type: ignore[operator]
        g["cost"] += cost_of(u, book.resolve(model, provider, ts, tier)).total_usd  # type: ignore[operator]
        g["models"].add(model)  # type: ignore[union-attr]
    return dict(out)


def _check(ours: dict[str, object], ref: dict[str, object]) -> None:
    for ref_key, our_key in TOKENS.items():
        assert ours[our_key] == ref[ref_key], (ref_key, ours[our_key], ref[ref_key])
    assert ours["cache_write"] == ref["cacheCreationTokens"]
    assert abs(ours["cost"] - Decimal(str(ref["totalCost"]))) <= Decimal("0.000001")  # type: ignore[operator]
    assert sorted(ours["models"]) == sorted(ref["modelsUsed"])  # type: ignore[arg-type]


def test_daily_matches_ccusage(store, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    ref = json.loads((data_dir / "claude-code" / "ccusage-daily-offline.json").read_text())
    ours = _grouped(store, "strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d')")
    assert sorted(ours) == sorted(d["date"] for d in ref["daily"])
    for day in ref["daily"]:
        _check(ours[day["date"]], day)


def test_sessions_match_ccusage(store, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    ref = json.loads((data_dir / "claude-code" / "ccusage-session-offline.json").read_text())
    ours = _grouped(store, "session_id")
    assert sorted(ours) == sorted(s["sessionId"] for s in ref["sessions"])
    for s in ref["sessions"]:
        _check(ours[s["sessionId"]], s)
    first_last = dict(
        (k, (a, b)) for k, a, b in store.con.execute(
            "SELECT session_id, min(ts), max(ts) FROM calls GROUP BY 1").fetchall())
    for s in ref["sessions"]:
        a, b = first_last[s["sessionId"]]
        assert a.isoformat(timespec="milliseconds").replace("+00:00", "Z") == s["firstActivity"]
        assert b.isoformat(timespec="milliseconds").replace("+00:00", "Z") == s["lastActivity"]


def test_totals_match_ccusage(store, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    ref = json.loads((data_dir / "claude-code" / "ccusage-daily-offline.json").read_text())
    totals = _grouped(store, "'all'")["all"]
    assert (totals["input_tokens"], totals["output_tokens"], totals["cache_write"],
            totals["cache_read_tokens"]) == (1040, 56515, 198421, 4075332)
    assert totals["cost"] == Decimal("2.81752335")
    _check(totals, ref["totals"] | {"modelsUsed": ["claude-sonnet-4-20250514"]})
