"""Entry point: builds the typer app from one module per command group.

Each module in :data:`COMMAND_MODULES` exposes ``register(app: typer.Typer) -> None``,
the one registration hook built-in commands share (third-party plugins can use it
through the ``ctxbudget.commands`` entry-point group).

``ctxbudget NAME ...`` imports only the module that registers NAME (see
:data:`COMMANDS`): a command starts without importing the other seven groups and
their dependencies. Help, an unknown name or a plugin's command builds the whole app
(as does ``from ctxbudget.cli.main import app``). ``ctxbudget --version`` imports
neither typer nor any command module (tests/test_startup.py checks what each light
command imports); nor does ``ctxbudget report --by day`` answered from the day summary
(:mod:`ctxbudget.cli._daily`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

#: Command (or command group) names each built-in module registers, in help order.
#: tests/docs checks this against what the modules' ``register`` really adds.
COMMANDS: dict[str, tuple[str, ...]] = {
    "ctxbudget.cli.core": ("cost", "usage", "prices"),
    "ctxbudget.cli.track": ("ingest",),
    "ctxbudget.cli.importer": ("import",),
    "ctxbudget.cli.count": ("count",),
    "ctxbudget.cli.plan": ("plan", "simulate"),
    "ctxbudget.cli.report": ("report", "signals", "check", "demo", "baseline"),
    "ctxbudget.cli.audit": ("simulate-cache", "audit", "whatif", "checklist"),
    "ctxbudget.cli.pack": ("pack",),
    "ctxbudget.cli.export": ("export",),
    "ctxbudget.cli.gateway": ("gateway",),
    "ctxbudget.cli.otlp": ("otlp",),
    "ctxbudget.cli.serve": ("serve",),
}

COMMAND_MODULES: tuple[str, ...] = tuple(COMMANDS)


def build_app(modules: Sequence[str] | None = None) -> typer.Typer:
    """The CLI with the commands of ``modules`` (default: every built-in module and
    the ``ctxbudget.commands`` plugins)."""
    import typer

    from ._common import one_line_usage_errors
    from ._root import root

    app = typer.Typer(
        name="ctxbudget",
        cls=one_line_usage_errors(),
        help="Plan, enforce and monitor the token budget of LLM applications.",
        no_args_is_help=False,  # the root callback prints help (exit 0)
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback(invoke_without_command=True)(root)
    for name in COMMAND_MODULES if modules is None else modules:
        importlib.import_module(name).register(app)
    if modules is None:
        from importlib.metadata import entry_points

        for ep in entry_points(group="ctxbudget.commands"):
            ep.load()(app)
    return app


def modules_for(argv: Sequence[str]) -> tuple[str, ...] | None:
    """The one module that registers the command in ``argv``, or ``None`` (all)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    for module, names in COMMANDS.items():
        if first in names:
            return (module,)
    return None


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole CLI, built on first use (tests, embedding)
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _version() -> str:
    from .. import __version__

    return __version__


def main() -> None:
    if sys.argv[1:] == ["--version"]:  # no CLI framework to print a string
        sys.stdout.write(_version() + "\n")
        return
    if sys.argv[1:2] == ["report"]:
        # the daily run (report --by day [--from claude-code]): from the day summary when
        # it can answer, before typer, DuckDB or the price catalog are imported
        from ._daily import fast_main

        if fast_main(sys.argv[1:]):
            return
    build_app(modules_for(sys.argv[1:]))()


if __name__ == "__main__":
    main()
