"""OpenAI Codex CLI session rollouts: ``$CODEX_HOME/sessions/**/rollout-*.jsonl``.

Each line is ``{"timestamp", "type", "payload"}``. The lines used:

* ``session_meta`` — ``payload.id`` is the session id (else the file name);
* ``turn_context`` — ``payload.model`` is the model of the following calls;
* ``event_msg`` with ``payload.type == "token_count"`` — one per model response:
  ``payload.info.last_token_usage`` is that response's usage and
  ``payload.info.total_token_usage`` the session's running total (when only the total
  is present, the call's usage is the difference from the previous total).

Token fields are the Responses API's: ``input_tokens`` *includes*
``cached_input_tokens`` (so uncached input = input - cached), ``output_tokens``
includes ``reasoning_output_tokens`` (a subset, as in the API's
``output_tokens_details``; if a log has reasoning > output it is taken as extra
output). Codex repeats a ``token_count`` event with an unchanged running total
(e.g. after a rate-limit refresh): those repeats are the same call — the key is
``codex:<session>:<running total_tokens>``, so they collapse and re-imports are
idempotent. ``task_id`` and ``session_id`` are the session id; provider ``openai``.
A rollout that grew since the last import is read on from where it stopped, with
the session, model and running total it had there (:meth:`CodexImporter.file_state`).
Every other line is skipped as ``not an API call``; a ``token_count`` without
``info`` (no usage yet) as ``token_count without usage``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..adapters import _int, _sub
from ..errors import InputFormatError, UsageError
from ..usage import Call, Usage
from ._base import Importer, Record, Skip, parse_ts

__all__ = ["CodexImporter", "register"]


class CodexImporter(Importer):
    name = "codex"
    description = "OpenAI Codex CLI rollouts ($CODEX_HOME/sessions/**/rollout-*.jsonl)"
    patterns = ("rollout-*.jsonl",)
    appendable = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._path: Path | None = None
        self._session: str | None = None
        self._model: str | None = None
        self._prev: dict[str, int] | None = None

    def _start(self, path: Path) -> None:
        self._path = path
        self._session = path.stem
        self._model = None
        self._prev = None

    def file_state(self, path: Path) -> Any:
        if path != self._path:  # no line read in this import: nothing changed
            return None
        return {"session": self._session, "model": self._model, "prev": self._prev}

    def resume(self, path: Path, state: Any) -> None:
        self._start(path)
        if isinstance(state, dict):
            self._session = state.get("session") or self._session
            self._model = state.get("model")
            prev = state.get("prev")
            self._prev = {str(k): int(v) for k, v in prev.items()} if isinstance(
                prev, dict) else None

    def rank(self, call: Any) -> Any:
        return call.usage.total_tokens  # a repeat computed as a zero delta never wins

    def convert(self, rec: Record) -> Iterable[Any]:
        if rec.path != self._path:
            self._start(rec.path)
        d = rec.value
        if not isinstance(d, dict):
            raise InputFormatError(f"expected a JSON object, got {type(d).__name__}")
        kind, payload = d.get("type"), d.get("payload")
        if not isinstance(payload, Mapping):
            payload = {}
        if kind == "session_meta":
            if payload.get("id"):
                self._session = str(payload["id"])
            yield Skip("not an API call")
            return
        if kind == "turn_context":
            if payload.get("model"):
                self._model = str(payload["model"])
            yield Skip("not an API call")
            return
        if kind != "event_msg" or payload.get("type") != "token_count":
            yield Skip("not an API call")
            return
        info = payload.get("info")
        if not isinstance(info, Mapping):
            yield Skip("token_count without usage")
            return
        total = info.get("total_token_usage")
        last = info.get("last_token_usage")
        if isinstance(last, Mapping):
            raw = _counts(last, "info.last_token_usage.")
        elif isinstance(total, Mapping):
            now = _counts(total, "info.total_token_usage.")
            prev = self._prev or dict.fromkeys(now, 0)
            raw = {k: now[k] - prev.get(k, 0) for k in now}
            if any(v < 0 for v in raw.values()):
                raise UsageError("info.total_token_usage decreased from the previous event",
                                 field="info.total_token_usage")
        else:
            raise InputFormatError("token_count info has neither last_token_usage nor "
                                   "total_token_usage")
        if isinstance(total, Mapping):
            cur = _counts(total, "info.total_token_usage.")
            self._prev = cur  # a repeated event has the same running total: same key
            running = cur["total_tokens"] or sum(cur.values())
            request_id = f"{self._session}:{running}"
        else:
            request_id = f"{self._session}:line{rec.line}"
        model = self._model or payload.get("model") or info.get("model")
        if not model:
            raise InputFormatError("token_count before any turn_context naming the model")
        yield Call(
            ts=parse_ts(d.get("timestamp"), "timestamp"), provider="openai", model=str(model),
            usage=_usage(raw), task_id=self._session, session_id=self._session,
            request_id=request_id, source="codex", input_inclusive=True,
        )


def _counts(m: Mapping[str, Any], path: str) -> dict[str, int]:
    return {k: _int(m, k, path) for k in ("input_tokens", "cached_input_tokens",
                                          "output_tokens", "reasoning_output_tokens",
                                          "total_tokens")}


def _usage(c: Mapping[str, int]) -> Usage:
    uncached = _sub(c["input_tokens"], c["cached_input_tokens"], "input_tokens",
                    "cached_input_tokens")
    out, reasoning = c["output_tokens"], c["reasoning_output_tokens"]
    if reasoning > out:
        out += reasoning
    return Usage(input_tokens=uncached, cache_read_tokens=c["cached_input_tokens"],
                 output_tokens=out, reasoning_tokens=reasoning)


def register(registry: Any) -> None:
    registry.add(CodexImporter)
