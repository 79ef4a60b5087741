"""Allocation presets: % of the context window per bucket.

``seed-32k`` is the seed article's table for a 32k window (system+tools 15%,
retrieved 25%, history 30%, tool outputs 20%, user message + output 10%). The other
three follow the article's advice ("heavy retrieval tasks allocate more to retrieved
context; conversational tasks with long turn sequences allocate more to history");
their exact shares are ctxbudget's choice, stated here so they can be checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["BUCKET_LABELS", "PRESETS"]

BUCKET_LABELS: Mapping[str, str] = MappingProxyType({
    "system_tools": "System prompt + tools",
    "retrieved": "Retrieved context",
    "history": "Conversation history",
    "tool_outputs": "Tool outputs (current turn)",
    "user_output": "User message + output buffer",
})

PRESETS: Mapping[str, Mapping[str, float]] = MappingProxyType({
    "seed-32k": MappingProxyType({"system_tools": 15, "retrieved": 25, "history": 30,
                                  "tool_outputs": 20, "user_output": 10}),
    "retrieval-heavy": MappingProxyType({"system_tools": 10, "retrieved": 45, "history": 20,
                                         "tool_outputs": 15, "user_output": 10}),
    "conversational": MappingProxyType({"system_tools": 10, "retrieved": 10, "history": 55,
                                        "tool_outputs": 10, "user_output": 15}),
    "agentic": MappingProxyType({"system_tools": 20, "retrieved": 10, "history": 25,
                                 "tool_outputs": 35, "user_output": 10}),
})
