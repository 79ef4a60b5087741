"""The fuzz run's tally, printed at the end of the session (the acceptance of issue #18
asks for the number of examples run)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

#: Examples run per target, and tracebacks seen (filled by test_fuzz_inputs).
TALLY: dict[str, Counter[str]] = {"examples": Counter(), "tracebacks": Counter(),
                                  "exit": Counter()}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    runs = TALLY["examples"]
    if not runs:
        return
    tr = terminalreporter
    tr.write_sep("-", "fuzz inputs")
    for name in sorted(runs):
        tr.write_line(f"{name:16} {runs[name]:4d} examples  "
                      f"{TALLY['tracebacks'][name]} tracebacks")
    exits = ", ".join(f"exit {k}: {v}" for k, v in sorted(TALLY["exit"].items()))
    tr.write_line(f"fuzz: {sum(runs.values())} examples over {len(runs)} formats, "
                  f"{sum(TALLY['tracebacks'].values())} tracebacks ({exits} CLI runs)")


@pytest.fixture(scope="session")
def fuzz_tally() -> dict[str, Counter[str]]:
    return TALLY
