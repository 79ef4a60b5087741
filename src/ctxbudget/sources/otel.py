"""OpenTelemetry traces in OTLP JSON (``resourceSpans[].scopeSpans[].spans[]``).

A file holds one ``ExportTraceServiceRequest`` document or JSON Lines of them (what
the collector's file exporter writes). Each span with ``gen_ai.usage.*`` attributes
is one call, converted by :func:`ctxbudget.adapters.from_otel` (the GenAI semantic
conventions count ``gen_ai.usage.input_tokens`` *inclusive* of
``gen_ai.usage.cache_read.input_tokens`` and ``cache_creation.input_tokens``). Besides
the current conventions it reads the names pydantic-ai / Logfire
(``gen_ai.usage.details.*``, including the 1-hour cache write
``ephemeral_1h_input_tokens``), OpenLLMetry (``gen_ai.usage.prompt_tokens``,
``..._input_tokens``) and OpenLIT emit: see :data:`ctxbudget.adapters.OTEL_ATTRIBUTES`.
Spans without usage (HTTP, tool, agent spans) are skipped as ``span without
gen_ai usage``.

* provider: ``gen_ai.provider.name`` (else the older ``gen_ai.system``), mapped to
  genai-prices ids (``aws.bedrock`` -> ``aws``, ``gcp.*`` -> ``google``...);
* model: ``gen_ai.response.model``, else ``gen_ai.request.model``;
* time: ``startTimeUnixNano``; latency: end - start; status ``error`` when the
  span status code is ERROR;
* key: ``otel:<traceId>:<spanId>``; ``task_id``: attribute ``ctxbudget.task_id``
  else the trace id; ``session_id``: ``session.id`` / ``gen_ai.conversation.id``.
Resource attributes apply to every span under them (span attributes win).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..adapters import OTEL_USAGE_KEYS, from_otel, iteration_calls, otel_provider
from ..errors import InputFormatError
from ..usage import Call
from ._base import Importer, Record, Skip, json_records, parse_ts

__all__ = ["OtelImporter", "flatten_attributes", "register"]

def _value(v: Any) -> Any:
    if not isinstance(v, Mapping):
        return v
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (ValueError, TypeError):  # not a number, or past Python's int-str limit
            raise InputFormatError(f"intValue {str(v['intValue'])[:40]!r} is not an "
                                   "integer") from None
    if "arrayValue" in v:
        arr = v["arrayValue"]
        values = arr.get("values") if isinstance(arr, Mapping) else None
        if not isinstance(values, list):
            return None if values is None and isinstance(arr, Mapping) else _bad_array()
        return [_value(x) for x in values]
    return None


def _bad_array() -> Any:
    raise InputFormatError("arrayValue.values is not a list")


def flatten_attributes(attrs: Any) -> dict[str, Any]:
    """OTLP JSON ``[{"key", "value": {"intValue": "12"}}]`` (or a plain mapping) as a dict."""
    if isinstance(attrs, Mapping):
        return dict(attrs)
    if attrs is None:
        return {}
    if not isinstance(attrs, list):
        raise InputFormatError(f"attributes is not a list ({type(attrs).__name__})")
    out: dict[str, Any] = {}
    for kv in attrs:
        if isinstance(kv, Mapping) and "key" in kv:
            out[str(kv["key"])] = _value(kv.get("value"))
    return out


class OtelImporter(Importer):
    name = "otel"
    description = "OTLP JSON traces with gen_ai.* span attributes"
    patterns = ("*.json", "*.jsonl")

    def records(self, path: Path) -> Iterator[Record]:
        for doc in json_records(path):
            if isinstance(doc.value, Exception) or not isinstance(doc.value, Mapping):
                yield doc
                continue
            try:
                spans = list(_spans(doc.value))
            except InputFormatError as exc:  # the document's shape: one rejected record
                yield Record(path=path, line=doc.line, value=exc, nbytes=doc.nbytes)
                continue
            if not spans:
                yield Record(path=path, line=doc.line, value={"_empty": True},
                             nbytes=doc.nbytes)
            share = doc.nbytes // max(1, len(spans))
            for where, span, res in spans:
                value = res if isinstance(res, Exception) else {
                    "span": span, "resource": res, "where": where}
                yield Record(path=path, line=doc.line, value=value, nbytes=share)

    def convert(self, rec: Record) -> Iterable[Any]:
        v = rec.value
        if v.get("_empty"):
            yield Skip("document without spans")
            return
        span, where = v["span"], v["where"]
        if not isinstance(span, Mapping):
            raise InputFormatError(f"{where}: not an object")
        attrs = {**v["resource"], **flatten_attributes(span.get("attributes"))}
        if not any(k in attrs for k in OTEL_USAGE_KEYS):
            yield Skip("span without gen_ai usage")
            return
        try:
            adapted = from_otel(attrs)
        except Exception as exc:
            raise InputFormatError(f"{where}: {exc}") from None
        model = adapted.model
        if not model:
            raise InputFormatError(f"{where}: no gen_ai.response.model / gen_ai.request.model")
        system = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")
        if not system:
            raise InputFormatError(f"{where}: no gen_ai.provider.name / gen_ai.system")
        provider = otel_provider(str(system))
        start = span.get("startTimeUnixNano")
        ts = parse_ts(int(start) if start else None, f"{where}.startTimeUnixNano")
        end = span.get("endTimeUnixNano")
        latency = (int(end) - int(start)) / 1e6 if end and start else None
        status = span.get("status") or {}
        code = status.get("code") if isinstance(status, Mapping) else None
        trace, span_id = span.get("traceId"), span.get("spanId")
        if not span_id:
            raise InputFormatError(f"{where}: spanId is missing")
        meta = {"response_id": adapted.request_id} if adapted.request_id else None
        yield from iteration_calls(adapted, Call(
            ts=ts, provider=provider, model=model, usage=adapted.usage,
            task_id=str(attrs.get("ctxbudget.task_id") or trace or "") or None,
            session_id=attrs.get("session.id") or attrs.get("gen_ai.conversation.id"),
            task_type=attrs.get("ctxbudget.task_type"),
            request_id=f"{trace}:{span_id}", latency_ms=latency,
            status="error" if code in (2, "STATUS_CODE_ERROR") else "ok",
            source="otel", input_inclusive=True, meta=meta,
        ))


def _spans(doc: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(where, span, resource attributes) of each span; a part of the document of the
    wrong shape comes as (where, None, InputFormatError) — rejected, never dropped.
    A document whose ``resourceSpans`` is not a list raises ``InputFormatError``."""
    rss = doc.get("resourceSpans")
    if rss is None:
        return
    if not isinstance(rss, list):
        raise InputFormatError(f"resourceSpans is not a list ({type(rss).__name__})")
    for i, rs in enumerate(rss):
        where = f"resourceSpans[{i}]"
        if not isinstance(rs, Mapping):
            yield where, None, InputFormatError(f"{where}: not an object")
            continue
        resource = rs.get("resource") or {}
        try:
            if not isinstance(resource, Mapping):
                raise InputFormatError("resource is not an object")
            res = flatten_attributes(resource.get("attributes"))
            scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ()
            if not isinstance(scopes, list):
                raise InputFormatError("scopeSpans is not a list")
        except InputFormatError as exc:
            yield where, None, InputFormatError(f"{where}: {exc}")
            continue
        for j, ss in enumerate(scopes):
            at = f"{where}.scopeSpans[{j}]"
            spans = (ss or {}).get("spans") if isinstance(ss or {}, Mapping) else ss
            if not isinstance(spans or (), list):
                yield at, None, InputFormatError(f"{at}: not an object with a spans list")
                continue
            for k, span in enumerate(spans or ()):
                yield f"{at}.spans[{k}]", span, res


def register(registry: Any) -> None:
    registry.add(OtelImporter)
