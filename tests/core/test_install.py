"""The slim base install (issue #14 point 4).

``pip install ctxbudget`` gives tracking, packing, pricing, counting and the light
commands; DuckDB, Arrow, numpy and Plotly come with the ``analyze`` extra. Checked
here: the base dependency list, and — in a process where the analysis packages
cannot be imported, as in a base install — that ``ctxbudget.track(anthropic_client)``
records calls and that a command needing the extra says which one to install.
(``bench/bench_install.py`` builds a real fresh venv and measures it on disk.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = {"genai-prices", "tiktoken", "typer", "rich", "pydantic", "pyyaml", "msgspec"}
ANALYZE = {"duckdb", "pyarrow", "numpy", "plotly", "scipy", "httpx"}
BLOCK = ("duckdb", "pyarrow", "numpy", "pandas", "plotly", "pyspark")


def _names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in reqs}


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["project"]  # type: ignore[no-any-return]


def test_base_dependencies_are_the_slim_list() -> None:
    proj = _project()
    assert _names(proj["dependencies"]) == BASE  # type: ignore[arg-type]
    extras: dict[str, list[str]] = proj["optional-dependencies"]  # type: ignore[assignment]
    assert _names(extras["analyze"]) == ANALYZE
    assert _names(extras["all"]) >= ANALYZE
    assert _names(extras["test"]) >= ANALYZE  # the suite runs the analysis too


def test_every_extra_named_in_the_cli_exists() -> None:
    from ctxbudget.cli._common import EXTRAS

    extras = set(_project()["optional-dependencies"])  # type: ignore[arg-type]
    assert set(EXTRAS.values()) <= extras


SLIM = r"""
import json, sys
for name in BLOCK:
    sys.modules[name] = None  # as if not installed: `import name` raises ModuleNotFoundError
import anthropic
import ctxbudget
client = ctxbudget.track(anthropic.Anthropic(base_url=URL, api_key="test", max_retries=0))
with ctxbudget.task("t-1"):
    r = client.messages.create(model="claude-sonnet-4-5", max_tokens=64,
                               messages=[{"role": "user", "content": "hi"}])
ctxbudget.flush()
print(json.dumps({"input": r.usage.input_tokens, "output": r.usage.output_tokens}))
"""


def test_track_works_without_the_analysis_packages(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("anthropic")
    sys.path.insert(0, str(ROOT / "tests" / "track"))
    from fakeapi import FakeAPI

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["CTXBUDGET_HOME"] = str(tmp_path / "home")
    with FakeAPI(data_dir / "api-responses") as api:
        code = f"BLOCK = {BLOCK!r}\nURL = {api.url!r}\n" + SLIM
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, env=env)
        assert p.returncode == 0, p.stderr
        assert api.errors == []
    got = json.loads(p.stdout.strip().splitlines()[-1])
    records = [json.loads(line) for f in sorted((tmp_path / "home").rglob("*.jsonl"))
               for line in f.read_text().splitlines() if line.strip()]
    calls = [r for r in records if r.get("k") == "c"]
    assert len(calls) == 1 and calls[0]["provider"] == "anthropic"
    assert str(got["output"]) in json.dumps(calls[0])

    # a command that needs the analyze extra says so, in one line, exit 2
    cli = (f"import sys\nfor n in {BLOCK!r}:\n    sys.modules[n] = None\n"
           "sys.argv = ['ctxbudget', 'report', '--by', 'day']\n"
           "from ctxbudget.cli.main import main\nmain()\n")
    p = subprocess.run([sys.executable, "-c", cli], capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: this needs the 'analyze' extra (duckdb is not installed): "
        "pip install 'ctxbudget[analyze]'"]
