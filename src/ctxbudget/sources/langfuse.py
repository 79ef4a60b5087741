"""Langfuse observations export (JSON array, ``{"data": [...]}`` API pages, JSONL, CSV).

Only observations with usage are calls (``GENERATION`` type, or any observation with
``usageDetails`` / ``usage``); spans and events are skipped as ``observation
without usage``.

Usage: Langfuse prices each key of ``usageDetails`` on its own and its ``total`` is
the sum of the keys, so the keys are *disjoint*: ``input`` is uncached input,
``input_cached_tokens`` / ``cache_read_input_tokens`` / ``input_cache_read`` are cache
reads, ``cache_creation_input_tokens`` / ``input_cache_creation`` cache writes,
``output`` the output and ``output_reasoning_tokens`` / ``output_reasoning`` reasoning
(Langfuse splits it out of ``output``; we add it back, as a subset). If a row's
``total`` instead equals ``input + output`` while cache keys are present, ``input``
was inclusive (older SDKs) and the cache tokens are subtracted from it. The legacy
``usage`` object (``input``, ``output``) and ``promptTokens`` / ``completionTokens``
are used when ``usageDetails`` is absent (no cache detail).

Key ``langfuse:<id>``; time ``startTime``; latency ``endTime - startTime``;
``task_id`` the trace id; ``session_id`` ``sessionId`` when exported; status
``error`` when ``level`` is ``ERROR``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import InputFormatError
from ..usage import Call, Usage
from ._base import Importer, Record, Skip, json_or_csv_records, parse_ts
from ._guess import int_cell, json_cell, provider_for

__all__ = ["LangfuseImporter", "register"]

_READ = ("input_cached_tokens", "cache_read_input_tokens", "input_cache_read")
_WRITE = ("cache_creation_input_tokens", "input_cache_creation")
_REASONING = ("output_reasoning_tokens", "output_reasoning")


class LangfuseImporter(Importer):
    name = "langfuse"
    description = "Langfuse observations export (JSON, JSONL or CSV; usageDetails)"
    patterns = ("*.json", "*.jsonl", "*.csv")

    def records(self, path: Path) -> Iterator[Record]:
        return json_or_csv_records(path)

    def convert(self, rec: Record) -> Iterable[Any]:
        d = rec.value
        if not isinstance(d, Mapping):
            raise InputFormatError(f"expected an object / row, got {type(d).__name__}")
        details = json_cell(d.get("usageDetails"), "usageDetails")
        legacy = json_cell(d.get("usage"), "usage")
        has_legacy = isinstance(legacy, Mapping) and any(
            legacy.get(k) for k in ("input", "output", "total"))
        if not details and not has_legacy and not d.get("promptTokens") \
                and not d.get("completionTokens"):
            yield Skip("observation without usage")
            return
        oid, model = d.get("id"), d.get("model")
        if not oid:
            raise InputFormatError("id is missing")
        if not model:
            raise InputFormatError("model is missing (a generation without a model)")
        usage, inclusive = _usage(details, legacy, d)
        start = parse_ts(d.get("startTime"), "startTime")
        end = d.get("endTime")
        latency = (parse_ts(end, "endTime") - start).total_seconds() * 1000 if end else None
        yield Call(
            ts=start, provider=provider_for(str(model), d.get("provider")), model=str(model),
            usage=usage, task_id=d.get("traceId"), session_id=d.get("sessionId"),
            request_id=str(oid), latency_ms=latency,
            status="error" if str(d.get("level") or "").upper() == "ERROR" else "ok",
            source="langfuse", input_inclusive=inclusive,
        )


def _sum(m: Mapping[str, Any], keys: tuple[str, ...]) -> int:
    return sum(int_cell(m.get(k), f"usageDetails.{k}") for k in keys)


def _usage(details: Any, legacy: Any, row: Mapping[str, Any]) -> tuple[Usage, bool]:
    if isinstance(details, Mapping) and details:
        inp = int_cell(details.get("input"), "usageDetails.input")
        out = int_cell(details.get("output"), "usageDetails.output")
        read, write = _sum(details, _READ), _sum(details, _WRITE)
        reasoning = _sum(details, _REASONING)
        total = details.get("total")
        inclusive = False
        if total is not None and (read or write):
            t = int_cell(total, "usageDetails.total")
            if t == inp + out + reasoning and t != inp + out + reasoning + read + write:
                inclusive = True
        if inclusive:
            if read + write > inp:
                raise InputFormatError("usageDetails: cache tokens exceed an inclusive input")
            inp -= read + write
        return Usage(input_tokens=inp, cache_read_tokens=read, cache_write_5m_tokens=write,
                     output_tokens=out + reasoning, reasoning_tokens=reasoning), inclusive
    if isinstance(legacy, Mapping):
        inp = int_cell(legacy.get("input"), "usage.input")
        out = int_cell(legacy.get("output"), "usage.output")
    else:
        inp = int_cell(row.get("promptTokens"), "promptTokens")
        out = int_cell(row.get("completionTokens"), "completionTokens")
    return Usage(input_tokens=inp, output_tokens=out), False


def register(registry: Any) -> None:
    registry.add(LangfuseImporter)
