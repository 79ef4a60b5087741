"""The core records: :class:`Usage` (disjoint token buckets), :class:`Call`, :class:`Task`.

Every source (SDK response, log line, simulation, plan) is converted into a
``Usage`` exactly once, by an adapter in :mod:`ctxbudget.adapters`. After that,
each bucket is billed at exactly one rate and the buckets never overlap:

    total prompt tokens = input_tokens + cache_read_tokens
                          + cache_write_5m_tokens + cache_write_1h_tokens

``reasoning_tokens`` is the only informational field: it is a *subset* of
``output_tokens`` and is never billed on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal

from .errors import UsageError

__all__ = ["BUCKETS", "Call", "Outcome", "Task", "Usage"]

#: The billed buckets, in display order.
BUCKETS: tuple[str, ...] = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
)

Outcome = Literal["success", "partial", "failure"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token usage of one or more API calls, as disjoint buckets."""

    input_tokens: int = 0
    """Uncached input (prompt) tokens: billed at the base input rate. Excludes every
    cache-read and cache-write token (Anthropic's ``input_tokens`` meaning; OpenAI's
    ``prompt_tokens`` minus ``cached_tokens``)."""

    cache_read_tokens: int = 0
    """Prompt tokens served from the provider's prompt cache, billed at the cache-read
    rate. Not included in ``input_tokens``."""

    cache_write_5m_tokens: int = 0
    """Prompt tokens written to a cache with a 5-minute TTL (Anthropic's default
    ``ephemeral`` cache; OpenAI / Bedrock cache writes). Not included in ``input_tokens``."""

    cache_write_1h_tokens: int = 0
    """Prompt tokens written to a cache with a 1-hour TTL (Anthropic ``ttl: 1h``).
    Not included in ``input_tokens``."""

    output_tokens: int = 0
    """Generated tokens billed at the output rate, *including* reasoning / thinking
    tokens (Gemini's ``thoughtsTokenCount`` is added here)."""

    reasoning_tokens: int = 0
    """Informational: the part of ``output_tokens`` spent on reasoning. A subset of
    ``output_tokens``, never billed separately."""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if type(v) is not int and (isinstance(v, bool) or not isinstance(v, int)):
                raise UsageError(
                    f"{f.name} must be an integer token count, got {v!r}", field=f.name
                )
            if v < 0:
                raise UsageError(f"{f.name} is negative ({v})", field=f.name)
        if self.reasoning_tokens > self.output_tokens:
            raise UsageError(
                f"reasoning_tokens ({self.reasoning_tokens}) exceed output_tokens "
                f"({self.output_tokens}); reasoning is a subset of output",
                field="reasoning_tokens",
            )

    # -- derived -------------------------------------------------------------
    @property
    def cache_write_tokens(self) -> int:
        """All cache writes (5m + 1h)."""
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def prompt_tokens(self) -> int:
        """Total prompt size: input + cache read + cache writes."""
        return (
            self.input_tokens
            + self.cache_read_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
        )

    @property
    def total_tokens(self) -> int:
        """Prompt plus output tokens."""
        return self.prompt_tokens + self.output_tokens

    @property
    def cache_hit_rate(self) -> float | None:
        """Token-weighted cache hit rate: cache_read / prompt (``None`` for an empty prompt)."""
        p = self.prompt_tokens
        return None if p == 0 else self.cache_read_tokens / p

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_5m_tokens=self.cache_write_5m_tokens + other.cache_write_5m_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    def __radd__(self, other: object) -> Usage:
        if other == 0:  # sum()
            return self
        return self.__add__(other)

    def __bool__(self) -> bool:
        return self.total_tokens > 0

    def as_dict(self) -> dict[str, int]:
        """The six fields as a plain dict (JSON friendly)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Build from a mapping with (a subset of) the field names; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise UsageError(f"unknown usage field(s): {', '.join(sorted(unknown))}",
                             field=sorted(unknown)[0])
        return cls(**{k: int(v) for k, v in data.items() if v is not None})


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One API call and its usage. The unit the store keeps."""

    ts: datetime
    """When the call started (timezone-aware UTC; naive values are taken as UTC)."""
    provider: str
    """Provider id as genai-prices names it (``anthropic``, ``openai``, ``google``...)."""
    model: str
    """Model name as the API reported it."""
    usage: Usage
    task_id: str | None = None
    session_id: str | None = None
    task_type: str | None = None
    request_id: str | None = None
    """Provider request / message id: the de-duplication key together with ``source``."""
    latency_ms: float | None = None
    status: str = "ok"
    """``ok`` or ``error`` (an API error is a failed call)."""
    source: str = "track"
    """Where the record came from: ``track``, ``claude-code``, ``simulate``..."""
    service_tier: str | None = None
    """``batch``, ``flex``, ``priority``... when the call used a price variant."""
    turn: int | None = None
    components: Mapping[str, int] | None = None
    """Tokens per context component (from the packer's ledger), if known."""
    prefix_fingerprint: tuple[str, ...] | None = None
    """Hashes of the rendered prefix blocks (no text), if known."""
    expected_cache_read_tokens: int | None = None
    """Tokens the packer expected to be read from cache, if known."""
    input_inclusive: bool | None = None
    """Whether the raw source counted input inclusively of cache tokens (provenance)."""
    meta: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", _utc(self.ts))

    def with_(self, **changes: Any) -> Call:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """A unit of user-visible work; cost per task is the headline metric."""

    task_id: str
    task_type: str | None = None
    outcome: Outcome | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    session_id: str | None = None
    parent_id: str | None = None
    calls: tuple[Call, ...] = field(default=())

    @property
    def usage(self) -> Usage:
        return sum((c.usage for c in self.calls), Usage())
