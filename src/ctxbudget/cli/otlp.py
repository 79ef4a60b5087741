"""``ctxbudget otlp``: the live OTLP/HTTP trace receiver (see ctxbudget.serve.otlp)."""

from __future__ import annotations

import typer

from ._common import fail, handles_errors


def register(app: typer.Typer) -> None:
    @app.command("otlp")
    @handles_errors
    def otlp(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(4318, "--port", help="Port (4318 is OTLP/HTTP's)."),
        log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    ) -> None:
        """Receive OTLP/HTTP traces (protobuf or JSON) on POST /v1/traces and record every
        span with gen_ai usage into the spool (read by report); GET /metrics."""
        try:
            import opentelemetry.proto  # noqa: F401
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as exc:
            fail(f"ctxbudget otlp needs the otlp extra: pip install 'ctxbudget[otlp]' ({exc})")
        from ..serve.otlp import serve

        serve(host=host, port=port, log_level=log_level)
