"""Framework hooks that pack an agent's message history inside the budget.

Each module imports its framework lazily (install the matching extra):

* :mod:`.pydantic_ai` — :class:`~.pydantic_ai.PackHistory`, a pydantic-ai history processor
  (``Agent(..., capabilities=[ProcessHistory(PackHistory(config))])``);
* :mod:`.openai_agents` — :class:`~.openai_agents.PackInput`, an OpenAI Agents SDK
  ``RunConfig(call_model_input_filter=...)``;
* :mod:`.langchain` — :class:`~.langchain.PackMessages`, a LangChain message trimmer and a
  LangGraph ``pre_model_hook``.

All three convert the framework's messages to :class:`~ctxbudget.pack.Message` once per
message object, run one :class:`~ctxbudget.pack.Packer` per hook instance (one session),
and hand back the framework's own message objects that were kept (tool calls and their
results together; truncated tool outputs as copies with the truncated text).
"""

from __future__ import annotations

from ._common import SessionPacker

__all__ = ["SessionPacker"]
