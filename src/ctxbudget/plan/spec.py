"""The budget spec: a YAML file validated by pydantic, errors mapped to file:line.

The spec is the plan's only input. Its JSON Schema (``ctxbudget plan --schema``,
``docs/budget-spec.schema.json``) is generated from the models below, so editors
can validate and complete it.

Every error names the file, the line and the dotted field: pydantic's error
location (``session.turns.min``) is walked through the YAML node tree built by
``yaml.compose`` to find the line of the offending key (or of its parent mapping
when a required key is missing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from ..errors import SpecError

__all__ = [
    "ALLOCATION_BUCKETS",
    "VARIABLE_COMPONENTS",
    "AllocationSpec",
    "BudgetSpec",
    "CachingSpec",
    "FixedComponent",
    "HistorySpec",
    "LoadedSpec",
    "ModelSpec",
    "SessionSpec",
    "as_loaded",
    "load_spec",
    "parse_spec",
    "spec_from_mapping",
    "spec_json_schema",
]

#: The per-call components, in prompt order after the fixed prefix.
VARIABLE_COMPONENTS: tuple[str, ...] = (
    "history", "retrieved", "tool_outputs", "user_message", "output",
)

#: The allocation buckets (the seed's 32k table rows), in display order.
ALLOCATION_BUCKETS: tuple[str, ...] = (
    "system_tools", "retrieved", "history", "tool_outputs", "user_output",
)


#: Largest token count a spec may give (the bound imported records have, usage.MAX_TOKENS).
MAX_SPEC_TOKENS = 10**12
#: Most turns a session may have: the plan has a row per turn, and a typo of 10^20 turns
#: would never finish.
MAX_TURNS = 10_000
#: Most calls per turn, instances of a fixed component, or retrieved chunks per call.
MAX_COUNT = 1_000_000

Tokens = Annotated[int, Field(ge=0, le=MAX_SPEC_TOKENS)]
Turns = Annotated[int, Field(ge=1, le=MAX_TURNS)]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]


class _Model(BaseModel):
    # NaN / inf are never a size, a rate or a share: refused with the field's line
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FixedComponent(_Model):
    """A per-session component (system prompt, tool definitions, safety, persistent docs).

    Exactly one source: ``tokens`` (a count), ``files`` (globs, relative to the spec's
    folder, counted with the model's token counter) or ``tools_file`` (a JSON list of
    tool definitions, counted per tool). ``count`` multiplies ``tokens`` (8 tools x 200).
    """

    tokens: Tokens | None = Field(None, description="Tokens of one instance.")
    count: Count = Field(1, description="How many instances (e.g. 8 tools).")
    files: list[str] | None = Field(
        None, description="Globs relative to the spec's folder; contents are counted.")
    tools_file: str | None = Field(
        None, description="JSON file holding a list of tool definitions, counted per tool.")

    @model_validator(mode="after")
    def _one_source(self) -> FixedComponent:
        given = [k for k in ("tokens", "files", "tools_file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of tokens, files or tools_file"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.count != 1 and self.tokens is None:
            raise ValueError("count multiplies tokens; it cannot be used with files/tools_file")
        return self


class HistorySpec(_Model):
    """How the conversation history grows. Exactly one growth rule.

    - ``tokens_per_turn: N``: each completed turn adds N tokens (history at turn t is
      N x (t-1)).
    - ``reaches: R`` + ``at_turn: T``: linear growth from 0 at turn 1 to R at turn T,
      rounded to whole tokens per turn (the seed's "10,000 tokens of history at turn 15").
    - ``accumulate: [user_message, output, tool_outputs]``: each turn adds what it sent
      and produced (all calls of the turn).
    """

    tokens_per_turn: Tokens | None = None
    reaches: Tokens | None = None
    at_turn: Annotated[int, Field(ge=2, le=MAX_TURNS)] | None = None
    accumulate: list[Literal["user_message", "output", "tool_outputs", "retrieved"]] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> HistorySpec:
        rules = [self.tokens_per_turn is not None, self.reaches is not None,
                 self.accumulate is not None]
        if sum(rules) > 1:
            raise ValueError("give one of tokens_per_turn, reaches/at_turn or accumulate")
        if (self.reaches is None) != (self.at_turn is None):
            raise ValueError("reaches and at_turn go together")
        return self


class RetrievedSpec(_Model):
    """Retrieved context per call: ``chunks`` x ``chunk_tokens`` (or ``tokens`` in total)."""

    chunks: Annotated[int, Field(ge=0, le=MAX_COUNT)] = 0
    chunk_tokens: Tokens = 0
    tokens: Tokens | None = None

    @property
    def total(self) -> int:
        return self.tokens if self.tokens is not None else self.chunks * self.chunk_tokens


class Size(_Model):
    """A per-call size in tokens."""

    tokens: Tokens = 0


class VariableSpec(_Model):
    """Per-call components. ``output`` is generated (billed as output, not context)."""

    history: HistorySpec = Field(default_factory=HistorySpec)
    retrieved: RetrievedSpec = Field(default_factory=RetrievedSpec)
    tool_outputs: Size = Field(default_factory=Size)
    user_message: Size = Field(default_factory=Size)
    output: Size = Field(default_factory=Size)


class FixedTurns(_Model):
    distribution: Literal["fixed"]
    turns: Turns


class UniformTurns(_Model):
    """Every whole number of turns in [min, max] equally likely."""

    distribution: Literal["uniform"]
    min: Turns
    max: Turns

    @model_validator(mode="after")
    def _order(self) -> UniformTurns:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


class NormalTurns(_Model):
    """round(N(mean, sd)), clipped to [min, max] (default max: mean + 4 sd)."""

    distribution: Literal["normal"]
    mean: Annotated[float, Field(gt=0, le=MAX_TURNS)]
    sd: Annotated[float, Field(ge=0, le=MAX_TURNS)]
    min: Turns = 1
    max: Turns | None = None

    @model_validator(mode="after")
    def _order(self) -> NormalTurns:
        hi = self.max if self.max is not None else math.ceil(self.mean + 4 * self.sd)
        if hi < self.min:
            raise ValueError("max must be >= min")
        return self


class EmpiricalTurns(_Model):
    """Observed turn counts, each equally likely (or weighted by ``weights``)."""

    distribution: Literal["empirical"]
    values: Annotated[list[Turns], Field(min_length=1)]
    weights: list[Annotated[float, Field(ge=0, le=1e12)]] | None = None

    @model_validator(mode="after")
    def _weights(self) -> EmpiricalTurns:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError("weights must have one entry per value")
            if sum(self.weights) <= 0:
                raise ValueError("weights must not all be zero")
        return self


TurnsSpec = Annotated[
    FixedTurns | UniformTurns | NormalTurns | EmpiricalTurns,
    Field(discriminator="distribution"),
]


class SessionSpec(_Model):
    """Session shape and volume. One task is one session."""

    turns: Turns | TurnsSpec = 1
    calls_per_turn: Count = Field(
        1, description="API calls per turn; each repeats the turn's context (a tool loop).")
    seconds_between_calls: Annotated[float, Field(ge=0, le=1e9)] = Field(
        30.0, description="Gap between consecutive calls of a turn (drives cache TTL).")
    seconds_between_turns: Annotated[float, Field(ge=0, le=1e9)] | None = Field(
        None, description="Gap between a turn's last call and the next turn's first "
                          "(default: seconds_between_calls).")
    tasks_per_day: Annotated[float, Field(ge=0, le=1e12)] = 0.0
    days_per_month: Annotated[float, Field(gt=0, le=31)] = 30.0


class CachingSpec(_Model):
    """Prompt caching.

    ``mode: auto`` follows the provider: Anthropic explicit breakpoints, OpenAI and
    Gemini automatic prefix caching, no caching for other providers.
    ``cacheable`` lists the fixed components under the cache breakpoint; they must be
    the leading fixed components (a breakpoint caches everything before it).
    ``history: true`` adds a rolling breakpoint at the end of the history, as agents do.
    """

    enabled: bool = True
    mode: Literal["auto", "explicit", "automatic", "none"] = "auto"
    cacheable: list[str] | None = Field(
        None, description="Fixed components before the breakpoint (default: all fixed).")
    history: bool = False
    ttl: Literal["5m", "1h"] = "5m"
    min_cacheable_tokens: Tokens | None = Field(
        None, description="Override the provider's minimum cacheable prefix length.")


class SlidingWindow(_Model):
    """Keep the last ``turns`` turns, or the most recent whole turns within ``tokens``."""

    turns: Turns | None = None
    tokens: Annotated[int, Field(ge=1, le=MAX_SPEC_TOKENS)] | None = None

    @model_validator(mode="after")
    def _one(self) -> SlidingWindow:
        if (self.turns is None) == (self.tokens is None):
            raise ValueError("give one of turns or tokens")
        return self


class Summarize(_Model):
    """When history would exceed ``at_tokens``, replace it by a ``to_tokens`` summary."""

    at_tokens: Annotated[int, Field(ge=1, le=MAX_SPEC_TOKENS)]
    to_tokens: Tokens
    charge_summary_call: bool = Field(
        True, description="Bill the summarization call (history in, summary out).")

    @model_validator(mode="after")
    def _smaller(self) -> Summarize:
        if self.to_tokens >= self.at_tokens:
            raise ValueError("to_tokens must be smaller than at_tokens")
        return self


class SlidingPolicy(_Model):
    sliding_window: SlidingWindow


class SummarizePolicy(_Model):
    summarize: Summarize


PolicySpec = Literal["none"] | SlidingPolicy | SummarizePolicy


def _default_policies() -> list[PolicySpec]:
    return ["none"]


class ModelSpec(_Model):
    model: str
    provider: str | None = None
    label: str | None = None
    service_tier: str | None = None


class AllocationSpec(_Model):
    """Allocation targets in % of the window: a named preset and/or explicit targets."""

    preset: str | None = None
    targets: dict[Literal["system_tools", "retrieved", "history", "tool_outputs",
                          "user_output"], Annotated[float, Field(ge=0, le=100)]] | None = None

    @model_validator(mode="after")
    def _sum(self) -> AllocationSpec:
        if self.targets is not None and sum(self.targets.values()) > 100.0 + 1e-9:
            raise ValueError("targets add up to more than 100%")
        return self


class BudgetSpec(_Model):
    """A token budget plan's input (see docs/plan.md)."""

    name: str | None = None
    description: str | None = None
    window: Annotated[int, Field(ge=1, le=MAX_SPEC_TOKENS)] | None = Field(
        None, description="Context window in tokens (default: the first model's).")
    output_reserve: Tokens | None = Field(
        None, description="Tokens kept free for the output (default: variable.output).")
    prices: str | list[str] | None = Field(
        None, description="Price overrides file(s), relative to the spec's folder.")
    models: Annotated[list[str | ModelSpec], Field(min_length=1)]
    fixed: dict[str, FixedComponent] = Field(default_factory=dict)
    variable: VariableSpec = Field(default_factory=VariableSpec)
    session: SessionSpec = Field(default_factory=lambda: SessionSpec.model_validate({}))
    caching: CachingSpec = Field(default_factory=lambda: CachingSpec.model_validate({}))
    history_policies: Annotated[list[PolicySpec], Field(min_length=1)] = Field(
        default_factory=_default_policies)
    allocation: AllocationSpec | None = None
    task_types: dict[str, Annotated[float, Field(gt=0, le=1e12)]] | None = Field(
        None, description="Task type -> share of tasks (used by simulate).")

    def model_specs(self) -> list[ModelSpec]:
        return [ModelSpec(model=m) if isinstance(m, str) else m for m in self.models]

    def cacheable_fixed(self) -> list[str]:
        if not self.caching.enabled:
            return []
        return list(self.fixed) if self.caching.cacheable is None else list(self.caching.cacheable)


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`BudgetSpec` (draft 2020-12, as pydantic emits it)."""
    schema = BudgetSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ctxbudget budget spec"
    return schema


# --------------------------------------------------------------------------- loading


class LoadedSpec:
    """A validated spec plus where it came from (for relative paths and line numbers)."""

    __slots__ = ("_nodes", "path", "spec")

    def __init__(self, spec: BudgetSpec, path: Path | None, nodes: Any) -> None:
        self.spec = spec
        self.path = path
        self._nodes = nodes

    @property
    def folder(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def where(self, loc: Sequence[str | int]) -> str:
        """``file:line: dotted.field`` for a location in the spec."""
        return _where(self.path, self._nodes, loc)

    def error(self, loc: Sequence[str | int], message: str) -> SpecError:
        return SpecError(f"{self.where(loc)}: {message}")


def _resolve(root: Any, loc: Sequence[str | int]) -> tuple[int | None, list[str | int]]:
    """Walk ``loc`` through the composed YAML: (1-based line, the parts that are real keys).

    pydantic adds union tags (``int``, ``tagged-union[...]``, ``function-after[...]``) to
    locations; a part that is not a key of the current mapping is skipped, except the last
    one (a missing required key, reported at its parent's line).
    """
    import yaml

    node = root
    line: int | None = root.start_mark.line + 1 if root is not None else None
    parts: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            hit = next(((k, v) for k, v in node.value if getattr(k, "value", None) == str(part)),
                       None)
            if hit is None:
                if i == len(loc) - 1 and isinstance(part, str) and "[" not in part:
                    parts.append(part)
                continue
            line = hit[0].start_mark.line + 1
            node = hit[1]
            parts.append(part)
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and 0 <= part < len(node.value)):
            node = node.value[part]
            line = node.start_mark.line + 1
            parts.append(part)
    return line, parts


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _where(path: Path | None, root: Any, loc: Sequence[str | int]) -> str:
    line, parts = _resolve(root, loc) if root is not None else (None, list(loc))
    name = str(path) if path is not None else "<spec>"
    return f"{name}:{line}: {_dotted(parts)}" if line else f"{name}: {_dotted(parts)}"


def parse_spec(text: str, path: Path | None = None) -> LoadedSpec:
    """Validate spec text; errors name file, line and field (:class:`SpecError`)."""
    import yaml

    name = str(path) if path is not None else "<spec>"
    from .._yamlio import safe_load

    data = safe_load(text, name, SpecError)
    root = yaml.compose(text, Loader=yaml.SafeLoader)  # node tree: line numbers per field
    if not isinstance(data, dict):
        raise SpecError(f"{name}:1: a budget spec is a YAML mapping (see docs/plan.md)")
    try:
        spec = BudgetSpec.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors(include_url=False)
        # prefer the most specific error: unknown keys and bad values over union noise
        # report the first problem in file order; unknown keys before union noise
        errs.sort(key=lambda e: (_resolve(root, e["loc"])[0] or 0,
                                 e["type"] not in ("extra_forbidden",), -len(e["loc"])))
        first = errs[0]
        msg = first["msg"]
        if first["type"] == "extra_forbidden":
            msg = "unknown key"
        elif first["type"] == "missing":
            msg = "required field missing"
        extra = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        msg = msg.removeprefix("Value error, ")
        raise SpecError(f"{_where(path, root, first['loc'])}: {msg}{extra}") from None
    loaded = LoadedSpec(spec, path, root)
    _check_cacheable(loaded)
    return loaded


def _check_cacheable(loaded: LoadedSpec) -> None:
    spec = loaded.spec
    names = list(spec.fixed)
    cacheable = spec.caching.cacheable
    if cacheable is None:
        return
    unknown = [c for c in cacheable if c not in names]
    if unknown:
        raise loaded.error(("caching", "cacheable"),
                           f"unknown fixed component(s) {', '.join(unknown)} "
                           f"(fixed: {', '.join(names) or 'none'})")
    if set(cacheable) != set(names[: len(cacheable)]):
        raise loaded.error(("caching", "cacheable"),
                           "must be the leading fixed components (in order: "
                           f"{', '.join(names)}); a cache breakpoint caches everything before it")


_UNION_TAGS = {"int", "str", "fixed", "uniform", "normal", "empirical", "SlidingPolicy",
               "SummarizePolicy", "ModelSpec"}


def spec_from_mapping(data: Any, folder: Path | None = None) -> LoadedSpec:
    """Validate a spec given as data (a dict, or a :class:`BudgetSpec`). Relative file
    paths resolve against ``folder`` (default: the current directory); errors name the
    dotted field (there are no lines)."""
    if isinstance(data, BudgetSpec):
        spec = data
    else:
        try:
            spec = BudgetSpec.model_validate(data)
        except ValidationError as exc:
            e = exc.errors(include_url=False)[0]
            parts = [p for p in e["loc"] if not (isinstance(p, str) and (
                "[" in p or p in _UNION_TAGS))]
            msg = "unknown key" if e["type"] == "extra_forbidden" else \
                "required field missing" if e["type"] == "missing" else e["msg"]
            raise SpecError(f"<spec>: {_dotted(parts)}: {msg.removeprefix('Value error, ')}"
                            ) from None
    loaded = LoadedSpec(spec, (folder or Path.cwd()) / "<spec>", None)
    _check_cacheable(loaded)
    return loaded


def load_spec(path: str | Path) -> LoadedSpec:
    """Read and validate a spec file."""
    from .._yamlio import read_text

    p = Path(path)
    if not p.exists():
        raise SpecError(f"{p}: spec file not found")
    return parse_spec(read_text(p, SpecError, "spec"), p)


def as_loaded(spec: object) -> LoadedSpec:
    """A :class:`LoadedSpec` from a path, a dict, a BudgetSpec or a LoadedSpec."""
    if isinstance(spec, LoadedSpec):
        return spec
    if isinstance(spec, BudgetSpec | dict):
        return spec_from_mapping(spec)
    if isinstance(spec, str | Path):
        return load_spec(spec)
    raise TypeError(f"a spec is a path, a dict or a BudgetSpec, not {type(spec).__name__}")
