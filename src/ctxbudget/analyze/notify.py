"""Webhook notifier of ``ctxbudget check``: generic JSON, Slack or Microsoft Teams.

httpx, imported on use, posts the payload with retries: a connection error, a
timeout, a 429 or a 5xx is retried ``retries`` times with exponential backoff
(``backoff``, 2x, 4x...; a 429's ``Retry-After`` of up to 30 s is honoured); any
other 4xx is final. A delivery that fails raises :class:`WebhookError`, which the
CLI turns into exit code 3 (the check itself still decided pass or fail).

Payload shapes:

- ``json``: ``{"source": "ctxbudget check", "ok", "verdict", "breaches", ...}`` -
  the ``check --format json`` document.
- ``slack``: an incoming-webhook message, ``{"text": ..., "blocks": [...]}`` (mrkdwn
  section with the verdict and the breaches).
- ``teams``: a Workflows / incoming-webhook message carrying an Adaptive Card
  (``{"type": "message", "attachments": [{"contentType":
  "application/vnd.microsoft.card.adaptive", "content": {...}}]}``).

``auto`` picks ``slack`` for ``hooks.slack.com``, ``teams`` for hosts ending in
``webhook.office.com``, ``logic.azure.com`` or ``powerplatform.com``, else ``json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from ..errors import CtxBudgetError

__all__ = ["WEBHOOK_FORMATS", "WebhookError", "payload_for", "post_webhook"]

WEBHOOK_FORMATS = ("auto", "json", "slack", "teams")


class WebhookError(CtxBudgetError):
    """The webhook could not be delivered (after the retries)."""


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    if isinstance(o, datetime | date):
        return o.isoformat()
    as_dict = getattr(o, "as_dict", None)
    if callable(as_dict):
        return as_dict()
    raise TypeError(type(o).__name__)


def resolve_format(url: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    host = (urlsplit(url).hostname or "").lower()
    if host == "hooks.slack.com":
        return "slack"
    if host.endswith(("webhook.office.com", "logic.azure.com", "powerplatform.com")):
        return "teams"
    return "json"


def _lines(result: Any) -> tuple[str, list[str]]:
    verdict = str(getattr(result, "verdict", "fail" if not result.ok else "pass"))
    head = f"ctxbudget check: {verdict.upper()}"
    out = []
    for b in result.breaches[:10]:
        out.append(f"{b.rule} ({b.task_type or 'all'}): {b.metric} = {_default_str(b.value)}"
                   f", {b.by}")
    for e in getattr(result, "inconclusive", ())[:5]:
        out.append(f"inconclusive: {e['rule']} ({e.get('task_type') or 'all'}): "
                   f"{e.get('reason', '')}")
    return head, out


def _default_str(v: Any) -> str:
    return str(v) if not isinstance(v, float) else f"{v:.6g}"


def payload_for(result: Any, fmt: str) -> dict[str, Any]:
    """The body posted for ``fmt`` (``json``, ``slack`` or ``teams``)."""
    if fmt == "json":
        doc: dict[str, Any] = json.loads(json.dumps(result.as_dict(), default=_default))
        return {"source": "ctxbudget check", **doc}
    head, lines = _lines(result)
    if fmt == "slack":
        text = f"*{head}*\n" + "\n".join(f"• {x}" for x in lines)
        return {"text": f"{head}: {len(result.breaches)} breach(es)",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
    if fmt == "teams":
        body: list[dict[str, Any]] = [{"type": "TextBlock", "text": head, "weight": "Bolder",
                                       "size": "Medium", "wrap": True}]
        body += [{"type": "TextBlock", "text": f"- {x}", "wrap": True} for x in lines]
        return {"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
            "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard", "version": "1.4", "body": body}}]}
    raise ValueError(f"unknown webhook format {fmt!r}")


def post_webhook(url: str, result: Any, *, fmt: str = "auto", summary: str | None = None,
                 retries: int = 3, backoff: float = 0.5, timeout: float = 10.0,
                 transport: Any = None, sleep: Callable[[float], None] = time.sleep) -> int:
    """POST the check ``result`` to ``url``; returns the final HTTP status.

    Raises :class:`WebhookError` when every attempt failed. ``summary`` (Markdown) is
    added to the generic JSON payload as ``summary_markdown``.
    """
    import httpx

    if not url.startswith(("http://", "https://")):
        raise WebhookError(f"--webhook {url!r}: expected an http(s) URL")
    kind = resolve_format(url, fmt)
    body = payload_for(result, kind)
    if kind == "json" and summary is not None:
        body["summary_markdown"] = summary
    data = json.dumps(body, default=_default).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "ctxbudget"}
    last = ""
    with httpx.Client(timeout=timeout, transport=transport) as client:
        for attempt in range(retries + 1):
            wait = backoff * 2**attempt
            try:
                resp = client.post(url, content=data, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code < 300:
                    return resp.status_code
                last = f"HTTP {resp.status_code}"
                if resp.status_code != 429 and resp.status_code < 500:
                    break  # a 4xx other than 429 will not change on retry
                ra = resp.headers.get("Retry-After", "")
                if resp.status_code == 429 and ra.isdigit():
                    wait = min(30.0, float(ra))
            if attempt < retries:
                sleep(wait)
    raise WebhookError(f"webhook {url}: not delivered after {attempt + 1} attempt(s) ({last})")
