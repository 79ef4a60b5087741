"""docs/audit.md: its Python snippet runs, and every command it documents exists."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path


def test_python_snippet_runs(root_dir: Path, data_dir: Path) -> None:
    text = (root_dir / "docs" / "audit.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(root_dir)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "docs/audit.md", "exec"), {})
    finally:
        os.chdir(cwd)
    first, second = out.getvalue().splitlines()
    assert first == "65.1% unlimited, 49% of it with 3M tokens"
    assert second == "no cache miss to explain"


def test_documented_commands_exist(root_dir: Path) -> None:
    import typer.main

    from ctxbudget.cli.main import app

    text = (root_dir / "docs" / "audit.md").read_text(encoding="utf-8")
    names = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    for cmd in ("audit", "simulate-cache", "whatif", "checklist"):
        assert f"### `ctxbudget {cmd}`" in text
        assert cmd in names
