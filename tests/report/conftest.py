"""Report tests reuse the analyze tests' seeded workload generator (tests/analyze/synth.py)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_SYNTH = Path(__file__).resolve().parents[1] / "analyze" / "synth.py"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("ctxb_report_synth", _SYNTH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ctxb_report_synth"] = mod
    spec.loader.exec_module(mod)
    return mod


synth = _load()


@pytest.fixture(scope="session")
def regressed_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("report") / "usage.duckdb"
    calls, tasks = synth.make_workload(seed=11, prompt_growth=("support", 4, 1.3))
    synth.write_store(p, calls, tasks)
    return p


@pytest.fixture(scope="session")
def html_report(tmp_path_factory: pytest.TempPathFactory, regressed_store: Path) -> Path:
    from typer.testing import CliRunner

    from ctxbudget.cli.main import app

    out = tmp_path_factory.mktemp("html") / "report.html"
    r = CliRunner().invoke(app, ["report", "--by", "type", "--db", str(regressed_store),
                                 "--html", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def chromium() -> Callable[..., Any]:
    import shutil

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    return lambda: exe
