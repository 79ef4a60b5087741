"""``track(client)``: instrument one Anthropic or OpenAI client instance.

We replace the ``create`` (and Anthropic's ``stream``) *instance attributes* of the
client's resource objects — never the SDK classes — so other clients in the same
process stay untouched. The same client is returned. Covered:

* ``anthropic.Anthropic`` / ``AsyncAnthropic``: ``messages.create`` (incl.
  ``stream=True``), ``messages.parse``, ``messages.stream(...)``, and the same on
  ``beta.messages``;
* ``openai.OpenAI`` / ``AsyncOpenAI`` (and SDK-compatible providers: the provider is
  resolved from the client's base URL, else per call from the model, see
  :mod:`ctxbudget.track._providers`; ``provider=`` overrides):
  ``chat.completions.create`` (incl. ``stream=True``) / ``.parse``, and
  ``responses.create`` (incl. ``stream=True``) / ``.parse``; their ``.stream(...)``
  helpers call ``self.create`` and so are tracked through it.

* ``google.genai.Client``: see :mod:`ctxbudget.track._genai`;
* boto3 ``bedrock-runtime`` clients: see :mod:`ctxbudget.track._bedrock`.

Not covered (call through a tracked ``create`` instead): ``with_raw_response`` /
``with_streaming_response``, ``with_options(...)`` copies, batch APIs.

Every wrapped call accepts ``ctxbudget_ledger=`` (removed before the SDK sees it).
API exceptions are recorded as ``status="error"`` and re-raised unchanged.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable
from typing import Any

from ..adapters import (
    AdaptedUsage,
    from_anthropic,
    from_deepseek,
    from_groq,
    from_mistral,
    from_openai_chat,
    from_openai_responses,
    from_openrouter,
    from_xai,
)
from ._bedrock import instrument_bedrock, is_bedrock_runtime
from ._core import (
    DROPPED,
    PendingCall,
    adapt_guarded,
    before_call,
    clear_pending,
    finish_call,
    internal_error,
    note_attempt,
    release_call,
)
from ._genai import instrument_genai
from ._providers import provider_for_model, provider_for_url
from ._streams import AsyncStreamProxy, StreamProxy, make_observer

__all__ = ["track"]

_ADAPTERS: dict[str, Callable[[Any], AdaptedUsage]] = {
    "anthropic": from_anthropic,
    "openai-chat": from_openai_chat,
    "openai-responses": from_openai_responses,
}


def _body(resp: Any) -> dict[str, Any]:
    body = {"usage": resp.usage, "id": getattr(resp, "id", None),
            "model": getattr(resp, "model", None),
            "service_tier": getattr(resp, "service_tier", None)}
    output = getattr(resp, "output", None)  # Responses: web / file search call items
    if isinstance(output, list):
        body["output"] = output
    return body


#: OpenAI-compatible Chat Completions whose usage differs from OpenAI's (DeepSeek's
#: prompt_cache_hit_tokens, Mistral's num_cached_tokens, xAI's reasoning billed beside
#: completion_tokens...): the provider's own adapter.
_CHAT_ADAPTERS: dict[str, Callable[[Any], AdaptedUsage]] = {
    "deepseek": from_deepseek, "mistral": from_mistral, "groq": from_groq,
    "openrouter": from_openrouter, "x-ai": from_xai,
}


def _adapter(p: PendingCall) -> Callable[[Any], AdaptedUsage]:
    if p.api == "openai-chat":
        return _CHAT_ADAPTERS.get(p.provider, from_openai_chat)
    return _ADAPTERS[p.api]


def _after(p: PendingCall, resp: Any, stream: bool, is_async: bool) -> Any:
    clear_pending(p)
    try:
        if stream:
            obs = make_observer(p.api, p)
            obs.adapter = _adapter(p)
            return AsyncStreamProxy(resp, obs) if is_async else StreamProxy(resp, obs)
        usage = getattr(resp, "usage", None)
        adapted = adapt_guarded(_adapter(p), _body(resp)) if usage is not None else None
        finish_call(p, adapted)
    except Exception as exc:
        internal_error(exc, "after call")
    return resp


def _wrap_create(orig: Callable[..., Any], provider: str | None, api: str, is_async: bool
                 ) -> Callable[..., Any]:
    """``provider=None``: resolved per call from the request's model."""
    if is_async or inspect.iscoroutinefunction(orig):
        @functools.wraps(orig)
        async def acreate(*args: Any, **kwargs: Any) -> Any:
            p = before_call(provider or provider_for_model(str(kwargs.get("model") or "")),
                            api, kwargs)
            try:
                resp = await orig(*args, **kwargs)
            except Exception as exc:
                finish_call(p, None, error=exc)
                raise
            return _after(p, resp, kwargs.get("stream") is True, True)

        acreate.__ctxbudget_wrapped__ = orig  # type: ignore[attr-defined]
        return acreate

    @functools.wraps(orig)
    def create(*args: Any, **kwargs: Any) -> Any:
        p = before_call(provider or provider_for_model(str(kwargs.get("model") or "")),
                        api, kwargs)
        try:
            resp = orig(*args, **kwargs)
        except Exception as exc:
            finish_call(p, None, error=exc)
            raise
        return _after(p, resp, kwargs.get("stream") is True, False)

    create.__ctxbudget_wrapped__ = orig  # type: ignore[attr-defined]
    return create


class _MessageStreamManager:
    """Proxy for Anthropic's ``MessageStreamManager`` / ``AsyncMessageStreamManager``:
    records the call from the stream's accumulated message snapshot on exit."""

    def __init__(self, mgr: Any, p: PendingCall) -> None:
        self._mgr = mgr
        self._p = p
        self._stream: Any = None
        # never entered: release the reservation; entered, never exited: settle as dropped
        weakref.finalize(self, _manager_collected, p, self.__dict__).atexit = False

    def __enter__(self) -> Any:
        try:
            self._stream = self._mgr.__enter__()
        except Exception as exc:
            finish_call(self._p, None, error=exc)
            raise
        clear_pending(self._p)
        return self._stream

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self._mgr.__exit__(*exc)
        finally:
            self._record(exc[1])

    async def __aenter__(self) -> Any:
        try:
            self._stream = await self._mgr.__aenter__()
        except Exception as exc:
            finish_call(self._p, None, error=exc)
            raise
        clear_pending(self._p)
        return self._stream

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self._mgr.__aexit__(*exc)
        finally:
            self._record(exc[1])

    def _record(self, exc: BaseException | None, dropped: bool = False) -> None:
        _record_manager(self._p, self._stream, exc, dropped)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mgr, name)


def _manager_collected(p: PendingCall, state: dict[str, Any]) -> None:
    if p.done:
        return
    stream = state.get("_stream")
    if stream is None:
        DROPPED.append(lambda: release_call(p))
    else:
        DROPPED.append(lambda: _record_manager(p, stream, None, True))


def _record_manager(p: PendingCall, stream: Any, exc: BaseException | None,
                    dropped: bool) -> None:
    try:
        snap = None
        getter = getattr(stream, "_current_snapshot_or_none", None)
        if callable(getter):
            snap = getter()
        elif stream is not None:
            snap = stream.current_message_snapshot
        adapted = None
        if snap is not None and getattr(snap, "usage", None) is not None:
            adapted = adapt_guarded(from_anthropic, _body(snap))
        meta: dict[str, Any] = {"stream": True}
        complete = snap is not None and getattr(snap, "stop_reason", None) is not None
        if not complete:
            meta["stream_incomplete"] = True
        if dropped:
            meta["stream_dropped"] = True
        api_error = exc if exc is not None and type(exc).__module__.startswith(
            "anthropic") else None
        finish_call(p, adapted, error=api_error, meta=meta, responded=stream is not None)
    except Exception as e:
        internal_error(e, "anthropic messages.stream")


def _wrap_stream_helper(orig: Callable[..., Any], provider: str) -> Callable[..., Any]:
    @functools.wraps(orig)
    def stream(*args: Any, **kwargs: Any) -> Any:
        p = before_call(provider, "anthropic", kwargs)
        return _MessageStreamManager(orig(*args, **kwargs), p)

    stream.__ctxbudget_wrapped__ = orig  # type: ignore[attr-defined]
    return stream


def _count_attempts(client: Any, is_async: bool) -> None:
    """Count the SDK's own retries: anthropic / openai clients call ``_prepare_request``
    once per HTTP attempt. Patched on this instance only."""
    orig = getattr(client, "_prepare_request", None)
    if orig is None or hasattr(orig, "__ctxbudget_wrapped__"):
        return
    if is_async or inspect.iscoroutinefunction(orig):
        async def aprep(request: Any) -> Any:
            note_attempt()
            return await orig(request)

        prep: Callable[..., Any] = aprep
    else:
        def prep(request: Any) -> Any:
            note_attempt()
            return orig(request)

    prep.__ctxbudget_wrapped__ = orig  # type: ignore[attr-defined]
    setattr(client, "_prepare_request", prep)  # noqa: B010 - an instance attribute


def _patch(resource: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]
           ) -> None:
    orig = getattr(resource, name, None)
    if orig is None or hasattr(orig, "__ctxbudget_wrapped__"):
        return
    setattr(resource, name, make(orig))


def track(client: Any, *, provider: str | None = None) -> Any:
    """Instrument ``client`` in place and return it. Idempotent.

    ``provider`` overrides the provider id used for pricing; by default it is
    ``anthropic``, ``google`` (google-genai), ``aws`` (Bedrock), and for the ``openai``
    SDK the provider its base URL points at, else the one the request's model names."""
    root = type(client).__module__.split(".", 1)[0]
    if root == "google" and type(client).__module__.startswith("google.genai"):
        return instrument_genai(client, provider)
    if root == "botocore" and is_bedrock_runtime(client):
        return instrument_bedrock(client, provider)
    is_async = type(client).__name__.startswith("Async")
    if root == "anthropic":
        prov = provider or "anthropic"
        resources = [client.messages]
        beta = getattr(client, "beta", None)
        if beta is not None and getattr(beta, "messages", None) is not None:
            resources.append(beta.messages)
        for res in resources:
            for name in ("create", "parse"):
                _patch(res, name, lambda f: _wrap_create(f, prov, "anthropic", is_async))
            _patch(res, "stream", lambda f: _wrap_stream_helper(f, prov))
        _count_attempts(client, is_async)
    elif root == "openai":
        oprov = provider or provider_for_url(str(getattr(client, "base_url", "") or ""))
        # .stream() helpers of both APIs call self.create(...): tracked through it
        for name in ("create", "parse"):
            _patch(client.chat.completions, name,
                   lambda f: _wrap_create(f, oprov, "openai-chat", is_async))
            responses = getattr(client, "responses", None)
            if responses is not None:
                _patch(responses, name,
                       lambda f: _wrap_create(f, oprov, "openai-responses", is_async))
        _count_attempts(client, is_async)
    else:
        raise TypeError(
            f"ctxbudget.track() supports anthropic and openai SDK clients, google-genai and "
            f"boto3 bedrock-runtime clients, got "
            f"{type(client).__module__}.{type(client).__name__}; use the LiteLLM callback, the "
            "OpenTelemetry span processor or ctxbudget.track.record_call() for others")
    return client
