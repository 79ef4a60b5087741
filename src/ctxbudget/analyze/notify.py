"""Optional webhook notifier: POST the check result as JSON."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ..errors import CtxBudgetError

__all__ = ["post_webhook"]


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    if isinstance(o, datetime | date):
        return o.isoformat()
    raise TypeError(type(o).__name__)


def post_webhook(url: str, payload: dict[str, Any], timeout: float = 10.0) -> int:
    """POST ``payload`` as JSON to ``url``; returns the HTTP status (errors raise)."""
    if not url.startswith(("http://", "https://")):
        raise CtxBudgetError(f"--webhook {url!r}: expected an http(s) URL")
    body = json.dumps(payload, default=_default).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "User-Agent": "ctxbudget"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except (urllib.error.URLError, OSError) as exc:
        raise CtxBudgetError(f"webhook {url}: {exc}") from None
