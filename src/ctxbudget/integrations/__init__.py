"""Framework integrations: each a small module importing its framework lazily.

* :mod:`.langchain` — a LangChain / LangGraph callback handler;
* :mod:`.llama_index` — a LlamaIndex instrumentation event handler;
* :mod:`.pydantic_ai` — usage and task of a pydantic-ai agent run;
* :mod:`.openai_agents` — an OpenAI Agents SDK tracing processor;
* :mod:`.litellm_proxy` — the LiteLLM proxy's ``callbacks:`` hook
  (``ctxbudget.integrations.litellm_proxy.handler``).

All record through :func:`ctxbudget.track._core.finish_call`: the same ``Call``
records, adapters, task context and spool as ``ctxbudget.track(client)``. Importing
this package imports no framework. See ``docs/integrations.md``.
"""

from __future__ import annotations

__all__: list[str] = []
