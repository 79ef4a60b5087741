"""Entry point: builds the typer app from one module per command group.

Each module in :data:`COMMAND_MODULES` exposes ``register(app: typer.Typer) -> None``,
the one registration hook built-in commands share (third-party plugins can use it
through the ``ctxbudget.commands`` entry-point group).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

import typer

COMMAND_MODULES: tuple[str, ...] = (
    "ctxbudget.cli.core",
    "ctxbudget.cli.track",
    "ctxbudget.cli.importer",
    "ctxbudget.cli.count",
    "ctxbudget.cli.plan",
    "ctxbudget.cli.report",
    "ctxbudget.cli.audit",
    "ctxbudget.cli.pack",
)

app = typer.Typer(
    name="ctxbudget",
    help="Plan, enforce and monitor the token budget of LLM applications.",
    no_args_is_help=False,  # the root callback prints help (exit 0)
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    for ep in entry_points(group="ctxbudget.commands"):
        ep.load()(app)


_register_all()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        from .. import __version__

        typer.echo(__version__)
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
