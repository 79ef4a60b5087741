"""LlamaIndex: an instrumentation event handler that records every LLM chat / completion.

::

    from llama_index.core.instrumentation import get_dispatcher
    from ctxbudget.integrations.llama_index import CtxbudgetEventHandler

    get_dispatcher().add_event_handler(CtxbudgetEventHandler())

A call starts at ``LLMChatStartEvent`` / ``LLMCompletionStartEvent`` and is recorded at
the matching end event (same span id). Usage comes from the response's ``raw`` — the
provider's own response body, converted once by the provider's adapter
(:mod:`ctxbudget.adapters`: Anthropic ``usage`` with cache writes and reads, OpenAI
``usage`` with ``cached_tokens``, Gemini ``usage_metadata``, Bedrock Converse ``usage``
with ``cacheRead/WriteInputTokens``) — and, when ``raw`` has no usage, from
``additional_kwargs["usage"]`` / ``prompt_tokens`` + ``completion_tokens`` (input and
output only; all zeros is LlamaIndex's placeholder for "none", not a count).

Streams: the end event carries the *last* response the LLM class yielded, so its
``raw`` is the stream's last event. Where that event has the usage, the call is priced
from it: ``BedrockConverse`` yields the Converse stream's ``metadata`` event last
(``{"metadata": {"usage": ...}}``). Where it does not (``LiteLLM``: the stream
never asks for usage, and setting ``include_usage`` makes llama-index-llms-litellm 0.8
fail on the usage chunk, which has no choices), the call is recorded with
``meta.usage_missing``, never as $0.

Model from the response, else the LLM's metadata; provider from the LLM
class (``Anthropic`` -> ``anthropic``, ``OpenAI`` -> ``openai``, ``Gemini`` /
``GoogleGenAI`` -> ``google``, ``Bedrock*`` -> ``aws``; ``LiteLLM``: the
``provider/`` prefix of its model id), else from the model name.
Task: the ``ctxbudget.task(...)`` active when the call started.

Failures: a call that raises is recorded with ``status="error"`` from LlamaIndex's
``SpanDropEvent`` of the call's span (only the message survives: ``meta.error`` is
``LLMCallFailed``); a stream that fails midway from its ``ExceptionEvent`` (the
exception's type in ``meta.error``; the provider answered, so ``meta.usage_missing``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..adapters import (
    AdaptedUsage,
    from_anthropic,
    from_bedrock,
    from_gemini,
    from_openai_chat,
    from_openai_responses,
)
from ..track._context import _CURRENT
from ..track._core import PendingCall, finish_call, internal_error
from ..track._providers import provider_for_model

__all__ = ["CtxbudgetEventHandler", "LLMCallFailed", "adapt_raw"]  # noqa: F822 (lazy class)

_CLASS_PROVIDERS = (("anthropic", "anthropic"), ("azure", "azure"), ("openai", "openai"),
                    ("gemini", "google"), ("google", "google"), ("vertex", "google"),
                    ("bedrock", "aws"), ("mistral", "mistral"), ("groq", "groq"))


def _m(obj: Any) -> Mapping[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        out = dump()
        return out if isinstance(out, Mapping) else {}
    return {}


def adapt_raw(raw: Any, provider: str) -> AdaptedUsage | None:
    """The usage of a provider's raw response body (``None`` when it carries none)."""
    r = _m(raw)
    u = _m(r.get("usage"))
    if not u and isinstance(r.get("metadata"), Mapping):  # a Bedrock Converse stream event
        u = _m(r["metadata"].get("usage"))
    if u and "inputTokens" in u:  # Bedrock Converse: inputTokens excludes the cache
        return from_bedrock({"usage": u, "ResponseMetadata": r.get("ResponseMetadata")})
    if u:
        if "input_tokens" in u and u.get("input_tokens") is not None and (
                provider == "anthropic" or "cache_read_input_tokens" in u
                or "cache_creation_input_tokens" in u):
            return from_anthropic({**r, "usage": u})
        if "prompt_tokens" in u:
            return from_openai_chat({**r, "usage": u})
        if "input_tokens" in u and u.get("input_tokens") is not None:
            return from_openai_responses({**r, "usage": u})
    gm = _m(r.get("usage_metadata") or r.get("usageMetadata"))
    if gm:
        camel = {_camel(str(k)): v for k, v in gm.items()}
        return from_gemini({"usageMetadata": camel,
                            "modelVersion": r.get("model_version") or r.get("modelVersion"),
                            "responseId": r.get("response_id") or r.get("responseId")})
    return None


def _camel(k: str) -> str:
    head, *rest = k.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _fallback(kwargs: Mapping[str, Any]) -> AdaptedUsage | None:
    u = _m(kwargs.get("usage"))
    inp = u.get("input_tokens", kwargs.get("prompt_tokens"))
    out = u.get("output_tokens", kwargs.get("completion_tokens"))
    if not inp and not out:  # absent, or LlamaIndex's all-zero placeholder
        return None
    return from_openai_chat({"usage": {"prompt_tokens": inp or 0,
                                       "completion_tokens": out or 0}})


def _provider_for(model_dict: Mapping[str, Any], model: str) -> str:
    cls = str(model_dict.get("class_name") or "").lower()
    if "litellm" in cls and "/" in model:  # LiteLLM model ids: "<provider>/<model>"
        prov = model.split("/", 1)[0]
        return {"gemini": "google", "vertex_ai": "google", "bedrock": "aws"}.get(prov, prov)
    for needle, prov in _CLASS_PROVIDERS:
        if needle in cls:
            return prov
    return provider_for_model(model)


class LLMCallFailed(Exception):
    """A LlamaIndex LLM call that raised (its span was dropped); the message is kept."""


class _Handler:
    _lock = threading.Lock()

    def _pending(self) -> dict[Any, PendingCall]:
        p: dict[Any, PendingCall] | None = self.__dict__.get("_ctxb_pending")
        if p is None:
            p = {}
            object.__setattr__(self, "_ctxb_pending", p)
        return p

    def handle(self, event: Any, **kwargs: Any) -> None:
        try:
            name = type(event).__name__
            if name in ("LLMChatStartEvent", "LLMCompletionStartEvent"):
                md = _m(getattr(event, "model_dict", None))
                model = str(md.get("model") or md.get("model_name") or "")
                provider = _provider_for(md, model)
                if "litellm" in str(md.get("class_name") or "").lower() and "/" in model:
                    model = model.split("/", 1)[1]
                start = PendingCall(provider=provider, api="llama-index", model=model,
                                    ts=datetime.now(UTC), t0=time.perf_counter(),
                                    ctx=_CURRENT.get())
                with self._lock:
                    self._pending()[event.span_id] = start
            elif name in ("LLMChatEndEvent", "LLMCompletionEndEvent"):
                with self._lock:
                    p = self._pending().pop(event.span_id, None)
                if p is None:
                    return
                resp = getattr(event, "response", None)
                raw = getattr(resp, "raw", None)
                adapted: AdaptedUsage | None = None
                try:
                    adapted = adapt_raw(raw, p.provider)
                    if adapted is None:
                        adapted = _fallback(_m(getattr(resp, "additional_kwargs", None)))
                except Exception as exc:
                    internal_error(exc, "usage adapter")
                finish_call(p, adapted, source="llama-index")
            elif name in ("ExceptionEvent", "SpanDropEvent"):
                with self._lock:
                    p = self._pending().pop(event.span_id, None)
                if p is None:
                    return
                if name == "ExceptionEvent":  # raised while streaming
                    err = getattr(event, "exception", None)
                    finish_call(p, None, error=err if isinstance(err, BaseException)
                                else LLMCallFailed(str(err)), responded=True,
                                source="llama-index")
                else:
                    finish_call(p, None, error=LLMCallFailed(str(event.err_str)),
                                source="llama-index")
        except Exception as exc:
            internal_error(exc, "llama-index event")


_CLASS: Any = None


def __getattr__(name: str) -> Any:
    global _CLASS
    if name == "CtxbudgetEventHandler":
        if _CLASS is None:
            from llama_index.core.instrumentation.event_handlers import BaseEventHandler

            class CtxbudgetEventHandler(_Handler, BaseEventHandler):
                """Records LlamaIndex LLM calls (see ctxbudget.integrations.llama_index)."""

                @classmethod
                def class_name(cls) -> str:
                    return "CtxbudgetEventHandler"

            CtxbudgetEventHandler.__module__ = __name__
            _CLASS = CtxbudgetEventHandler
        return _CLASS
    raise AttributeError(name)
