"""Packer configuration: window, output reserve, budgets per bucket, and the policies.

Budgets use the plan's allocation buckets (``system_tools``, ``retrieved``, ``history``,
``tool_outputs``, ``user_output``) so a plan spec's allocation applies as is. Each bucket
covers packer components (:data:`BUCKET_COMPONENTS`); every component has a stability
class (:data:`STABILITY`) and is rendered in stability order: static, epoch,
append-only, volatile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from ..errors import SpecError
from ._model import Message

__all__ = [
    "BUCKET_COMPONENTS",
    "PRESETS",
    "STABILITY",
    "Budget",
    "HistoryPolicy",
    "PackerConfig",
    "RetrievalPolicy",
    "Stability",
    "ToolOutputPolicy",
    "ToolPolicy",
]

Stability = Literal["static", "epoch", "append-only", "volatile"]

#: Component -> stability class. Rendering follows this order, so the cacheable prefix
#: (static, then epoch, then append-only) changes only when a static component does.
STABILITY: Mapping[str, Stability] = MappingProxyType({
    "tools": "static",
    "system": "static",
    "docs": "static",
    "memory": "epoch",
    "summary": "epoch",
    "history": "append-only",
    "tool_outputs": "append-only",
    "volatile": "volatile",
    "retrieved": "volatile",
    "user": "volatile",
})

#: Allocation bucket -> the components it covers (the plan's vocabulary).
BUCKET_COMPONENTS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "system_tools": ("tools", "system", "docs"),
    "history": ("history", "memory", "summary"),
    "tool_outputs": ("tool_outputs",),
    "retrieved": ("retrieved",),
    "user_output": ("volatile", "user"),
})

#: Allocation presets in % of the window. ``seed-32k`` is the seed text's 32k table.
PRESETS: Mapping[str, Mapping[str, float]] = MappingProxyType({
    "seed-32k": MappingProxyType({"system_tools": 15.0, "retrieved": 25.0, "history": 30.0,
                                  "tool_outputs": 20.0, "user_output": 10.0}),
})

Summarizer = Callable[[str | None, Sequence[Message]], "str | Awaitable[str]"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """One bucket's budget: ``tokens`` or ``share`` of the window (0..1), clamped to
    ``[min_tokens, max_tokens]``. On overflow, shrinkable buckets give way in ascending
    ``priority`` (retrieved before history by default)."""

    tokens: int | None = None
    share: float | None = None
    min_tokens: int = 0
    max_tokens: int | None = None
    priority: int = 50

    def resolve(self, window: int) -> int:
        """Tokens this bucket may use in a window of ``window`` tokens."""
        if self.tokens is not None:
            n = self.tokens
        elif self.share is not None:
            n = int(self.share * window)
        else:
            n = window
        n = max(n, self.min_tokens)
        if self.max_tokens is not None:
            n = min(n, self.max_tokens)
        return n


def _preset_budgets(name: str) -> dict[str, Budget]:
    prio = {"retrieved": 10, "tool_outputs": 20, "history": 30}
    return {k: Budget(share=v / 100.0, priority=prio.get(k, 90))
            for k, v in PRESETS[name].items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryPolicy:
    """Sliding window with hysteresis over the conversation (history + tool outputs).

    The cut point (first kept message) stays put while the kept conversation is at most
    ``high_watermark`` x budget; once past it, the cut jumps forward until the kept part
    is at most ``low_watermark`` x budget. ``low_watermark=1.0`` is the naive "keep the
    last N tokens" trim (the cut moves on every call once full). In ``mode="turns"``
    the same rule runs on whole turns: past ``max_turns`` keep the last ``keep_turns``
    (the token rule still applies as the hard limit).

    Tool-call rounds (an assistant message and all its results) are never split; when
    the cut falls inside a turn, that turn's user message is kept (the agent-loop case);
    ``pin_first_user`` keeps the session's first user message too. With a
    ``summarizer(previous_summary, dropped_messages) -> str`` (sync or async), the
    messages dropped when the cut moves are folded into a summary (an epoch component,
    at most ``summary_max_tokens``, reserved from the history budget).
    """

    mode: Literal["tokens", "turns"] = "tokens"
    high_watermark: float = 1.0
    low_watermark: float = 0.6
    max_turns: int | None = None
    keep_turns: int | None = None
    pin_first_user: bool = False
    summarizer: Summarizer | None = None
    summary_max_tokens: int = 512

    def __post_init__(self) -> None:
        if not 0.0 < self.low_watermark <= self.high_watermark <= 1.0:
            raise SpecError("history: need 0 < low_watermark <= high_watermark <= 1 "
                            f"(got {self.low_watermark}, {self.high_watermark})")
        if self.mode == "turns" and (self.max_turns is None or self.keep_turns is None
                                     or not 0 < self.keep_turns <= self.max_turns):
            raise SpecError("history: mode 'turns' needs 0 < keep_turns <= max_turns")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrievalPolicy:
    """Chunks below ``min_relevance`` are dropped, then the ``top_k`` best are kept, each
    trimmed at a sentence boundary to ``max_chunk_tokens``; the survivors that fit the
    budget are placed best-at-the-edges (1st first, 2nd last, ...) when ``edges``."""

    min_relevance: float | None = None
    top_k: int | None = None
    max_chunk_tokens: int | None = None
    edges: bool = True
    template: str = '<document id="{id}">\n{text}\n</document>'


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolPolicy:
    """Per-task-type tool subsets (``{"billing": ["lookup_invoice", ...]}``).

    A session's tool list is the union of the subsets of the task types it has seen, in
    catalog order: it only changes when a task type needs a tool not yet offered."""

    subsets: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolOutputPolicy:
    """Tool results longer than ``max_tokens`` keep a head and a tail around a marker
    (``head_share`` of the kept tokens at the head). ``truncate="under_pressure"`` (the
    default) truncates only once the session's conversation has outgrown its budget (from
    then on for the rest of the session, so the prefix is rewritten once, on the call whose
    cut moves anyway); ``"always"`` truncates from the first call. With ``keep_recent``,
    once more than ``keep_recent + clear_batch`` results are uncleared, all but the newest
    ``keep_recent`` are replaced by ``placeholder`` in one batch."""

    max_tokens: int | None = 2000
    truncate: Literal["under_pressure", "always"] = "under_pressure"
    head_share: float = 0.5
    keep_recent: int | None = None
    clear_batch: int = 10
    placeholder: str = "[tool result cleared to save context]"


@dataclass(frozen=True, slots=True, kw_only=True)
class PackerConfig:
    """Everything a :class:`~ctxbudget.pack.Packer` needs.

    The hard limit is ``window - output_reserve - safety_margin`` tokens of prompt, as
    counted by the packer's counter over the same texts ``ctxbudget.tokens.count_tokens``
    counts in the rendered body (each text separately, role strings included) plus the
    same framing constants (per message, per tool, tool block, request, reply priming);
    ``safety_margin`` absorbs what no counter sees (provider-side rendering of schemas).
    """

    window: int
    output_reserve: int = 4096
    safety_margin: int = 0
    budgets: Mapping[str, Budget] = field(default_factory=lambda: _preset_budgets("seed-32k"))
    history: HistoryPolicy = field(default_factory=HistoryPolicy)
    retrieval: RetrievalPolicy = field(default_factory=RetrievalPolicy)
    tools: ToolPolicy = field(default_factory=ToolPolicy)
    tool_outputs: ToolOutputPolicy = field(default_factory=ToolOutputPolicy)
    provider: Literal["anthropic", "openai"] = "anthropic"
    model: str | None = None
    min_cacheable_tokens: int | None = None
    """Override the model's minimum cacheable prefix (see :mod:`ctxbudget.cache_rules`)."""
    cache_ttl: Literal["5m", "1h"] = "5m"
    openai_api: Literal["chat", "responses"] = "chat"
    """Which OpenAI body the counts follow (their framing differs slightly)."""
    message_overhead: int | None = None
    """Framing tokens per message; default: ``ctxbudget.tokens``' figure for the provider
    (OpenAI cookbook: 3; Anthropic estimate: 3)."""
    prompt_cache_key: str | None = None
    """OpenAI ``prompt_cache_key``; default: a hash of the static prefix."""

    def __post_init__(self) -> None:
        if self.window <= 0:
            raise SpecError(f"window must be positive (got {self.window})")
        if self.output_reserve < 0 or self.safety_margin < 0:
            raise SpecError("output_reserve and safety_margin must be >= 0")
        if self.limit <= 0:
            raise SpecError(f"window {self.window} leaves no room after output_reserve "
                            f"{self.output_reserve} and safety_margin {self.safety_margin}")
        unknown = set(self.budgets) - set(BUCKET_COMPONENTS)
        if unknown:
            raise SpecError(f"unknown budget bucket(s): {', '.join(sorted(unknown))} "
                            f"(known: {', '.join(BUCKET_COMPONENTS)})")

    @property
    def limit(self) -> int:
        """Prompt tokens a packed request may use: window - output reserve - margin."""
        return self.window - self.output_reserve - self.safety_margin

    def budget(self, bucket: str) -> int:
        """Resolved tokens of ``bucket`` (the hard limit when the bucket has no budget)."""
        b = self.budgets.get(bucket)
        return self.limit if b is None else min(b.resolve(self.window), self.limit)

    @staticmethod
    def preset(name: str) -> dict[str, Budget]:
        """Budgets of a named allocation preset (``seed-32k``)."""
        if name not in PRESETS:
            raise SpecError(f"unknown allocation preset {name!r} (known: {', '.join(PRESETS)})")
        return _preset_budgets(name)
