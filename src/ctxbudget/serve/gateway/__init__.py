"""``ctxbudget gateway``: an LLM API reverse proxy that records every call and enforces
budgets in the request path. See ``docs/gateway.md``.

::

    from ctxbudget.serve.gateway import build_app, load_config
    app = build_app(load_config("gateway.yaml"))      # an ASGI application

Dependencies (the ``gateway`` extra): ``uvicorn`` with ``uvloop`` and ``httptools``
(server; ``httptools`` also parses the upstream's responses in the gateway's own client,
``_client.py``), ``redis`` (for ``budget_store: redis://``).
"""

from __future__ import annotations

from ._app import Gateway, build_app
from ._config import BudgetRule, GatewayConfig, KeyRule, Upstream, key_id, load_config
from ._server import app_from_env, check_config, serve

__all__ = [
    "BudgetRule",
    "Gateway",
    "GatewayConfig",
    "KeyRule",
    "Upstream",
    "app_from_env",
    "build_app",
    "check_config",
    "key_id",
    "load_config",
    "serve",
]
