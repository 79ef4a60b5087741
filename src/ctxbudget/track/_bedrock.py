"""``track(client)`` for a boto3 ``bedrock-runtime`` client.

Wrapped, as instance attributes of that one client (other boto3 clients untouched):

* ``converse``: usage from the response's ``usage`` (``inputTokens`` *excludes*
  ``cacheReadInputTokens`` / ``cacheWriteInputTokens``), converted once by
  :func:`ctxbudget.adapters.from_bedrock`; request id from ``ResponseMetadata``;
* ``converse_stream``: the response's ``stream`` is replaced by a transparent proxy
  that reads the ``metadata`` event's usage; the call is recorded when the stream ends
  (``meta.stream_incomplete`` when closed before ``messageStop``);
* ``invoke_model``: an Anthropic Messages body (``anthropic.*`` models) is read for its
  ``usage`` by :func:`ctxbudget.adapters.from_bedrock_anthropic`; other bodies are recorded
  from Bedrock's ``x-amzn-bedrock-*-token-count`` response headers. The body is read
  once and handed back as a fresh ``StreamingBody`` holding the same bytes;
* ``invoke_model_with_response_stream``: the response's ``body`` (an event stream of
  ``{"chunk": {"bytes": ...}}`` events, each a JSON document) is replaced by a transparent
  proxy. For an Anthropic model each chunk is an Anthropic streaming event: the usage is
  merged from ``message_start`` (input and cache counts) and ``message_delta``
  (cumulative counts, which overwrite) and read by
  :func:`ctxbudget.adapters.from_bedrock_anthropic`; other models' final chunk carries
  only ``amazon-bedrock-invocationMetrics`` (``inputTokenCount`` excludes the
  ``cacheRead/WriteInputTokenCount``, as Converse's ``inputTokens`` does), read as
  Converse usage. The Anthropic usage wins when both are present (it splits cache
  writes by TTL). Recorded when the stream ends, ``meta.stream_incomplete`` when closed
  before ``message_stop`` / the metrics chunk.

Not covered: aiobotocore clients.
The model is the request's ``modelId`` (Bedrock ids such as
``us.anthropic.claude-sonnet-4-5-20250929-v1:0`` are what genai-prices' ``aws``
provider prices); provider id ``aws``.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
from collections.abc import Callable, Mapping
from typing import Any

from ..adapters import AdaptedUsage, from_bedrock, from_bedrock_anthropic
from ._core import PendingCall, adapt_guarded, before_call, finish_call, internal_error
from ._streams import Observer, StreamProxy

__all__ = ["instrument_bedrock", "invoke_model_usage", "invoke_stream_usage"]

API = "bedrock"

_HEADERS = {
    "inputTokens": "x-amzn-bedrock-input-token-count",
    "outputTokens": "x-amzn-bedrock-output-token-count",
    "cacheReadInputTokens": "x-amzn-bedrock-cache-read-input-token-count",
    "cacheWriteInputTokens": "x-amzn-bedrock-cache-write-input-token-count",
}


def _before(provider: str, kwargs: dict[str, Any]) -> PendingCall:
    view = dict(kwargs)
    view["model"] = kwargs.get("modelId")
    p = before_call(provider, API, view)
    kwargs.pop("ctxbudget_ledger", None)
    return p


def _without_model(a: AdaptedUsage | None) -> AdaptedUsage | None:
    # the request's modelId (region / profile prefixed) is what Bedrock bills
    return dataclasses.replace(a, model=None) if a is not None else None


class BedrockObserver(Observer):
    adapter = staticmethod(from_bedrock)

    def __init__(self, pending: PendingCall, metadata: Any) -> None:
        super().__init__(pending)
        self.usage: Any = None
        self.response_metadata = metadata

    def _observe(self, ev: Any) -> None:
        if not isinstance(ev, Mapping):
            return
        meta = ev.get("metadata")
        if isinstance(meta, Mapping) and meta.get("usage") is not None:
            self.usage = meta["usage"]
        if "messageStop" in ev:
            self.complete = True

    def body(self) -> Any:
        if self.usage is None:
            return None
        return {"usage": self.usage, "ResponseMetadata": self.response_metadata}


_METRICS = {
    "inputTokens": "inputTokenCount",
    "outputTokens": "outputTokenCount",
    "cacheReadInputTokens": "cacheReadInputTokenCount",
    "cacheWriteInputTokens": "cacheWriteInputTokenCount",
}


def invoke_stream_usage(body: Mapping[str, Any]) -> AdaptedUsage:
    """Usage of one ``invoke_model_with_response_stream`` call from what its chunks
    carried: ``{"usage": <merged Anthropic usage> | None, "id": ..., "metrics":
    <amazon-bedrock-invocationMetrics> | None, "ResponseMetadata": ...}``."""
    usage = body.get("usage")
    if isinstance(usage, Mapping) and usage:
        a = dataclasses.replace(from_bedrock_anthropic({"usage": usage, "id": body.get("id")}),
                                model=None)
    else:
        m = body.get("metrics")
        if not isinstance(m, Mapping):
            raise ValueError("no usage in the stream")
        counts = {k: m[name] for k, name in _METRICS.items() if m.get(name) is not None}
        counts["totalTokens"] = sum(int(v) for v in counts.values())
        a = from_bedrock({"usage": counts})
    if a.request_id is None:
        rid = (body.get("ResponseMetadata") or {}).get("RequestId")
        a = dataclasses.replace(a, request_id=rid)
    return a


class InvokeStreamObserver(Observer):
    """Reads the chunks of an ``invoke_model_with_response_stream`` body."""

    adapter = staticmethod(invoke_stream_usage)

    def __init__(self, pending: PendingCall, metadata: Any) -> None:
        super().__init__(pending)
        self.usage: dict[str, Any] = {}
        self.id: str | None = None
        self.metrics: Mapping[str, Any] | None = None
        self.response_metadata = metadata

    def _observe(self, ev: Any) -> None:
        chunk = ev.get("chunk") if isinstance(ev, Mapping) else None
        raw = chunk.get("bytes") if isinstance(chunk, Mapping) else None
        if not isinstance(raw, (bytes, bytearray, str)):
            return
        doc = json.loads(raw)
        if not isinstance(doc, Mapping):
            return
        t = doc.get("type")
        if t == "message_start" and isinstance(doc.get("message"), Mapping):
            m = doc["message"]
            self.id = m.get("id") if isinstance(m.get("id"), str) else None
            u = m.get("usage")
            if isinstance(u, Mapping):
                self.usage = {k: v for k, v in u.items() if v is not None}
        elif t == "message_delta" and isinstance(doc.get("usage"), Mapping):
            for k, v in doc["usage"].items():
                if v is not None:
                    self.usage[k] = v
        elif t == "message_stop":
            self.complete = True
        metrics = doc.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, Mapping):
            self.metrics = metrics
            self.complete = True

    def body(self) -> Any:
        if not self.usage and self.metrics is None:
            return None
        return {"usage": self.usage, "id": self.id, "metrics": self.metrics,
                "ResponseMetadata": self.response_metadata}


def invoke_model_usage(model_id: str, body: bytes, headers: Mapping[str, Any]
                       ) -> AdaptedUsage | None:
    """Usage of one ``invoke_model`` response: its Anthropic body, else Bedrock's headers."""
    doc: Any = None
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, Mapping) and isinstance(doc.get("usage"), Mapping) \
            and "input_tokens" in doc["usage"]:
        return _without_model(from_bedrock_anthropic(doc))
    h = {str(k).lower(): v for k, v in headers.items()}
    if _HEADERS["inputTokens"] not in h:
        return None
    usage = {k: int(h[name]) for k, name in _HEADERS.items() if name in h}
    return from_bedrock({"usage": usage})


def _wrap_converse(orig: Callable[..., Any], provider: str) -> Callable[..., Any]:
    @functools.wraps(orig)
    def converse(*args: Any, **kwargs: Any) -> Any:
        p = _before(provider, kwargs)
        try:
            resp = orig(*args, **kwargs)
        except Exception as exc:
            finish_call(p, None, error=exc)
            raise
        try:
            adapted = adapt_guarded(from_bedrock, resp) if resp.get("usage") else None
            finish_call(p, adapted)
        except Exception as exc:
            internal_error(exc, "bedrock converse")
        return resp

    return converse


def _wrap_converse_stream(orig: Callable[..., Any], provider: str) -> Callable[..., Any]:
    @functools.wraps(orig)
    def converse_stream(*args: Any, **kwargs: Any) -> Any:
        p = _before(provider, kwargs)
        try:
            resp = orig(*args, **kwargs)
        except Exception as exc:
            finish_call(p, None, error=exc)
            raise
        try:
            resp["stream"] = StreamProxy(resp["stream"],
                                         BedrockObserver(p, resp.get("ResponseMetadata")))
        except Exception as exc:
            internal_error(exc, "bedrock converse_stream")
        return resp

    return converse_stream


def _wrap_invoke(orig: Callable[..., Any], provider: str) -> Callable[..., Any]:
    @functools.wraps(orig)
    def invoke_model(*args: Any, **kwargs: Any) -> Any:
        p = _before(provider, kwargs)
        try:
            resp = orig(*args, **kwargs)
        except Exception as exc:
            finish_call(p, None, error=exc)
            raise
        try:
            from botocore.response import StreamingBody

            data = resp["body"].read()
            resp["body"] = StreamingBody(io.BytesIO(data), len(data))
            meta = resp.get("ResponseMetadata") or {}
            try:
                adapted = invoke_model_usage(str(kwargs.get("modelId")), data,
                                             meta.get("HTTPHeaders") or {})
            except Exception as exc:
                internal_error(exc, "usage adapter")
                adapted = None
            if adapted is not None and adapted.request_id is None:
                adapted = dataclasses.replace(adapted, request_id=meta.get("RequestId"))
            finish_call(p, adapted, meta={"api": "invoke_model"})
        except Exception as exc:
            internal_error(exc, "bedrock invoke_model")
        return resp

    return invoke_model


def _wrap_invoke_stream(orig: Callable[..., Any], provider: str) -> Callable[..., Any]:
    @functools.wraps(orig)
    def invoke_model_with_response_stream(*args: Any, **kwargs: Any) -> Any:
        p = _before(provider, kwargs)
        p.meta["api"] = "invoke_model_with_response_stream"
        try:
            resp = orig(*args, **kwargs)
        except Exception as exc:
            finish_call(p, None, error=exc)
            raise
        try:
            resp["body"] = StreamProxy(resp["body"],
                                       InvokeStreamObserver(p, resp.get("ResponseMetadata")))
        except Exception as exc:
            internal_error(exc, "bedrock invoke_model_with_response_stream")
        return resp

    return invoke_model_with_response_stream


def _patch(client: Any, name: str, make: Callable[[Callable[..., Any], str], Callable[..., Any]],
           provider: str) -> None:
    orig = getattr(client, name, None)
    if orig is None or hasattr(orig, "__ctxbudget_wrapped__"):
        return
    wrapped = make(orig, provider)
    wrapped.__ctxbudget_wrapped__ = orig  # type: ignore[attr-defined]
    setattr(client, name, wrapped)


def is_bedrock_runtime(client: Any) -> bool:
    meta = getattr(client, "meta", None)
    sm = getattr(meta, "service_model", None)
    return getattr(sm, "service_name", None) == "bedrock-runtime"


def instrument_bedrock(client: Any, provider: str | None) -> Any:
    """Instrument a boto3 ``bedrock-runtime`` client in place (idempotent)."""
    prov = provider or "aws"
    _patch(client, "converse", _wrap_converse, prov)
    _patch(client, "converse_stream", _wrap_converse_stream, prov)
    _patch(client, "invoke_model", _wrap_invoke, prov)
    _patch(client, "invoke_model_with_response_stream", _wrap_invoke_stream, prov)
    return client
