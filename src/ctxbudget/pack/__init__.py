"""pack: the runtime context packer (execution half of the budget).

At every API call, :class:`Packer` builds the request inside the component budgets
(history with hysteresis, retrieval trimming, tool subsets, tool-output truncation)
with a byte-stable cacheable prefix, and explains every decision in a :class:`Ledger`.
Renderers turn the result into Anthropic Messages or OpenAI Chat / Responses bodies.
"""

from __future__ import annotations

from ._canon import block_hash, canonical, canonical_json
from ._config import (
    BUCKET_COMPONENTS,
    PRESETS,
    STABILITY,
    Budget,
    HistoryPolicy,
    PackerConfig,
    RetrievalPolicy,
    Stability,
    ToolOutputPolicy,
    ToolPolicy,
)
from ._counter import Counter, MemoCounter, default_counter
from ._ledger import Decision, Ledger, min_cacheable_tokens
from ._model import (
    Chunk,
    Message,
    Thinking,
    ToolCall,
    ToolDef,
    parse_chunks,
    parse_messages,
    parse_tools,
)
from ._packer import ContextOverflow, Packed, Packer
from ._render import render_anthropic, render_openai_chat, render_openai_responses

__all__ = [
    "BUCKET_COMPONENTS",
    "PRESETS",
    "STABILITY",
    "Budget",
    "Chunk",
    "ContextOverflow",
    "Counter",
    "Decision",
    "HistoryPolicy",
    "Ledger",
    "MemoCounter",
    "Message",
    "Packed",
    "Packer",
    "PackerConfig",
    "RetrievalPolicy",
    "Stability",
    "Thinking",
    "ToolCall",
    "ToolDef",
    "ToolOutputPolicy",
    "ToolPolicy",
    "block_hash",
    "canonical",
    "canonical_json",
    "default_counter",
    "min_cacheable_tokens",
    "parse_chunks",
    "parse_messages",
    "parse_tools",
    "render_anthropic",
    "render_openai_chat",
    "render_openai_responses",
]
