"""compute_two_reports: the dashboard's one-scan day / type / (day, type) equals three
compute_report calls on the same data."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ctxbudget.analyze.metrics import compute_report, compute_two_reports
from ctxbudget.analyze.sql import Filters
from ctxbudget.errors import UsageError


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_one_scan_equals_three_reports(simulate_parquet: Callable[..., Path],
                                       duck: Callable[..., Any], seed_book: Any,
                                       tz: str) -> None:
    eng = duck(data=simulate_parquet(inject=("history+40%@day4",)))
    f = Filters(tz=tz)
    day, ttype, cross = compute_two_reports(eng, "day", "type", f, seed_book)
    want_day = compute_report(eng, "day", f, seed_book, with_types=False)
    want_type = compute_report(eng, "type", f, seed_book)
    assert [r.as_dict() for r in day.rows] == [r.as_dict() for r in want_day.rows]
    assert [r.as_dict() for r in ttype.rows] == [r.as_dict() for r in want_type.rows]
    assert day.total == want_day.total == want_type.total
    assert ttype.types == want_type.types
    assert day.as_dict()["rows"] == want_day.as_dict()["rows"]
    # the (day, type) cells add up to each day and to each type, exactly
    for r in want_day.rows:
        cells = [c for c in cross if c.key.split("|")[0] == r.key]
        assert sum((c.cost_usd or Decimal(0) for c in cells), Decimal(0)) == r.cost_usd
        assert sum(c.calls for c in cells) == r.calls
    for r in want_type.rows:
        assert sum(c.calls for c in cross if c.task_type == r.key) == r.calls


def test_task_is_not_a_dimension_here(duck: Callable[..., Any],
                                      simulate_parquet: Callable[..., Path]) -> None:
    with pytest.raises(UsageError):
        compute_two_reports(duck(data=simulate_parquet()), "task", "day")
