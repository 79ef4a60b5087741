"""Docs that cannot drift: the README's two commands, CI, and every CLI command documented."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S)
    assert m, "README.md must open with a code block holding the two commands"
    return [ln.strip() for ln in m.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_opens_with_exactly_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = text.index("```")
    # nothing but the title and one short line may precede the commands
    assert len(text[:first_block].strip().splitlines()) <= 3
    cmds = _readme_commands()
    assert len(cmds) == 2, cmds
    install_and_run, test = cmds
    assert "pip install" in install_and_run and "ctxbudget demo" in install_and_run
    # the demo reads the store and writes charts: the base install lacks them (slim)
    assert "[analyze]" in install_and_run or "[all]" in install_and_run
    assert "pip install" in test and "pytest" in test


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _readme_commands()[1] in ci


def test_every_cli_command_is_documented() -> None:
    import typer.main

    from ctxbudget.cli.main import app

    group = typer.main.get_command(app)
    names: list[str] = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(cmd, "commands", None)
        if sub:
            names.extend(f"{name} {s}" for s in sub)
        else:
            names.append(name)
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = [n for n in names if f"### `ctxbudget {n}`" not in doc]
    assert not missing, f"undocumented commands in docs/cli.md: {missing}"


def test_command_map_matches_registration() -> None:
    """``ctxbudget NAME`` imports only the module COMMANDS names for NAME: the map must
    hold exactly what each module registers, or a command would go missing."""
    import importlib

    import typer.main

    from ctxbudget.cli.main import COMMANDS, build_app, modules_for

    for module, names in COMMANDS.items():
        group = typer.main.get_command(build_app([module]))
        assert sorted(group.commands) == sorted(names), module  # type: ignore[attr-defined]
        for name in names:
            assert modules_for([name, "--help"]) == (module,)
        importlib.import_module(module)
    assert modules_for(["--help"]) is None and modules_for(["no-such-command"]) is None


def test_one_command_imports_only_its_module() -> None:
    """A command's process does not import the other command groups (start-up time)."""
    import subprocess
    import sys

    code = ("import sys; from ctxbudget.cli import main as m; "
            "sys.argv = ['ctxbudget', 'cost', '--help']; "
            "app = m.build_app(m.modules_for(sys.argv[1:])); "
            "print(sorted(k for k in sys.modules if k.startswith('ctxbudget.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "ctxbudget.cli.core" in out
    for other in ("report", "audit", "pack", "plan", "importer"):
        assert f"ctxbudget.cli.{other}'" not in out, out
