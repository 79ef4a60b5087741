"""``ctxbudget gateway``: run the recording, budget-enforcing LLM API proxy.

``ctxbudget gateway --config gateway.yaml`` serves; ``ctxbudget gateway check-config``
validates the file (and reaches the budget store) without serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ._common import fail, handles_errors, print_json


def register(app: typer.Typer) -> None:
    gw = typer.Typer(help="LLM API gateway: records every call, enforces budgets in the "
                     "request path (docs/gateway.md).", no_args_is_help=False,
                     invoke_without_command=True)

    @gw.callback(invoke_without_command=True)
    @handles_errors
    def gateway(
        ctx: typer.Context,
        config: Path = typer.Option(Path("gateway.yaml"), "--config", "-c",
                                    help="Gateway config file."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8787, "--port", help="Port to listen on."),
        workers: int = typer.Option(1, "--workers", min=1,
                                    help="Worker processes (more than 1 needs a Redis "
                                    "budget_store)."),
        log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    ) -> None:
        """Serve the gateway until SIGINT/SIGTERM (in-flight requests finish first)."""
        if ctx.invoked_subcommand is not None:
            return
        from ..serve.gateway import check_config, load_config, serve

        cfg = load_config(config)
        problems = [p for p in check_config(cfg, workers=workers, connect=False)
                    if "keeps no state" not in p]
        if problems:
            fail(problems[0])
        serve(str(config), host=host, port=port, workers=workers, log_level=log_level)

    @gw.command("check-config")
    @handles_errors
    def check(
        config: Path = typer.Option(Path("gateway.yaml"), "--config", "-c",
                                    help="Gateway config file."),
        workers: int = typer.Option(1, "--workers", min=1, help="Workers you will run."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Validate the config and reach the budget store; exit 2 on a problem.

        Prints the routes, budgets and where calls are recorded."""
        from ..serve.gateway import check_config, load_config

        cfg = load_config(config)
        problems = check_config(cfg, workers=workers)
        upstreams: list[dict[str, str]] = [
            {"name": u.name, "base_url": u.base_url, "provider": u.provider, "api": u.api,
             "prefix": u.prefix or "/"} for u in cfg.upstreams]
        budgets: list[dict[str, Any]] = [{"name": r.budget.name, "metric": r.budget.metric,
                         "limit": str(r.budget.limit), "window": str(r.budget.window),
                         "per": r.per, "match": r.match, "soft": r.budget.soft}
                        for r in cfg.budgets]
        out = {
            "config": str(config), "upstreams": upstreams, "budgets": budgets,
            "budget_store": cfg.budget_store, "fail": cfg.fail,
            "spool_dir": cfg.spool_dir, "store": cfg.store, "problems": problems,
        }
        if as_json:
            print_json(out)
        else:
            for u in upstreams:
                typer.echo(f"upstream {u['name']}: {u['prefix']} -> {u['base_url']} "
                           f"({u['api']} API, priced as {u['provider']})")
            for b in budgets:
                per = f" per {b['per']}" if b["per"] else ""
                typer.echo(f"budget {b['name']}: {b['limit']} {b['metric']} per "
                           f"{b['window']}{per}{' (soft)' if b['soft'] else ''}")
            typer.echo(f"budget store: {cfg.budget_store} (fail {cfg.fail})")
            for p in problems:
                typer.echo(f"problem: {p}", err=True)
        if any("keeps no state" not in p for p in problems):
            raise typer.Exit(2)

    app.add_typer(gw, name="gateway")
