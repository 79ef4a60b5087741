"""Renderers for analyze results: terminal (rich views), HTML (plotly), JSON."""

from __future__ import annotations

from .json import to_jsonable
from .terminal import CheckView, ReportView, SignalsView, render_text

__all__ = ["CheckView", "ReportView", "SignalsView", "render_html", "render_text",
           "to_jsonable"]


def render_html(*args: object, **kwargs: object) -> str:
    """See :func:`ctxbudget.report.html.render_html` (plotly is imported on use)."""
    from .html import render_html as _render

    return _render(*args, **kwargs)  # type: ignore[arg-type]
