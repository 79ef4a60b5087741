"""``track(client)`` for a ``google.genai.Client`` (Gemini API and Vertex AI).

Wrapped, as instance attributes of the client's ``models`` / ``aio.models`` resources:

* ``models.generate_content`` and ``aio.models.generate_content``: usage from the
  response's ``usage_metadata``;
* ``models.generate_content_stream`` (a generator) and
  ``aio.models.generate_content_stream`` (a coroutine returning an async iterator):
  every chunk carries the *cumulative* ``usage_metadata``; the last one seen is recorded
  when the stream ends (``meta.stream_incomplete`` when it is closed before a
  ``finish_reason``).

The SDK's snake_case pydantic objects are dumped by alias (camelCase, as on the wire)
and converted once by :func:`ctxbudget.adapters.from_gemini` (``promptTokenCount``
includes ``cachedContentTokenCount``; thoughts are billed as output). Provider id for
pricing: ``google`` (genai-prices prices Gemini on both the Gemini API and Vertex AI
under it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..adapters import from_gemini
from ._core import PendingCall, adapt_guarded, before_call, finish_call, internal_error
from ._streams import AsyncStreamProxy, Observer, StreamProxy

__all__ = ["gemini_body", "instrument_genai"]

API = "gemini"


def _dump(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(by_alias=True, exclude_none=True, mode="json")
    return obj


def gemini_body(resp: Any) -> dict[str, Any] | None:
    """The wire-shaped ``{"usageMetadata", "modelVersion", "responseId"}`` of a
    ``GenerateContentResponse`` (``None`` when it has no usage), with the candidates'
    ``groundingMetadata`` (grounded prompts are billed per request)."""
    usage = getattr(resp, "usage_metadata", None)
    if usage is None:
        return None
    body = {"usageMetadata": _dump(usage), "modelVersion": getattr(resp, "model_version", None),
            "responseId": getattr(resp, "response_id", None)}
    grounding = [{"groundingMetadata": _dump(g)} for c in getattr(resp, "candidates", None) or ()
                 if (g := getattr(c, "grounding_metadata", None)) is not None]
    if grounding:
        body["candidates"] = grounding
    return body


class GeminiObserver(Observer):
    adapter = staticmethod(from_gemini)

    def __init__(self, pending: PendingCall) -> None:
        super().__init__(pending)
        self.last: dict[str, Any] | None = None

    def _observe(self, ev: Any) -> None:
        b = gemini_body(ev)
        if b is not None:
            if self.last is not None:  # keep ids seen on earlier chunks
                b["modelVersion"] = b["modelVersion"] or self.last.get("modelVersion")
                b["responseId"] = b["responseId"] or self.last.get("responseId")
            self.last = b
        for cand in getattr(ev, "candidates", None) or ():
            if getattr(cand, "finish_reason", None) is not None:
                self.complete = True

    def body(self) -> Any:
        return self.last


def _record(p: PendingCall, resp: Any) -> Any:
    try:
        body = gemini_body(resp)
        finish_call(p, adapt_guarded(from_gemini, body) if body is not None else None)
    except Exception as exc:
        internal_error(exc, "gemini response")
    return resp


def _wrap_sync(orig: Callable[..., Any], provider: str) -> Callable[..., Any]:
    @functools.wraps(orig)
    def generate_content(*args: Any, **kwargs: Any) -> Any:
        p = before_call(provider, API, kwargs)
        try:
            resp = orig(*args, **kwargs)
        except Exception as exc:
            finish_call(p, None, error=exc)
            raise
        return _record(p, resp)

    return generate_content


def _wrap_async(orig: Callable[..., Any], provider: str) -> Callable[..., Any]:
    @functools.wraps(orig)
    async def generate_content(*args: Any, **kwargs: Any) -> Any:
        p = before_call(provider, API, kwargs)
        try:
            resp = await orig(*args, **kwargs)
        except Exception as exc:
            finish_call(p, None, error=exc)
            raise
        return _record(p, resp)

    return generate_content


def _wrap_stream(orig: Callable[..., Any], provider: str) -> Callable[..., Any]:
    @functools.wraps(orig)
    def generate_content_stream(*args: Any, **kwargs: Any) -> Any:
        p = before_call(provider, API, kwargs)
        try:
            it = orig(*args, **kwargs)
        except Exception as exc:
            finish_call(p, None, error=exc)
            raise
        return StreamProxy(it, GeminiObserver(p))

    return generate_content_stream


def _wrap_astream(orig: Callable[..., Any], provider: str) -> Callable[..., Any]:
    @functools.wraps(orig)
    async def generate_content_stream(*args: Any, **kwargs: Any) -> Any:
        p = before_call(provider, API, kwargs)
        try:
            it = await orig(*args, **kwargs)
        except Exception as exc:
            finish_call(p, None, error=exc)
            raise
        return AsyncStreamProxy(it, GeminiObserver(p))

    return generate_content_stream


def _patch(res: Any, name: str, make: Callable[[Callable[..., Any], str], Callable[..., Any]],
           provider: str) -> None:
    orig = getattr(res, name, None)
    if orig is None or hasattr(orig, "__ctxbudget_wrapped__"):
        return
    wrapped = make(orig, provider)
    wrapped.__ctxbudget_wrapped__ = orig  # type: ignore[attr-defined]
    setattr(res, name, wrapped)


def instrument_genai(client: Any, provider: str | None) -> Any:
    """Instrument a ``google.genai.Client`` in place (idempotent)."""
    prov = provider or "google"
    models = getattr(client, "models", None)
    if models is not None:
        _patch(models, "generate_content", _wrap_sync, prov)
        _patch(models, "generate_content_stream", _wrap_stream, prov)
    aio = getattr(client, "aio", None)
    amodels = getattr(aio, "models", None) if aio is not None else None
    if amodels is not None:
        _patch(amodels, "generate_content", _wrap_async, prov)
        _patch(amodels, "generate_content_stream", _wrap_astream, prov)
    return client
