"""Running the gateway: uvicorn (uvloop + httptools), one or N worker processes."""

from __future__ import annotations

import os
from typing import Any

from ...budgets import BudgetStoreError, open_ledger
from ...errors import SpecError
from ._config import GatewayConfig, load_config

__all__ = ["CONFIG_ENV", "app_from_env", "check_config", "serve"]

#: Environment variable through which worker processes find the config file.
CONFIG_ENV = "CTXBUDGET_GATEWAY_CONFIG"


def app_from_env() -> Any:
    """ASGI factory for ``uvicorn --factory`` / worker processes: reads the config file
    named by ``$CTXBUDGET_GATEWAY_CONFIG``.

    Also shortens this process's GIL switch interval to 0.5 ms (from 5 ms): the spool
    writer thread serializes records in batches, and a request arriving meanwhile would
    otherwise wait up to 5 ms for the event loop to get the GIL back."""
    import sys

    from ._app import build_app

    sys.setswitchinterval(0.0005)

    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise SpecError(f"{CONFIG_ENV} is not set: it names the gateway config file")
    return build_app(load_config(path))


def check_config(config: GatewayConfig, *, workers: int = 1, connect: bool = True
                 ) -> list[str]:
    """Problems that would stop the gateway from starting or enforcing (empty: none).

    Checks the price of every model a budget names, that several workers have a shared
    budget store, and (``connect``) that the budget store answers."""
    problems: list[str] = []
    embedded = not config.budget_store.startswith(("redis://", "rediss://", "unix://"))
    if workers > 1 and embedded and config.budgets:
        problems.append(f"{config.source}: budget_store: {config.budget_store!r} is in one "
                        f"process; {workers} workers need budget_store: redis://...")
    if config.budget_store == "memory" and config.budgets:
        problems.append(f"{config.source}: budget_store: memory keeps no state across "
                        f"restarts; give it a file path (e.g. budget.journal)")
    if connect and config.budgets and not embedded:
        from decimal import Decimal

        from ...budgets import Budget, Charge, Window

        led = open_ledger(config.budget_store)
        try:
            led.states([Charge(Budget(name="check-config", limit=Decimal(1),
                                      window=Window.parse("total")), "")])
        except BudgetStoreError as exc:
            problems.append(f"{config.source}: budget_store: {exc}")
        finally:
            led.close()
    return problems


def serve(config_path: str, *, host: str = "127.0.0.1", port: int = 8787, workers: int = 1,
          log_level: str = "warning", graceful_seconds: float = 30.0) -> None:
    """Run the gateway until SIGINT / SIGTERM; in-flight requests finish (up to
    ``graceful_seconds``) and records are flushed before exit."""
    import uvicorn

    os.environ[CONFIG_ENV] = os.path.abspath(config_path)
    kwargs: dict[str, Any] = dict(host=host, port=port, factory=True, log_level=log_level,
                                  lifespan="on", access_log=False, http="httptools",
                                  timeout_graceful_shutdown=graceful_seconds,
                                  timeout_keep_alive=75, proxy_headers=False,
                                  server_header=False, date_header=False)
    try:
        import uvloop  # noqa: F401

        kwargs["loop"] = "uvloop"
    except ImportError:
        kwargs["loop"] = "asyncio"
    uvicorn.run("ctxbudget.serve.gateway._server:app_from_env", workers=workers, **kwargs)
