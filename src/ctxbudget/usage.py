"""The core records: :class:`Usage` (disjoint token buckets), :class:`Call`, :class:`Task`.

Every source (SDK response, log line, simulation, plan) is converted into a
``Usage`` exactly once, by an adapter in :mod:`ctxbudget.adapters`. After that,
each bucket is billed at exactly one rate and the buckets never overlap:

    total prompt tokens = input_tokens + cache_read_tokens
                          + cache_write_5m_tokens + cache_write_1h_tokens

``reasoning_tokens`` is informational: it is a *subset* of ``output_tokens`` and is
never billed on its own.

Beyond the six buckets, a ``Usage`` carries optional *detail* (``None`` = the source
did not say, never zero by omission):

* per-modality token counts (:data:`MODALITY_FIELDS`), each a **subset** of one
  bucket (``input_audio_tokens`` of ``input_tokens``, ``cache_read_audio_tokens`` of
  ``cache_read_tokens``, ``output_audio_tokens`` of ``output_tokens``...). The text
  part of a bucket is what its modality subsets leave. The price formula bills a
  subset at the catalog's modality rate where it has one, else at the bucket's rate.
* server-side tool request counts (:data:`TOOL_FIELDS`: web searches, web fetches,
  file searches, code executions, xAI Live Search sources), billed per request on top
  of tokens (see :mod:`ctxbudget.prices`, ``tool_fees``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .errors import UsageError

__all__ = ["BUCKETS", "DETAIL_FIELDS", "FUTURE_SLACK", "MAX_LATENCY_MS", "MAX_TOKENS",
           "MAX_TURN", "MIN_TS", "MODALITY_FIELDS", "TOOL_FIELDS", "Call", "Outcome", "Task",
           "Usage", "check_sane"]

#: The billed buckets, in display order.
BUCKETS: tuple[str, ...] = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
)

#: Per-modality detail fields: (field, bucket it is a subset of, modality).
MODALITY_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("input_audio_tokens", "input_tokens", "audio"),
    ("input_image_tokens", "input_tokens", "image"),
    ("input_video_tokens", "input_tokens", "video"),
    ("cache_read_audio_tokens", "cache_read_tokens", "audio"),
    ("cache_read_image_tokens", "cache_read_tokens", "image"),
    ("cache_read_video_tokens", "cache_read_tokens", "video"),
    ("output_audio_tokens", "output_tokens", "audio"),
    ("output_image_tokens", "output_tokens", "image"),
    ("output_video_tokens", "output_tokens", "video"),
)

#: Server-side tool request counts: (field, tool name used by price tables).
TOOL_FIELDS: tuple[tuple[str, str], ...] = (
    ("web_search_requests", "web_search"),
    ("web_fetch_requests", "web_fetch"),
    ("file_search_requests", "file_search"),
    ("code_execution_requests", "code_execution"),
    ("live_search_sources", "live_search_sources"),
)

#: Every optional detail field of :class:`Usage` (``None`` = unknown).
DETAIL_FIELDS: tuple[str, ...] = (*(f for f, _, _ in MODALITY_FIELDS),
                                  *(f for f, _ in TOOL_FIELDS))
_CORE_FIELDS: tuple[str, ...] = (*BUCKETS, "reasoning_tokens")

Outcome = Literal["success", "partial", "failure", "blocked"]
"""``blocked``: a budget cap stopped the task (see :attr:`Task.blocked_by`)."""

# -- sane ranges: what a record read from a file or the spool may hold ---------------
#: Largest token count accepted in one bucket (a million times a 1M-token window).
MAX_TOKENS = 10**12
#: Largest latency accepted, in milliseconds (about 11.6 days).
MAX_LATENCY_MS = 1e9
#: Largest turn number accepted (the store's INTEGER column).
MAX_TURN = 2**31 - 1
#: Timestamps before this are rejected (no LLM API call was tracked before 2020).
MIN_TS = datetime(2020, 1, 1, tzinfo=UTC)
#: Timestamps further than this in the future are rejected (clock skew allowance).
FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Usage:
    """Token usage of one or more API calls, as disjoint buckets.

    Equality compares what is billed: a detail field that is ``None`` (unknown) equals
    one that is 0."""

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

    # -- modality detail: each a subset of one bucket; None = not reported --------
    input_audio_tokens: int | None = None
    """Audio tokens among ``input_tokens`` (uncached). OpenAI
    ``prompt_tokens_details.audio_tokens`` minus its cached audio; Gemini
    ``promptTokensDetails[modality=AUDIO]`` minus ``cacheTokensDetails[AUDIO]``."""
    input_image_tokens: int | None = None
    """Image tokens among ``input_tokens`` (uncached)."""
    input_video_tokens: int | None = None
    """Video tokens among ``input_tokens`` (uncached)."""
    cache_read_audio_tokens: int | None = None
    """Audio tokens among ``cache_read_tokens``."""
    cache_read_image_tokens: int | None = None
    """Image tokens among ``cache_read_tokens``."""
    cache_read_video_tokens: int | None = None
    """Video tokens among ``cache_read_tokens``."""
    output_audio_tokens: int | None = None
    """Audio tokens among ``output_tokens`` (OpenAI
    ``completion_tokens_details.audio_tokens``)."""
    output_image_tokens: int | None = None
    """Image tokens among ``output_tokens`` (Gemini image output, OpenAI image models)."""
    output_video_tokens: int | None = None
    """Video tokens among ``output_tokens``."""

    # -- server-side tools: request counts billed per request, not per token -------
    web_search_requests: int | None = None
    """Server-side web searches (Anthropic ``server_tool_use.web_search_requests``,
    OpenAI Responses ``web_search_call`` items, Gemini grounded prompts / queries)."""
    web_fetch_requests: int | None = None
    """Server-side web fetches (Anthropic ``server_tool_use.web_fetch_requests``)."""
    file_search_requests: int | None = None
    """Server-side file / vector-store searches (OpenAI ``file_search_call`` items)."""
    code_execution_requests: int | None = None
    """Server-side code executions (Anthropic ``server_tool_use.code_execution_requests``,
    OpenAI ``code_interpreter_call`` items)."""
    live_search_sources: int | None = None
    """Sources used by xAI Live Search (``usage.num_sources_used``), billed per source."""

    _plain: bool = field(init=False, repr=False, compare=False, default=True)
    """True when every detail field is ``None``/0: the price formula's fast path."""

    def __post_init__(self) -> None:
        for name in _CORE_FIELDS:
            v = getattr(self, name)
            if type(v) is not int and (isinstance(v, bool) or not isinstance(v, int)):
                raise UsageError(
                    f"{name} must be an integer token count, got {v!r}", field=name
                )
            if v < 0:
                raise UsageError(f"{name} is negative ({v})", field=name)
        if self.reasoning_tokens > self.output_tokens:
            raise UsageError(
                f"reasoning_tokens ({self.reasoning_tokens}) exceed output_tokens "
                f"({self.output_tokens}); reasoning is a subset of output",
                field="reasoning_tokens",
            )
        plain = True
        for name in DETAIL_FIELDS:
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int):
                raise UsageError(f"{name} must be an integer count or None, got {v!r}",
                                 field=name)
            if v < 0:
                raise UsageError(f"{name} is negative ({v})", field=name)
            if v:
                plain = False
        if not plain:
            for bucket in ("input_tokens", "cache_read_tokens", "output_tokens"):
                part = sum(getattr(self, f) or 0 for f, b, _ in MODALITY_FIELDS if b == bucket)
                if part > getattr(self, bucket):
                    raise UsageError(
                        f"the modality detail of {bucket} ({part}) exceeds {bucket} "
                        f"({getattr(self, bucket)}); modality counts are subsets of a bucket",
                        field=bucket,
                    )
        object.__setattr__(self, "_plain", plain)

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

    def _key(self) -> tuple[int, ...]:
        return (self.input_tokens, self.cache_read_tokens, self.cache_write_5m_tokens,
                self.cache_write_1h_tokens, self.output_tokens, self.reasoning_tokens,
                *((getattr(self, n) or 0) for n in DETAIL_FIELDS))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Usage):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def has_detail(self) -> bool:
        """Whether any modality or tool-request detail is non-zero."""
        return not self._plain

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        extra: dict[str, int | None] = {}
        if not (self._plain and other._plain):
            for name in DETAIL_FIELDS:
                a, b = getattr(self, name), getattr(other, name)
                extra[name] = None if a is None and b is None else (a or 0) + (b or 0)
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_5m_tokens=self.cache_write_5m_tokens + other.cache_write_5m_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            **extra,
        )

    def __radd__(self, other: object) -> Usage:
        if other == 0:  # sum()
            return self
        return self.__add__(other)

    def __bool__(self) -> bool:
        return self.total_tokens > 0

    def as_dict(self) -> dict[str, int]:
        """The six core fields as a plain dict (JSON friendly). Detail: :meth:`detail`."""
        return {name: getattr(self, name) for name in _CORE_FIELDS}

    def detail(self) -> dict[str, int]:
        """The detail fields that are known (not ``None``), in :data:`DETAIL_FIELDS` order."""
        return {n: v for n in DETAIL_FIELDS if (v := getattr(self, n)) is not None}

    def tool_requests(self) -> dict[str, int]:
        """Server-side tool request counts by tool name (``web_search``...), non-zero only."""
        return {tool: v for f, tool in TOOL_FIELDS if (v := getattr(self, f))}

    def without_detail(self) -> Usage:
        """The six buckets only (what a store row without detail columns keeps)."""
        return self if self._plain and not self.detail() else Usage(**self.as_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Build from a mapping with (a subset of) the field names; unknown keys are an error."""
        names = {f.name for f in fields(cls) if f.init}
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
    other_tool_requests: Mapping[str, int] | None = None
    """Billed server-side counters that no :class:`Usage` field holds (a new
    ``server_tool_use`` key, an OpenAI ``*_call`` item of an unknown kind...), by the name
    the source uses. Reports count them as unpriced fees, never as $0."""

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
    blocked_by: Mapping[str, Any] | None = None
    """With outcome ``blocked``: the cap that blocked a call of the task — ``cap``
    (``max_cost_usd``, ``max_input_tokens``, ``max_calls``), ``limit`` (a decimal
    string), ``task_id`` (the capped task: this one or an ancestor) and ``phase``."""

    @property
    def usage(self) -> Usage:
        return sum((c.usage for c in self.calls), Usage())


_TEXT_FIELDS = ("provider", "model", "task_id", "session_id", "task_type", "request_id",
                "status", "source", "service_tier")


_LATEST: list[Any] = [-1.0, MIN_TS]


def _latest_ts() -> datetime:
    """Now + :data:`FUTURE_SLACK`, recomputed at most once a minute (``datetime.now`` per
    record costs more than the rest of :func:`check_sane`)."""
    t = time.monotonic()
    if t >= _LATEST[0]:
        _LATEST[0], _LATEST[1] = t + 60.0, datetime.now(UTC) + FUTURE_SLACK
    latest: datetime = _LATEST[1]
    return latest


def _check_texts(call: Call) -> None:
    for name in _TEXT_FIELDS:
        v = getattr(call, name)
        if v is None or (type(v) is str and v.isascii()):
            continue
        if not isinstance(v, str):
            raise UsageError(f"{name} must be text, got {type(v).__name__}", field=name)
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"{name} is not valid Unicode text (a lone surrogate)",
                             field=name) from None


def check_sane(call: Call) -> None:
    """Raise :class:`~ctxbudget.errors.UsageError` (a ``ValueError``, naming the field)
    when a call read from outside holds a value no real API call has: a token count
    outside 0..:data:`MAX_TOKENS`, a timestamp before :data:`MIN_TS` or more than
    :data:`FUTURE_SLACK` in the future, a latency that is not a finite number in
    0..:data:`MAX_LATENCY_MS`, a turn outside 0..:data:`MAX_TURN`, a text field that is
    not a string of Unicode characters (a lone surrogate from a ``"\\ud800"`` escape
    or from bytes that were not UTF-8).

    ``Usage`` itself only refuses negative counts; importers call this before a record
    is stored, so nonsense is rejected with its file:line instead of priced."""
    try:  # the common case in one test: every text field ASCII
        ascii_only = (call.provider + call.model + (call.task_id or "")
                      + (call.session_id or "") + (call.task_type or "")
                      + (call.request_id or "") + call.status + call.source
                      + (call.service_tier or "")).isascii()
    except TypeError:  # a field that is not text: named below
        ascii_only = False
    if not ascii_only:
        _check_texts(call)
    u = call.usage  # (Usage itself refuses negative counts)
    if max(u.input_tokens, u.cache_read_tokens, u.cache_write_5m_tokens,
           u.cache_write_1h_tokens, u.output_tokens) > MAX_TOKENS or not u._plain:
        for name in (*_CORE_FIELDS, *DETAIL_FIELDS):
            v = getattr(u, name)
            if v is not None and not 0 <= v <= MAX_TOKENS:
                raise UsageError(f"{name} out of range (0..{MAX_TOKENS:.0e}): {v}",
                                 field=name)
    ecr = call.expected_cache_read_tokens
    if ecr is not None and (not isinstance(ecr, int) or not 0 <= ecr <= MAX_TOKENS):
        raise UsageError(f"expected_cache_read_tokens out of range (0..{MAX_TOKENS:.0e}): "
                         f"{ecr!r}", field="expected_cache_read_tokens")
    if call.components:
        for k, v in call.components.items():
            if not isinstance(v, int) or not 0 <= v <= MAX_TOKENS:
                raise UsageError(f"components[{k!r}] out of range (0..{MAX_TOKENS:.0e}): "
                                 f"{v!r}", field="components")
    if call.other_tool_requests:
        for k, v in call.other_tool_requests.items():
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_TOKENS:
                raise UsageError(f"other_tool_requests[{k!r}] out of range "
                                 f"(0..{MAX_TOKENS:.0e}): {v!r}", field="other_tool_requests")
    ts = call.ts
    if not isinstance(ts, datetime):
        raise UsageError(f"ts must be a datetime, got {ts!r}", field="ts")
    if ts < MIN_TS:
        raise UsageError(f"ts {ts.isoformat()} is before {MIN_TS.year}", field="ts")
    if ts > _latest_ts():
        raise UsageError(f"ts {ts.isoformat()} is in the future", field="ts")
    lat = call.latency_ms
    if lat is not None:
        if isinstance(lat, bool) or not isinstance(lat, int | float) or not math.isfinite(lat):
            raise UsageError(f"latency_ms must be a finite number, got {lat!r}",
                             field="latency_ms")
        if not 0 <= lat <= MAX_LATENCY_MS:
            raise UsageError(f"latency_ms out of range (0..{MAX_LATENCY_MS:.0e}): {lat!r}",
                             field="latency_ms")
    turn = call.turn
    if turn is not None and (isinstance(turn, bool) or not isinstance(turn, int)
                             or not 0 <= turn <= MAX_TURN):
        raise UsageError(f"turn out of range (0..2^31-1): {turn!r}", field="turn")
