"""The spool line format, shared by the writer (track) and the reader (store.spool).

One JSON object per line, ``\\n``-terminated, UTF-8. ``"k"`` says what it is:

``{"k": "c", "rid": ..., "ts": ..., ...}``
    a call. ``rid`` (``<file stem>:<sequence>``) is unique per record and is the
    store's de-duplication key (``track:<rid>``), so re-ingesting a file adds nothing
    even when two calls carry the same provider request id. ``u`` holds the Usage
    buckets in :data:`USAGE_ORDER`; ``d`` (when any is known) the Usage detail fields
    (modality tokens, tool requests) by name; ``o`` the other billed counters.
``{"k": "t", "task_id": ..., ...}``
    a finished task; ``blocked_by`` (with outcome ``blocked``) names the budget cap
    that blocked it.

Prompt text never appears here: only counts, ids, fingerprints and the meta the
caller supplied.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..usage import DETAIL_FIELDS, Call, Task, Usage

__all__ = ["USAGE_ORDER", "call_from_line", "call_to_line", "task_from_line", "task_to_line"]

USAGE_ORDER: tuple[str, ...] = (
    "input_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
    "output_tokens", "reasoning_tokens",
)

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def call_to_line(c: Call, rid: str) -> str:
    u = c.usage
    d: dict[str, Any] = {
        "k": "c", "rid": rid, "ts": c.ts.isoformat(), "provider": c.provider, "model": c.model,
        "u": [u.input_tokens, u.cache_read_tokens, u.cache_write_5m_tokens,
              u.cache_write_1h_tokens, u.output_tokens, u.reasoning_tokens],
        "status": c.status, "source": c.source,
    }
    for name in ("task_id", "session_id", "task_type", "request_id", "latency_ms",
                 "service_tier", "turn", "expected_cache_read_tokens", "input_inclusive"):
        v = getattr(c, name)
        if v is not None:
            d[name] = v
    if c.components:
        d["components"] = dict(c.components)
    if c.prefix_fingerprint:
        d["prefix_fingerprint"] = list(c.prefix_fingerprint)
    if c.meta:
        d["meta"] = dict(c.meta)
    detail = u.detail()
    if detail:
        d["d"] = detail
    if c.other_tool_requests:
        d["o"] = dict(c.other_tool_requests)
    return _dumps(d) + "\n"


def task_to_line(t: Task, meta: dict[str, Any] | None = None) -> str:
    d: dict[str, Any] = {
        "k": "t", "task_id": t.task_id, "task_type": t.task_type, "outcome": t.outcome,
        "started_at": t.started_at.isoformat() if t.started_at else None,
        "ended_at": t.ended_at.isoformat() if t.ended_at else None,
        "session_id": t.session_id, "parent_id": t.parent_id,
    }
    if t.blocked_by:
        d["blocked_by"] = dict(t.blocked_by)
    if meta:
        d["meta"] = meta
    return _dumps(d) + "\n"


def call_from_line(d: dict[str, Any]) -> tuple[str, Call]:
    """(rid, Call) from a parsed ``"k": "c"`` line. Raises on a malformed record."""
    u = d["u"]
    if not isinstance(u, list) or len(u) != len(USAGE_ORDER):
        raise ValueError("u must be a list of 6 token counts")
    comps = d.get("components")
    fp = d.get("prefix_fingerprint")
    detail = d.get("d") or {}
    if not isinstance(detail, dict) or not set(detail) <= set(DETAIL_FIELDS):
        raise ValueError(f"d must be an object of {', '.join(DETAIL_FIELDS)}")
    other = d.get("o")
    if other is not None and not isinstance(other, dict):
        raise ValueError("o must be an object of counts")
    call = Call(
        ts=datetime.fromisoformat(d["ts"]),
        provider=str(d["provider"]),
        model=str(d["model"]),
        usage=Usage(**dict(zip(USAGE_ORDER, u, strict=True)), **detail),
        other_tool_requests=other or None,
        task_id=d.get("task_id"),
        session_id=d.get("session_id"),
        task_type=d.get("task_type"),
        request_id=d.get("request_id"),
        latency_ms=d.get("latency_ms"),
        status=str(d.get("status", "ok")),
        source=str(d.get("source", "track")),
        service_tier=d.get("service_tier"),
        turn=d.get("turn"),
        components=comps if isinstance(comps, dict) else None,
        prefix_fingerprint=tuple(fp) if isinstance(fp, list) else None,
        expected_cache_read_tokens=d.get("expected_cache_read_tokens"),
        input_inclusive=d.get("input_inclusive"),
        meta=d.get("meta"),
    )
    return str(d["rid"]), call


def task_from_line(d: dict[str, Any]) -> Task:
    def ts(v: Any) -> datetime | None:
        return datetime.fromisoformat(v) if isinstance(v, str) else None

    return Task(
        task_id=str(d["task_id"]), task_type=d.get("task_type"), outcome=d.get("outcome"),
        started_at=ts(d.get("started_at")), ended_at=ts(d.get("ended_at")),
        session_id=d.get("session_id"), parent_id=d.get("parent_id"),
        blocked_by=_blocked_by(d.get("blocked_by")),
    )


def _blocked_by(v: Any) -> dict[str, Any] | None:
    """A task line's ``blocked_by``: an object of strings (``cap``, ``limit``, ...)."""
    if v is None:
        return None
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise ValueError("blocked_by must be an object of strings")
    return v
