"""Renderers for analyze results: terminal (rich views), HTML (plotly), JSON.

The names are imported on first use: ``--json`` output (:mod:`.json`) needs neither
rich nor plotly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .json import to_jsonable
    from .terminal import CheckView, ReportView, SignalsView, render_text

__all__ = ["CheckView", "ReportView", "SignalsView", "render_html", "render_text",
           "to_jsonable"]

_LAZY = {"to_jsonable": ".json", "CheckView": ".terminal", "ReportView": ".terminal",
         "SignalsView": ".terminal", "render_text": ".terminal"}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def render_html(*args: object, **kwargs: object) -> str:
    """See :func:`ctxbudget.report.html.render_html` (plotly is imported on use)."""
    from .html import render_html as _render

    return _render(*args, **kwargs)  # type: ignore[arg-type]
