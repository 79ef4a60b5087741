"""OTLP/HTTP trace receiver: ``ctxbudget otlp --port 4318``.

Any app instrumented with OpenTelemetry (OpenLLMetry, OpenLIT, Logfire / pydantic-ai,
the OTel GenAI instrumentations) exports its spans here instead of (or besides) a
collector: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:4318/v1/traces``.

* ``POST /v1/traces`` with ``application/x-protobuf`` (an
  ``ExportTraceServiceRequest``, decoded by ``opentelemetry-proto``) or
  ``application/json`` (OTLP/JSON), optionally ``Content-Encoding: gzip``.
* Each span is converted exactly as the file importer converts it
  (:meth:`ctxbudget.sources.otel.OtelImporter.convert`: same attribute names, provider
  mapping, task ids, ``request_id = traceId:spanId``); spans without ``gen_ai.usage.*``
  are skipped. Calls are recorded through :func:`ctxbudget.track.record_call` (the
  spool; ``ctxbudget report`` ingests it) and flushed before the response.
* De-duplicated by span id: a span already received by this process is not recorded
  again, and the store keys calls by ``otel:traceId:spanId`` (the file importer's key),
  so a re-sent span adds nothing across restarts or imports either.
* A payload that cannot be decoded gets ``400`` with the reason; a decodable request
  whose spans are partly invalid (e.g. cached tokens above input tokens) records the
  valid spans and answers OTLP's ``partialSuccess`` with ``rejectedSpans`` and the
  reasons, as the OTLP spec asks; an unsupported content type gets ``415``.
* ``GET /metrics``: Prometheus text of the receiver's counters and of
  :mod:`ctxbudget.metrics` (calls, spend, tokens per bucket...).
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CtxBudgetError
from ..usage import Call, check_sane

__all__ = ["OtlpError", "Receiver", "build_app", "decode_request", "serve"]

log = logging.getLogger("ctxbudget.otlp")

_MAX_BODY = 64 * 1024 * 1024


class OtlpError(CtxBudgetError):
    """A request the receiver cannot decode (answered with 400 and this message)."""


def _hex_id(v: Any) -> Any:
    # MessageToDict renders bytes ids as base64; OTLP/JSON uses lowercase hex
    if isinstance(v, str) and v:
        try:
            return base64.b64decode(v, validate=True).hex()
        except ValueError:
            return v
    return v


def _protobuf_to_dict(body: bytes) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    msg = ExportTraceServiceRequest()
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpError(f"protobuf body is not an ExportTraceServiceRequest: {exc}") from None
    doc: dict[str, Any] = MessageToDict(msg)
    for rs in doc.get("resourceSpans", ()):
        for ss in rs.get("scopeSpans", ()):
            for span in ss.get("spans", ()):
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in span:
                        span[k] = _hex_id(span[k])
    return doc


def decode_request(body: bytes, content_type: str, content_encoding: str = ""
                   ) -> tuple[dict[str, Any], bool]:
    """An OTLP trace export request as OTLP/JSON-shaped dict, and whether it was protobuf.

    Raises :class:`OtlpError` naming what is wrong."""
    enc = content_encoding.strip().lower()
    if enc == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise OtlpError(f"Content-Encoding gzip: body does not decompress ({exc})") from None
    elif enc not in ("", "identity"):
        raise OtlpError(f"unsupported Content-Encoding {content_encoding!r} (gzip or none)")
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == "application/x-protobuf":
        return _protobuf_to_dict(body), True
    if ctype == "application/json":
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise OtlpError(f"body is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise OtlpError("body: expected a JSON object (ExportTraceServiceRequest)")
        rs = doc.get("resourceSpans", [])
        if not isinstance(rs, list):
            raise OtlpError("resourceSpans: expected a list")
        for i, r in enumerate(rs):
            if not isinstance(r, dict):
                raise OtlpError(f"resourceSpans[{i}]: expected an object")
            ss = r.get("scopeSpans", [])
            if not isinstance(ss, list) or not all(isinstance(s, dict) for s in ss):
                raise OtlpError(f"resourceSpans[{i}].scopeSpans: expected a list of objects")
            for j, s in enumerate(ss):
                if not isinstance(s.get("spans", []), list):
                    raise OtlpError(f"resourceSpans[{i}].scopeSpans[{j}].spans: expected a list")
        return doc, False
    raise OtlpError(f"unsupported Content-Type {content_type!r}: "
                    "application/x-protobuf or application/json")


def _spans(doc: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(where, span, resource attributes); the resource is an ``InputFormatError`` when
    it is malformed (every span under it is then rejected)."""
    from ..errors import InputFormatError
    from ..sources.otel import flatten_attributes

    for i, rs in enumerate(doc.get("resourceSpans") or ()):
        resource = rs.get("resource") or {}
        res: Any
        try:
            if not isinstance(resource, Mapping):
                raise InputFormatError("resource is not an object")
            res = flatten_attributes(resource.get("attributes"))
        except InputFormatError as exc:
            res = InputFormatError(f"resourceSpans[{i}].resource: {exc}")
        for j, ss in enumerate(rs.get("scopeSpans") or ()):
            for k, span in enumerate(ss.get("spans") or ()):
                yield f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]", span, res


@dataclass
class Result:
    """What one export request did."""

    recorded: int = 0
    duplicates: int = 0
    skipped: int = 0
    rejected: list[str] = field(default_factory=list)


@dataclass
class Receiver:
    """Converts and records spans; remembers the span ids it has recorded."""

    recorder: Callable[[Call], None]
    flush: Callable[[], Any] = lambda: None
    max_seen: int = 1_000_000
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    counters: dict[str, int] = field(default_factory=lambda: {
        "requests": 0, "bad_requests": 0, "spans_recorded": 0, "spans_duplicate": 0,
        "spans_skipped": 0, "spans_rejected": 0})

    def handle(self, doc: Mapping[str, Any]) -> Result:
        from ..errors import InputFormatError
        from ..sources._base import Record, Skip
        from ..sources.otel import OtelImporter

        imp = OtelImporter()
        res = Result()
        calls: list[Call] = []
        for where, span, resource in _spans(doc):
            if isinstance(resource, Exception):
                res.rejected.append(f"{where}: {resource}")
                continue
            if not isinstance(span, Mapping):
                res.rejected.append(f"{where}: not an object")
                continue
            rec = Record(path=Path("<otlp>"), line=0,
                         value={"span": span, "resource": resource, "where": where})
            try:
                for out in imp.convert(rec):
                    if isinstance(out, Skip):
                        res.skipped += 1
                    elif isinstance(out, Call):
                        check_sane(out)
                        calls.append(out)
            except InputFormatError as exc:
                res.rejected.append(str(exc))
            except (ValueError, TypeError, KeyError) as exc:
                res.rejected.append(f"{where}: {exc}")
        with self._lock:
            fresh = []
            for c in calls:
                key = c.request_id or ""
                if key in self._seen:
                    res.duplicates += 1
                    continue
                self._seen[key] = None
                if len(self._seen) > self.max_seen:
                    self._seen.popitem(last=False)
                fresh.append(c)
            self.counters["requests"] += 1
            self.counters["spans_recorded"] += len(fresh)
            self.counters["spans_duplicate"] += res.duplicates
            self.counters["spans_skipped"] += res.skipped
            self.counters["spans_rejected"] += len(res.rejected)
        for c in fresh:
            self.recorder(c)
        res.recorded = len(fresh)
        if fresh:
            self.flush()
        return res


def _response(res: Result, protobuf: bool) -> tuple[bytes, str]:
    partial: dict[str, Any] = {}
    if res.rejected:
        shown = "; ".join(res.rejected[:5])
        more = f" (and {len(res.rejected) - 5} more)" if len(res.rejected) > 5 else ""
        partial = {"rejectedSpans": len(res.rejected), "errorMessage": shown + more}
    if protobuf:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        msg = ExportTraceServiceResponse()
        if partial:
            msg.partial_success.rejected_spans = partial["rejectedSpans"]
            msg.partial_success.error_message = partial["errorMessage"]
        return msg.SerializeToString(), "application/x-protobuf"
    body: dict[str, Any] = {"partialSuccess": partial} if partial else {}
    return json.dumps(body).encode(), "application/json"


def build_app(receiver: Receiver, *, metrics: Callable[[], str] | None = None) -> Any:
    """The ASGI app (Starlette) serving ``receiver``; ``metrics`` renders ``/metrics``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def traces(request: Request) -> Response:
        body = await request.body()
        if len(body) > _MAX_BODY:
            return PlainTextResponse(f"body over {_MAX_BODY} bytes", status_code=413)
        ctype = request.headers.get("content-type", "")
        try:
            doc, protobuf = decode_request(body, ctype,
                                           request.headers.get("content-encoding", ""))
        except OtlpError as exc:
            with receiver._lock:
                receiver.counters["bad_requests"] += 1
            status = 415 if str(exc).startswith("unsupported Content-Type") else 400
            log.warning("ctxbudget otlp: %s", exc)
            resp: Response = _status_response(str(exc), status, ctype)
            return resp
        res = await run_in_threadpool(receiver.handle, doc)
        payload, rtype = _response(res, protobuf)
        return Response(payload, media_type=rtype)

    async def metrics_view(request: Request) -> Response:
        text = receiver_metrics(receiver) + (metrics() if metrics is not None else "")
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"]),
                             Route("/metrics", metrics_view, methods=["GET"])])


def _status_response(message: str, status: int, ctype: str) -> Any:
    from starlette.responses import Response

    if ctype.split(";", 1)[0].strip().lower() == "application/x-protobuf":
        # google.rpc.Status{code=3 INVALID_ARGUMENT (field 1), message (field 2)}
        msg = message.encode()
        body = b"\x08\x03\x12" + _varint(len(msg)) + msg
        return Response(body, status_code=status, media_type="application/x-protobuf")
    return Response(json.dumps({"code": 3, "message": message}).encode(), status_code=status,
                    media_type="application/json")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def receiver_metrics(receiver: Receiver) -> str:
    lines = []
    for name, help_ in (("requests", "OTLP export requests decoded"),
                        ("bad_requests", "OTLP requests rejected with 400/415"),
                        ("spans_recorded", "spans recorded as calls"),
                        ("spans_duplicate", "spans already recorded (same trace and span id)"),
                        ("spans_skipped", "spans without gen_ai usage"),
                        ("spans_rejected", "spans with invalid usage attributes")):
        metric = f"ctxbudget_otlp_{name}_total"
        lines += [f"# HELP {metric} {help_}", f"# TYPE {metric} counter",
                  f"{metric} {receiver.counters[name]}"]
    return "\n".join(lines) + "\n"


def serve(*, host: str = "127.0.0.1", port: int = 4318, log_level: str = "warning") -> None:
    """Run the receiver until interrupted, recording into the tracker's spool."""
    import uvicorn

    from .. import track
    from ..metrics import CallMetrics

    m = CallMetrics()

    def record(c: Call) -> None:
        track.record_call(c)
        try:
            m.observe(c)
        except Exception as exc:  # metrics never cost a span
            log.warning("ctxbudget otlp: metrics: %r", exc)

    receiver = Receiver(recorder=record, flush=track.flush)
    uvicorn.run(build_app(receiver, metrics=m.render), host=host, port=port,
                log_level=log_level)
