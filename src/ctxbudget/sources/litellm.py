"""LiteLLM proxy spend logs (``LiteLLM_SpendLogs`` rows) exported as JSON, JSONL or CSV.

Columns used: ``request_id`` (the key), ``startTime`` / ``endTime`` (time, latency),
``model``, ``custom_llm_provider``, ``prompt_tokens``, ``completion_tokens``,
``status``, ``session_id``, ``cache_hit``, ``spend`` and ``metadata`` (an object, or
a JSON string in CSV exports) whose ``usage_object`` carries the cache detail:
``prompt_tokens_details.cached_tokens`` / ``cache_read_input_tokens`` (reads) and
``cache_creation_input_tokens`` (writes).

LiteLLM's ``prompt_tokens`` *includes* cached tokens (OpenAI convention) for every
provider; for Anthropic it includes the cache reads and, in current LiteLLM
versions, the cache writes. So uncached input = prompt - reads - writes; a row where
that would be negative (older LiteLLM, writes not included) subtracts the reads
only. Rows without ``usage_object`` have no cache detail: all prompt tokens are
uncached input. Rows served from LiteLLM's own response cache (``cache_hit``) made
no API call and are skipped. LiteLLM's ``spend`` is kept in ``meta.litellm_spend``
for comparison; cost is always recomputed with the PriceBook.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import InputFormatError
from ..usage import Call, Usage
from ._base import Importer, Record, Skip, json_or_csv_records, parse_ts
from ._guess import int_cell, json_cell, provider_for

__all__ = ["LiteLLMImporter", "register"]


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() in ("true", "1", "yes"))


class LiteLLMImporter(Importer):
    name = "litellm"
    description = "LiteLLM spend logs export (LiteLLM_SpendLogs rows: JSON, JSONL or CSV)"
    patterns = ("*.json", "*.jsonl", "*.csv")

    def records(self, path: Path) -> Iterator[Record]:
        return json_or_csv_records(path)

    def convert(self, rec: Record) -> Iterable[Any]:
        d = rec.value
        if not isinstance(d, Mapping):
            raise InputFormatError(f"expected an object / row, got {type(d).__name__}")
        if _truthy(d.get("cache_hit")):
            yield Skip("LiteLLM cache hit (no API call)")
            return
        rid = d.get("request_id")
        if not rid:
            raise InputFormatError("request_id is missing")
        model = d.get("model") or d.get("model_group")
        if not model:
            raise InputFormatError("model is missing")
        meta_obj = json_cell(d.get("metadata"), "metadata") or {}
        uo = meta_obj.get("usage_object") if isinstance(meta_obj, Mapping) else None
        usage, inclusive_writes = _usage(d, uo)
        start = parse_ts(d.get("startTime"), "startTime")
        end = d.get("endTime")
        latency = (parse_ts(end, "endTime") - start).total_seconds() * 1000 if end else None
        status = str(d.get("status") or "success").lower()
        meta: dict[str, Any] = {}
        if d.get("spend") not in (None, ""):
            meta["litellm_spend"] = str(d.get("spend"))
        if not inclusive_writes:
            meta["prompt_excludes_cache_writes"] = True
        yield Call(
            ts=start, provider=provider_for(str(model), d.get("custom_llm_provider")),
            model=str(model).rsplit("/", 1)[-1] if d.get("custom_llm_provider") else str(model),
            usage=usage, session_id=d.get("session_id") or None, task_id=d.get("session_id"),
            request_id=str(rid), latency_ms=latency,
            status="ok" if status in ("success", "ok") else "error",
            source="litellm", input_inclusive=True, meta=meta or None,
        )


def _usage(row: Mapping[str, Any], uo: Any) -> tuple[Usage, bool]:
    if isinstance(uo, Mapping):
        prompt = int_cell(uo.get("prompt_tokens"), "usage_object.prompt_tokens")
        out = int_cell(uo.get("completion_tokens"), "usage_object.completion_tokens")
        ptd = uo.get("prompt_tokens_details") or {}
        ctd = uo.get("completion_tokens_details") or {}
        read = int_cell(uo.get("cache_read_input_tokens"), "usage_object.cache_read_input_tokens")
        if not read and isinstance(ptd, Mapping):
            read = int_cell(ptd.get("cached_tokens"), "prompt_tokens_details.cached_tokens")
        write = int_cell(uo.get("cache_creation_input_tokens"),
                         "usage_object.cache_creation_input_tokens")
        if not write and isinstance(ptd, Mapping):
            write = int_cell(ptd.get("cache_creation_tokens"),
                             "prompt_tokens_details.cache_creation_tokens")
        reasoning = int_cell(ctd.get("reasoning_tokens") if isinstance(ctd, Mapping) else None,
                             "completion_tokens_details.reasoning_tokens")
    else:
        prompt = int_cell(row.get("prompt_tokens"), "prompt_tokens")
        out = int_cell(row.get("completion_tokens"), "completion_tokens")
        read = write = reasoning = 0
    inclusive_writes = True
    uncached = prompt - read - write
    if uncached < 0:
        inclusive_writes = False
        uncached = prompt - read
    if uncached < 0:
        raise InputFormatError(
            f"prompt_tokens ({prompt}) is smaller than the cache reads ({read}); LiteLLM counts "
            "prompt_tokens inclusively, so this row is inconsistent")
    if reasoning > out:
        raise InputFormatError(f"reasoning_tokens ({reasoning}) exceed completion_tokens ({out})")
    return Usage(input_tokens=uncached, cache_read_tokens=read, cache_write_5m_tokens=write,
                 output_tokens=out, reasoning_tokens=reasoning), inclusive_writes


def register(registry: Any) -> None:
    registry.add(LiteLLMImporter)
