"""LangChain / LangGraph: a callback handler that records every chat-model call.

::

    from ctxbudget.integrations.langchain import CtxbudgetCallbackHandler

    handler = CtxbudgetCallbackHandler()
    graph.invoke(inputs, config={"callbacks": [handler]})   # any Runnable / LangGraph graph

* Usage: the ``AIMessage.usage_metadata`` LangChain normalizes for every provider —
  ``input_tokens`` *includes* ``input_token_details.cache_read`` and
  ``cache_creation`` (split into ``ephemeral_5m_input_tokens`` /
  ``ephemeral_1h_input_tokens`` when the provider says), ``output_tokens`` includes
  ``output_token_details.reasoning``; ``audio`` details become modality detail.
  Converted once, through :func:`ctxbudget.adapters.from_otel` (the same inclusive
  convention).
* Model: the response metadata's ``model_name`` / ``model`` (the model that answered),
  else the request's. Provider: LangChain's ``ls_provider`` metadata (``openai``,
  ``anthropic``, ``google_genai`` -> ``google``, ``bedrock`` -> ``aws``...), else
  resolved from the model name.
* Task: the ``ctxbudget.task(...)`` active when the model call started; without one,
  the run tree's root (the outermost chain / graph run) is the task:
  ``task_id = "langchain:<root run id>"``, ``task_type`` = the root run's name.
* Streaming: LangChain hands the aggregated chunk to ``on_llm_end``; OpenAI models need
  ``stream_usage=True`` to report usage while streaming (else ``meta.usage_missing``).
* Errors: ``on_llm_error`` records the call as ``status="error"``.

langchain-core is imported when the handler class is first used.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from ..adapters import AdaptedUsage, from_otel
from ..track._context import _CURRENT, TaskContext
from ..track._core import PendingCall, finish_call, internal_error
from ..track._providers import provider_for_model

__all__ = ["CtxbudgetCallbackHandler", "adapt_usage_metadata"]  # noqa: F822 (lazy class)

_LS_PROVIDERS = {
    "google_genai": "google", "google_vertexai": "google", "google_anthropic_vertex": "google",
    "bedrock": "aws", "bedrock_converse": "aws", "amazon_bedrock": "aws",
    "azure": "azure", "azure_openai": "azure", "mistralai": "mistral", "xai": "x-ai",
}


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def adapt_usage_metadata(um: Mapping[str, Any], *, model: str | None = None,
                         request_id: str | None = None) -> AdaptedUsage:
    """LangChain's ``UsageMetadata`` as disjoint buckets (raises ``UsageError``)."""
    itd = um.get("input_token_details") or {}
    otd = um.get("output_token_details") or {}
    attrs = {
        "gen_ai.usage.input_tokens": um.get("input_tokens") or 0,
        "gen_ai.usage.output_tokens": um.get("output_tokens") or 0,
        "gen_ai.usage.cache_read.input_tokens": itd.get("cache_read") or 0,
        "gen_ai.usage.cache_creation.input_tokens": itd.get("cache_creation") or 0,
        "gen_ai.usage.reasoning.output_tokens": otd.get("reasoning") or 0,
    }
    # modality detail, only when the provider reported it (None stays "unknown")
    if itd.get("audio") is not None:
        attrs["gen_ai.usage.details.input_audio_tokens"] = itd["audio"]
    if otd.get("audio") is not None:
        attrs["gen_ai.usage.details.output_audio_tokens"] = otd["audio"]
    a = from_otel(attrs)
    w1 = itd.get("ephemeral_1h_input_tokens") or 0
    if w1 and w1 <= a.usage.cache_write_5m_tokens:
        a = dataclasses.replace(a, usage=dataclasses.replace(
            a.usage, cache_write_5m_tokens=a.usage.cache_write_5m_tokens - w1,
            cache_write_1h_tokens=w1))
    return dataclasses.replace(a, model=model, request_id=request_id)


@dataclasses.dataclass
class _Run:
    pending: PendingCall
    provider_hint: str | None


def _base() -> type:
    from langchain_core.callbacks import BaseCallbackHandler

    return BaseCallbackHandler


class _Handler:
    """Implementation; :class:`CtxbudgetCallbackHandler` mixes in LangChain's base."""

    run_inline = True  # async runs call us inline: the task context stays visible
    raise_error = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parents: dict[UUID, UUID | None] = {}
        self._names: dict[UUID, str] = {}
        self._runs: dict[UUID, _Run] = {}

    # -- run tree ------------------------------------------------------------------------
    def _remember(self, run_id: UUID, parent: UUID | None, name: str | None) -> None:
        with self._lock:
            self._parents[run_id] = parent
            if name:
                self._names[run_id] = name

    def _root(self, run_id: UUID) -> UUID:
        seen = 0
        with self._lock:
            while (p := self._parents.get(run_id)) is not None and seen < 10_000:
                run_id, seen = p, seen + 1
        return run_id

    def _forget(self, run_id: UUID) -> None:
        with self._lock:
            if self._parents.get(run_id) is None:  # a root ended: drop its tree
                dead = {run_id}
                changed = True
                while changed:
                    changed = False
                    for r, p in list(self._parents.items()):
                        if p in dead and r not in dead:
                            dead.add(r)
                            changed = True
                for r in dead:
                    self._parents.pop(r, None)
                    self._names.pop(r, None)

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        name = kwargs.get("name") or _get(serialized, "name")
        self._remember(run_id, parent_run_id, name)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._forget(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._forget(run_id)

    # -- model calls ---------------------------------------------------------------------
    def _start(self, serialized: Any, run_id: UUID, parent: UUID | None,
               kwargs: Mapping[str, Any]) -> None:
        try:
            self._remember(run_id, parent, None)
            meta = kwargs.get("metadata") or {}
            params = kwargs.get("invocation_params") or {}
            model = str(meta.get("ls_model_name") or params.get("model")
                        or params.get("model_name") or "")
            ls = meta.get("ls_provider")
            hint = _LS_PROVIDERS.get(str(ls), str(ls)) if ls else None
            ctx = _CURRENT.get()
            if ctx is None:
                root = self._root(run_id)
                ctx = TaskContext(f"langchain:{root}", task_type=self._names.get(root)
                                  if root != run_id else None)
            p = PendingCall(provider=hint or "", api="langchain", model=model,
                            ts=datetime.now(UTC), t0=time.perf_counter(), ctx=ctx)
            with self._lock:
                self._runs[run_id] = _Run(p, hint)
        except Exception as exc:
            internal_error(exc, "langchain start")

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                            parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._start(serialized, run_id, parent_run_id, kwargs)

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID,
                     parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._start(serialized, run_id, parent_run_id, kwargs)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is None:
            return
        try:
            p = run.pending
            um, model, rid = None, None, None
            for gens in _get(response, "generations") or ():
                for g in gens or ():
                    msg = _get(g, "message")
                    um = um or _get(msg, "usage_metadata")
                    rm = _get(msg, "response_metadata") or {}
                    model = model or rm.get("model_name") or rm.get("model")
                    mid = _get(msg, "id")
                    if isinstance(mid, str) and mid.startswith(("lc_run", "run-")):
                        mid = None  # LangChain's own run id, not the provider's response id
                    rid = rid or rm.get("id") or mid
            llm_output = _get(response, "llm_output") or {}
            model = model or llm_output.get("model_name") or llm_output.get("model")
            if model:
                p.model = str(model)
            if not p.provider:
                p.provider = provider_for_model(p.model)
            adapted = None
            if um:
                try:
                    adapted = adapt_usage_metadata(dict(um), model=p.model,
                                                   request_id=str(rid) if rid else None)
                except Exception as exc:
                    internal_error(exc, "usage adapter")
            finish_call(p, adapted, source="langchain")
        except Exception as exc:
            internal_error(exc, "langchain end")
        finally:
            self._forget(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is None:
            return
        try:
            p = run.pending
            if not p.provider:
                p.provider = provider_for_model(p.model)
            finish_call(p, None, error=error, source="langchain")
        except Exception as exc:
            internal_error(exc, "langchain error")
        finally:
            self._forget(run_id)


_CLASS: Any = None


def _handler_class() -> Any:
    global _CLASS
    if _CLASS is None:
        _CLASS = type("CtxbudgetCallbackHandler", (_Handler, _base()),
                      {"__doc__": "Records LangChain chat-model calls (see "
                                  "ctxbudget.integrations.langchain).",
                       "__module__": __name__})
    return _CLASS


def __getattr__(name: str) -> Any:
    if name == "CtxbudgetCallbackHandler":
        return _handler_class()
    raise AttributeError(name)
