"""msgspec types of the spool lines (the fast path of :mod:`.spool`), with the same ranges
the line-by-line path checks. No ``from __future__ import annotations`` here: msgspec
reads these annotations at run time."""

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from ..usage import MAX_LATENCY_MS, MAX_TOKENS, MAX_TURN

__all__ = ["DECODER", "CallLine", "TaskLine"]

_Tok = Annotated[int, Meta(ge=0, le=MAX_TOKENS)]
_Text = Annotated[str, Meta(min_length=1)]


class CallLine(msgspec.Struct, tag_field="k", tag="c", gc=False):
    rid: str | int
    ts: str
    provider: _Text
    model: _Text
    u: Annotated[list[_Tok], Meta(min_length=6, max_length=6)]
    status: str = "ok"
    source: str = "track"
    task_id: str | None = None
    session_id: str | None = None
    task_type: str | None = None
    request_id: str | None = None
    service_tier: str | None = None
    latency_ms: Annotated[float, Meta(ge=0, le=MAX_LATENCY_MS)] | None = None
    turn: Annotated[int, Meta(ge=0, le=MAX_TURN)] | None = None
    expected_cache_read_tokens: _Tok | None = None
    input_inclusive: bool | None = None
    components: dict[str, _Tok] | None = None
    prefix_fingerprint: list[Any] | None = None
    meta: dict[str, Any] | None = None
    d: dict[str, _Tok] | None = None
    o: dict[str, _Tok] | None = None


class TaskLine(msgspec.Struct, tag_field="k", tag="t", gc=False):
    task_id: _Text
    task_type: str | None = None
    outcome: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    session_id: str | None = None
    parent_id: str | None = None
    blocked_by: dict[str, str] | None = None


DECODER = msgspec.json.Decoder(CallLine | TaskLine)
