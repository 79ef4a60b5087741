"""Provider usage adapters: raw usage objects → disjoint :class:`~ctxbudget.usage.Usage`.

Each adapter converts exactly once and says which convention the source used
(``AdaptedUsage.input_inclusive``: whether the source's input count *included*
cache tokens). Inconsistent input (cached > total input, negative counts,
non-integers) raises :class:`~ctxbudget.errors.UsageError` naming the field; we
never clamp.

Conventions by provider
========================  ====================================  ==========
source                    "input" field                          inclusive?
========================  ====================================  ==========
Anthropic Messages        ``input_tokens``                       no
OpenAI Chat Completions   ``prompt_tokens``                      yes
OpenAI Responses          ``input_tokens``                       yes
Gemini ``usageMetadata``  ``promptTokenCount``                   yes
Bedrock Converse          ``inputTokens``                        no
DeepSeek                  ``prompt_tokens`` (= hit + miss)       yes
OpenTelemetry GenAI       ``gen_ai.usage.input_tokens``          yes
========================  ====================================  ==========
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import UsageError
from .usage import TOOL_FIELDS, Call, Usage

__all__ = [
    "OTEL_ATTRIBUTES",
    "OTEL_PROVIDERS",
    "OTEL_USAGE_KEYS",
    "PROVIDERS",
    "AdaptedUsage",
    "Iteration",
    "adapt_usage",
    "detect_format",
    "from_anthropic",
    "from_bedrock",
    "from_bedrock_anthropic",
    "from_deepseek",
    "from_gemini",
    "from_groq",
    "from_mistral",
    "from_openai",
    "from_openai_chat",
    "from_openai_responses",
    "from_openrouter",
    "from_otel",
    "from_vertex_anthropic",
    "from_xai",
    "iteration_calls",
    "otel_provider",
]


@dataclass(frozen=True, slots=True)
class Iteration:
    """One sampling iteration of a response (Anthropic ``usage.iterations[]``)."""

    type: str
    """``message``, ``compaction``, ``advisor``... as the source names it."""
    model: str | None
    """The model that ran this iteration (the response's model unless the entry names one)."""
    usage: Usage


@dataclass(frozen=True, slots=True)
class AdaptedUsage:
    """A converted usage plus its provenance."""

    usage: Usage
    """The billed usage of the whole response (the sum of ``iterations`` when present)."""
    input_inclusive: bool
    """True when the source's input count included cache tokens."""
    model: str | None = None
    request_id: str | None = None
    service_tier: str | None = None
    iterations: tuple[Iteration, ...] = ()
    """Per-iteration usage when the source reports it; each is priced at its own model."""
    provider: str | None = None
    """The genai-prices provider id the format implies (``anthropic``, ``openai``,
    ``google``, ``groq``...), ``None`` when the format does not say (OpenTelemetry)."""
    format: str | None = None
    """The adapter that converted it (a key of :data:`PROVIDERS`)."""
    other_tool_requests: tuple[tuple[str, int], ...] = ()
    """Server-side tool counters this adapter does not know how to price (reported as
    unpriced fees, never dropped)."""
    reported_cost_usd: Decimal | None = None
    """The cost the provider itself reported in the body (OpenRouter ``usage.cost``),
    kept for comparison; ctxbudget's own price never reads it."""


def _as_mapping(obj: Any) -> Mapping[str, Any]:
    """Accept dicts and SDK (pydantic) objects alike."""
    if type(obj) is dict:  # the common case, without the ABC check
        return obj
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        out = dump()
        if isinstance(out, Mapping):
            return out
    if hasattr(obj, "__dict__"):
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    raise UsageError(f"expected a usage object, got {type(obj).__name__}")


def _int(m: Mapping[str, Any], key: str, path: str) -> int:
    v = m.get(key)
    if v is None:
        return 0
    if type(v) is int and v >= 0:  # the common case
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise UsageError(f"{path}{key} must be an integer, got {v!r}", field=f"{path}{key}")
    if v < 0:
        raise UsageError(f"{path}{key} is negative ({v})", field=f"{path}{key}")
    return v


def _sub(total: int, part: int, total_field: str, part_field: str) -> int:
    if part > total:
        raise UsageError(
            f"{part_field} ({part}) exceeds {total_field} ({total}): the source counts "
            f"{total_field} inclusively, so this usage is inconsistent",
            field=part_field,
        )
    return total - part


def _unwrap(raw: Any, key: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Return (usage mapping, enclosing body) whether given a body or a bare usage."""
    m = _as_mapping(raw)
    inner = m.get(key)
    if inner is not None:
        return _as_mapping(inner), m
    return m, {}


def _require(u: Mapping[str, Any], fmt: str, expected: Iterable[str], path: str,
             body: Mapping[str, Any] | None = None) -> None:
    """No silent zeros: fail when ``u`` has none of the fields ``fmt`` reads."""
    exp = tuple(expected)
    if any(k in u for k in exp):
        return
    guess = detect_format(body if body else u)
    hint = f"; the body looks like {guess!r} (use --provider {guess})" if guess and guess != fmt \
        else ""
    raise UsageError(
        f"{fmt} adapter: no usage fields found; expected one of "
        f"{', '.join(path + k for k in exp)}{hint}",
        field=f"{path}{exp[0]}",
    )


def _anthropic_buckets(u: Mapping[str, Any], path: str) -> Usage:
    """The buckets of one Anthropic usage object (top level or one iteration)."""
    inp = _int(u, "input_tokens", path)
    out = _int(u, "output_tokens", path)
    read = _int(u, "cache_read_input_tokens", path)
    total_write = _int(u, "cache_creation_input_tokens", path)
    cc = u.get("cache_creation")
    if cc:
        ccm = _as_mapping(cc)
        w5 = _int(ccm, "ephemeral_5m_input_tokens", f"{path}cache_creation.")
        w1 = _int(ccm, "ephemeral_1h_input_tokens", f"{path}cache_creation.")
        if "cache_creation_input_tokens" in u and u["cache_creation_input_tokens"] is not None \
                and w5 + w1 != total_write:
            raise UsageError(
                f"{path}cache_creation 5m+1h ({w5}+{w1}) != cache_creation_input_tokens "
                f"({total_write})",
                field=f"{path}cache_creation",
            )
    else:
        w5, w1 = total_write, 0
    thinking = _int(_as_mapping(u.get("output_tokens_details")), "thinking_tokens",
                    f"{path}output_tokens_details.")
    if thinking > out:
        raise UsageError(
            f"{path}output_tokens_details.thinking_tokens ({thinking}) exceeds "
            f"{path}output_tokens ({out})",
            field=f"{path}output_tokens_details.thinking_tokens",
        )
    return Usage(input_tokens=inp, cache_read_tokens=read, cache_write_5m_tokens=w5,
                 cache_write_1h_tokens=w1, output_tokens=out, reasoning_tokens=thinking)


#: ``usage.server_tool_use`` keys (Anthropic) -> :class:`Usage` tool-request fields.
_ANTHROPIC_TOOLS = {
    "web_search_requests": "web_search_requests",
    "web_fetch_requests": "web_fetch_requests",
    "code_execution_requests": "code_execution_requests",
}


def from_anthropic(raw: Any) -> AdaptedUsage:
    """Anthropic Messages ``usage`` (or a whole response / ``message_delta`` body).

    ``input_tokens`` excludes cache tokens. ``cache_creation.ephemeral_5m_input_tokens``
    and ``ephemeral_1h_input_tokens`` split the writes by TTL; when only
    ``cache_creation_input_tokens`` is present, the writes are 5-minute writes.
    ``output_tokens`` includes ``output_tokens_details.thinking_tokens`` (recorded as
    reasoning).

    ``usage.iterations`` (server-side compaction, server tool loops, the advisor tool):
    one entry per sampling iteration, each with its own buckets and, for some types, its
    own ``model``. The top-level counts then cover only part of the request, so the
    billed usage is the **sum over iterations** (each kept in ``iterations`` to be priced
    at its own model). ``usage.server_tool_use`` counts server-side tool requests
    (web search, web fetch, code execution), billed per request; an unknown counter is
    kept in ``other_tool_requests`` (reported as an unpriced fee, never dropped).
    """
    u, body = _unwrap(raw, "usage")
    _require(u, "anthropic", ("input_tokens", "output_tokens", "cache_read_input_tokens",
                              "cache_creation_input_tokens", "iterations"), "usage.")
    model = body.get("model") if isinstance(body.get("model"), str) else None
    top = _anthropic_buckets(u, "usage.")
    iterations: tuple[Iteration, ...] = ()
    its = u.get("iterations")
    if isinstance(its, list) and its:
        built = []
        for i, it in enumerate(its):
            itm = _as_mapping(it)
            itu = _anthropic_buckets(itm, f"usage.iterations[{i}].")
            imodel = itm.get("model") if isinstance(itm.get("model"), str) else None
            built.append(Iteration(type=str(itm.get("type") or "message"),
                                   model=imodel or model, usage=itu))
        iterations = tuple(built)
        total = sum((it.usage for it in iterations), Usage())
        if total.reasoning_tokens == 0 and top.reasoning_tokens <= total.output_tokens:
            total = replace(total, reasoning_tokens=top.reasoning_tokens)
    else:
        total = top
    tools: dict[str, int] = {}
    other: list[tuple[str, int]] = []
    stu = u.get("server_tool_use")
    if stu:
        for k, v in _as_mapping(stu).items():
            n = _int({k: v}, k, "usage.server_tool_use.")
            if k in _ANTHROPIC_TOOLS:
                tools[_ANTHROPIC_TOOLS[k]] = n
            elif n:
                other.append((k, n))
    if tools:
        total = replace(total, **tools)  # type: ignore[arg-type]
    tier = u.get("service_tier")
    return AdaptedUsage(
        total,
        input_inclusive=False,
        model=model,
        request_id=body.get("id") if isinstance(body.get("id"), str) else None,
        service_tier=tier if isinstance(tier, str) else None,
        iterations=iterations,
        provider="anthropic",
        format="anthropic",
        other_tool_requests=tuple(other),
    )


def _modalities(details: Mapping[str, Any], path: str, keys: Mapping[str, str]) -> dict[str, int]:
    """Modality counts from a details object: ``{"audio_tokens": ...}`` -> Usage fields."""
    out: dict[str, int] = {}
    for src, dst in keys.items():
        if details.get(src) is not None:
            out[dst] = _int(details, src, path)
    return out


def _openai_like(raw: Any, *, fmt: str, provider: str, responses: bool) -> AdaptedUsage:
    """Chat Completions (``prompt_tokens``...) or Responses (``input_tokens``...) usage.

    The prompt count includes ``*_tokens_details.cached_tokens`` (and
    ``cache_write_tokens`` where an OpenAI-compatible provider reports writes); output
    includes ``reasoning_tokens``, except where a provider reports reasoning *beside*
    the completion (xAI: ``total_tokens`` = prompt + completion + reasoning), which the
    ``total_tokens`` arithmetic tells apart. Audio / image counts in the details become
    modality detail: ``prompt_tokens_details.audio_tokens`` includes cached audio
    (``cached_tokens_details.audio_tokens``), so uncached audio is the difference.
    """
    p_key, o_key = ("input_tokens", "output_tokens") if responses else \
        ("prompt_tokens", "completion_tokens")
    pd_key, od_key = ("input_tokens_details", "output_tokens_details") if responses else \
        ("prompt_tokens_details", "completion_tokens_details")
    u, body = _unwrap(raw, "usage")
    _require(u, fmt, (p_key, o_key), "usage.", body or None)
    prompt = _int(u, p_key, "usage.")
    out = _int(u, o_key, "usage.")
    ptd = _as_mapping(u.get(pd_key))
    ctd = _as_mapping(u.get(od_key))
    ppath, cpath = f"usage.{pd_key}.", f"usage.{od_key}."
    cached = _int(ptd, "cached_tokens", ppath)
    if not cached and "num_cached_tokens" in u:  # Mistral
        cached = _int(u, "num_cached_tokens", "usage.")
    if not cached and "cached_prompt_text_tokens" in u:  # xAI (gRPC / xai-sdk)
        cached = _int(u, "cached_prompt_text_tokens", "usage.")
    write = _int(ptd, "cache_write_tokens", ppath)
    reasoning = _int(ctd, "reasoning_tokens", cpath)
    if not reasoning and u.get("reasoning_tokens") is not None:
        reasoning = _int(u, "reasoning_tokens", "usage.")
    uncached = _sub(prompt, cached, f"usage.{p_key}", f"{ppath}cached_tokens")
    uncached = _sub(uncached, write, f"usage.{p_key} - cached_tokens",
                    f"{ppath}cache_write_tokens")
    total = u.get("total_tokens")
    if reasoning and isinstance(total, int) and total == prompt + out + reasoning \
            and total != prompt + out:
        out += reasoning  # reasoning reported beside the completion, not inside it
    if reasoning > out:
        raise UsageError(
            f"{cpath}reasoning_tokens ({reasoning}) exceeds usage.{o_key} ({out})",
            field=f"{cpath}reasoning_tokens",
        )
    detail: dict[str, int] = {}
    ccd = _as_mapping(ptd.get("cached_tokens_details"))
    cached_mod = _modalities(ccd, f"{ppath}cached_tokens_details.",
                             {"audio_tokens": "cache_read_audio_tokens",
                              "image_tokens": "cache_read_image_tokens"})
    in_mod = _modalities(ptd, ppath, {"audio_tokens": "input_audio_tokens",
                                      "image_tokens": "input_image_tokens",
                                      "video_tokens": "input_video_tokens"})
    for k, v in in_mod.items():
        c = cached_mod.get(k.replace("input_", "cache_read_"), 0)
        detail[k] = _sub(v, c, f"{ppath}{k.removeprefix('input_')}",
                         f"{ppath}cached_tokens_details.{k.removeprefix('input_')}")
    detail.update(cached_mod)
    detail.update(_modalities(ctd, cpath, {"audio_tokens": "output_audio_tokens",
                                           "image_tokens": "output_image_tokens"}))
    tools, other = _tool_counts(u, body, responses=responses)
    tier = body.get("service_tier")
    cost = u.get("cost")
    reported: Decimal | None = None
    if isinstance(cost, (int, float, str)) and not isinstance(cost, bool):
        try:
            reported = Decimal(str(cost))
        except InvalidOperation:
            reported = None
    return AdaptedUsage(
        Usage(input_tokens=uncached, cache_read_tokens=cached, cache_write_5m_tokens=write,
              output_tokens=out, reasoning_tokens=reasoning, **detail, **tools),
        input_inclusive=True,
        model=body.get("model") if isinstance(body.get("model"), str) else None,
        request_id=body.get("id") if isinstance(body.get("id"), str) else None,
        service_tier=tier if isinstance(tier, str) else None,
        provider=provider,
        format=fmt,
        other_tool_requests=other,
        reported_cost_usd=reported,
    )


#: OpenAI Responses output item types that are server-side tool calls billed per call.
_RESPONSES_TOOL_ITEMS = {
    "web_search_call": "web_search_requests",
    "file_search_call": "file_search_requests",
    "code_interpreter_call": "code_execution_requests",
}


def _tool_counts(u: Mapping[str, Any], body: Mapping[str, Any], *, responses: bool
                 ) -> tuple[dict[str, int], tuple[tuple[str, int], ...]]:
    """Server-side tool requests of an OpenAI-shaped body: Responses ``output[]`` tool
    call items, ``usage.server_tool_use`` (OpenRouter), xAI ``num_sources_used``."""
    tools: dict[str, int] = {}
    other: list[tuple[str, int]] = []
    if responses and isinstance(body.get("output"), list):
        for item in body["output"]:
            kind = item.get("type") if isinstance(item, Mapping) else getattr(item, "type", None)
            if kind in _RESPONSES_TOOL_ITEMS:
                f = _RESPONSES_TOOL_ITEMS[kind]
                tools[f] = tools.get(f, 0) + 1
            elif isinstance(kind, str) and kind.endswith("_call") and kind not in (
                    "function_call", "custom_tool_call", "local_shell_call", "computer_call",
                    "mcp_call", "shell_call", "apply_patch_call"):
                other.append((kind, 1))
    stu = u.get("server_tool_use") or u.get("server_tool_use_details")  # OpenRouter: _details
    if isinstance(stu, Mapping):
        for k, v in stu.items():
            n = _int({k: v}, k, "usage.server_tool_use.")
            if k in _ANTHROPIC_TOOLS:
                tools[_ANTHROPIC_TOOLS[k]] = tools.get(_ANTHROPIC_TOOLS[k], 0) + n
            elif n:
                other.append((k, n))
    used = u.get("server_side_tools_used")  # xAI: one entry per server-side tool call
    if isinstance(used, list):
        for t in used:
            name = str(t).removeprefix("SERVER_SIDE_TOOL_").lower()
            if name == "web_search":
                tools["web_search_requests"] = tools.get("web_search_requests", 0) + 1
            elif name == "code_execution":
                tools["code_execution_requests"] = tools.get("code_execution_requests", 0) + 1
            else:
                other.append((name, 1))
    if u.get("num_sources_used") is not None:
        tools["live_search_sources"] = _int(u, "num_sources_used", "usage.")
    merged: dict[str, int] = {}
    for k, n in other:
        merged[k] = merged.get(k, 0) + n
    return tools, tuple(merged.items())


def from_openai_chat(raw: Any) -> AdaptedUsage:
    """OpenAI Chat Completions ``usage``: ``prompt_tokens`` includes
    ``prompt_tokens_details.cached_tokens`` (and ``cache_write_tokens`` where present);
    ``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``;
    ``prompt_tokens_details.audio_tokens`` / ``completion_tokens_details.audio_tokens``
    are audio detail."""
    return _openai_like(raw, fmt="openai-chat", provider="openai", responses=False)


def from_openai_responses(raw: Any) -> AdaptedUsage:
    """OpenAI Responses ``usage``: ``input_tokens`` includes
    ``input_tokens_details.cached_tokens`` (and ``cache_write_tokens``);
    ``output_tokens`` includes ``output_tokens_details.reasoning_tokens``. With a whole
    response body, ``web_search_call`` / ``file_search_call`` / ``code_interpreter_call``
    items of ``output[]`` are counted as server-side tool requests."""
    return _openai_like(raw, fmt="openai-responses", provider="openai", responses=True)


def from_openai(raw: Any) -> AdaptedUsage:
    """OpenAI usage of either API, told apart by its field names."""
    u, _ = _unwrap(raw, "usage")
    if "prompt_tokens" in u or "completion_tokens" in u:
        return from_openai_chat(raw)
    if "input_tokens" in u or "output_tokens" in u:
        return from_openai_responses(raw)
    _require(u, "openai", ("prompt_tokens", "completion_tokens", "input_tokens",
                           "output_tokens"), "usage.", _as_mapping(raw))
    raise AssertionError("unreachable")  # pragma: no cover


def from_mistral(raw: Any) -> AdaptedUsage:
    """Mistral chat ``usage``: OpenAI-chat shaped; cached prompt tokens appear as
    ``prompt_tokens_details.cached_tokens`` or ``num_cached_tokens`` (both inside
    ``prompt_tokens``)."""
    return _openai_like(raw, fmt="mistral", provider="mistral", responses=False)


def from_groq(raw: Any) -> AdaptedUsage:
    """Groq chat ``usage``: OpenAI-chat shaped (plus timing fields that are not billed);
    ``prompt_tokens_details.cached_tokens`` is inside ``prompt_tokens``."""
    return _openai_like(raw, fmt="groq", provider="groq", responses=False)


def from_openrouter(raw: Any) -> AdaptedUsage:
    """OpenRouter ``usage``: OpenAI-chat shaped; ``prompt_tokens_details.cached_tokens``
    and ``cache_write_tokens`` are inside ``prompt_tokens``; ``cost`` (USD, what
    OpenRouter charged) is kept as ``reported_cost_usd``."""
    return _openai_like(raw, fmt="openrouter", provider="openrouter", responses=False)


def from_xai(raw: Any) -> AdaptedUsage:
    """xAI ``usage``: OpenAI-chat shaped, but ``completion_tokens_details.reasoning_tokens``
    is billed *beside* ``completion_tokens`` (``total_tokens`` = prompt + completion +
    reasoning); ``num_sources_used`` (Live Search sources) is a per-source fee."""
    return _openai_like(raw, fmt="xai", provider="x-ai", responses=False)


def from_bedrock_anthropic(raw: Any) -> AdaptedUsage:
    """Bedrock ``InvokeModel`` with an Anthropic model: the body is an Anthropic Messages
    response (same usage fields as :func:`from_anthropic`); priced as provider ``aws``."""
    a = from_anthropic(raw)
    return replace(a, provider="aws", format="bedrock-anthropic")


def from_vertex_anthropic(raw: Any) -> AdaptedUsage:
    """Vertex AI ``rawPredict`` with an Anthropic model: an Anthropic Messages response;
    priced as provider ``google`` (Vertex's partner-model prices)."""
    a = from_anthropic(raw)
    return replace(a, provider="google", format="vertex-anthropic")


def _gemini_modalities(u: Mapping[str, Any], key: str) -> dict[str, int]:
    """``[{"modality": "AUDIO", "tokenCount": 12}, ...]`` -> ``{"audio": 12}``."""
    out: dict[str, int] = {}
    items = u.get(key)
    if not isinstance(items, list):
        return out
    for i, d in enumerate(items):
        m = _as_mapping(d)
        mod = str(m.get("modality", "")).lower()
        n = _int(m, "tokenCount", f"usageMetadata.{key}[{i}].")
        if mod in ("audio", "image", "video"):
            out[mod] = out.get(mod, 0) + n
    return out


def _gemini_searches(body: Mapping[str, Any], model: str | None) -> int | None:
    """Grounding with Google Search: Gemini 2.x bills per grounded prompt, Gemini 3 per
    search query (``groundingMetadata.webSearchQueries``)."""
    cands = body.get("candidates")
    if not isinstance(cands, list):
        return None
    queries = 0
    grounded = False
    for c in cands:
        gm = _as_mapping(_as_mapping(c).get("groundingMetadata"))
        q = gm.get("webSearchQueries")
        if isinstance(q, list) and q:
            grounded = True
            queries += len(q)
    if not grounded:
        return None
    return queries if (model or "").startswith("gemini-3") else 1


def from_gemini(raw: Any) -> AdaptedUsage:
    """Gemini ``usageMetadata``: ``promptTokenCount`` includes ``cachedContentTokenCount``;
    ``toolUsePromptTokenCount`` is extra input; ``thoughtsTokenCount`` is billed as output
    (added to ``candidatesTokenCount``) and recorded as reasoning.

    ``promptTokensDetails`` / ``cacheTokensDetails`` / ``toolUsePromptTokensDetails`` /
    ``candidatesTokensDetails`` split counts by modality: audio, image and video become
    modality detail (uncached audio = prompt audio + tool-use audio - cached audio).
    With a whole response, grounding (``candidates[].groundingMetadata.webSearchQueries``)
    counts as web search requests."""
    u, body = _unwrap(raw, "usageMetadata")
    _require(u, "gemini", ("promptTokenCount", "candidatesTokenCount", "totalTokenCount"),
             "usageMetadata.", body or None)
    prompt = _int(u, "promptTokenCount", "usageMetadata.")
    cached = _int(u, "cachedContentTokenCount", "usageMetadata.")
    tool = _int(u, "toolUsePromptTokenCount", "usageMetadata.")
    cand = _int(u, "candidatesTokenCount", "usageMetadata.")
    thoughts = _int(u, "thoughtsTokenCount", "usageMetadata.")
    uncached = _sub(prompt, cached, "usageMetadata.promptTokenCount",
                    "usageMetadata.cachedContentTokenCount")
    pm = _gemini_modalities(u, "promptTokensDetails")
    cm = _gemini_modalities(u, "cacheTokensDetails")
    tm = _gemini_modalities(u, "toolUsePromptTokensDetails")
    om = _gemini_modalities(u, "candidatesTokensDetails")
    detail: dict[str, int] = {}
    for mod in ("audio", "image", "video"):
        if mod in pm or mod in tm:
            detail[f"input_{mod}_tokens"] = _sub(
                pm.get(mod, 0) + tm.get(mod, 0), cm.get(mod, 0),
                f"usageMetadata.promptTokensDetails[{mod.upper()}]",
                f"usageMetadata.cacheTokensDetails[{mod.upper()}]")
        if mod in cm:
            detail[f"cache_read_{mod}_tokens"] = cm[mod]
        if mod in om and mod != "video":
            detail[f"output_{mod}_tokens"] = om[mod]
    model = body.get("modelVersion") if isinstance(body.get("modelVersion"), str) else None
    searches = _gemini_searches(body, model)
    if searches is not None:
        detail["web_search_requests"] = searches
    tier = u.get("serviceTier") if isinstance(u.get("serviceTier"), str) else None
    return AdaptedUsage(
        Usage(input_tokens=uncached + tool, cache_read_tokens=cached,
              output_tokens=cand + thoughts, reasoning_tokens=thoughts, **detail),
        input_inclusive=True,
        model=model,
        request_id=body.get("responseId") if isinstance(body.get("responseId"), str) else None,
        service_tier=tier,
        provider="google",
        format="gemini",
    )


def from_bedrock(raw: Any) -> AdaptedUsage:
    """Bedrock Converse ``usage``: ``inputTokens`` excludes ``cacheReadInputTokens`` and
    ``cacheWriteInputTokens`` (``totalTokens`` = all three + output)."""
    u, body = _unwrap(raw, "usage")
    _require(u, "bedrock", ("inputTokens", "outputTokens", "totalTokens"), "usage.",
             body or None)
    inp = _int(u, "inputTokens", "usage.")
    out = _int(u, "outputTokens", "usage.")
    read = _int(u, "cacheReadInputTokens", "usage.")
    write = _int(u, "cacheWriteInputTokens", "usage.")
    total = u.get("totalTokens")
    if isinstance(total, int) and total != inp + out + read + write:
        raise UsageError(
            f"usage.totalTokens ({total}) != inputTokens + outputTokens + cacheRead + cacheWrite "
            f"({inp + out + read + write})",
            field="usage.totalTokens",
        )
    return AdaptedUsage(
        Usage(input_tokens=inp, cache_read_tokens=read, cache_write_5m_tokens=write,
              output_tokens=out),
        input_inclusive=False,
        request_id=_as_mapping(body.get("ResponseMetadata")).get("RequestId"),
        provider="aws",
        format="bedrock",
    )


def from_deepseek(raw: Any) -> AdaptedUsage:
    """DeepSeek ``usage``: ``prompt_tokens`` = ``prompt_cache_hit_tokens`` +
    ``prompt_cache_miss_tokens``; reasoning in ``completion_tokens_details``."""
    u, body = _unwrap(raw, "usage")
    _require(u, "deepseek", ("prompt_tokens", "completion_tokens", "prompt_cache_hit_tokens",
                             "prompt_cache_miss_tokens"), "usage.", body or None)
    prompt = _int(u, "prompt_tokens", "usage.")
    hit = _int(u, "prompt_cache_hit_tokens", "usage.")
    miss_given = "prompt_cache_miss_tokens" in u
    miss = _int(u, "prompt_cache_miss_tokens", "usage.")
    out = _int(u, "completion_tokens", "usage.")
    reasoning = _int(_as_mapping(u.get("completion_tokens_details")), "reasoning_tokens",
                     "usage.completion_tokens_details.")
    if miss_given and "prompt_tokens" in u and hit + miss != prompt:
        raise UsageError(
            f"usage.prompt_cache_hit_tokens + prompt_cache_miss_tokens ({hit}+{miss}) != "
            f"usage.prompt_tokens ({prompt})",
            field="usage.prompt_cache_miss_tokens",
        )
    uncached = miss if miss_given else _sub(prompt, hit, "usage.prompt_tokens",
                                            "usage.prompt_cache_hit_tokens")
    if reasoning > out:
        raise UsageError(f"usage.completion_tokens_details.reasoning_tokens ({reasoning}) "
                         f"exceeds usage.completion_tokens ({out})",
                         field="usage.completion_tokens_details.reasoning_tokens")
    return AdaptedUsage(
        Usage(input_tokens=uncached, cache_read_tokens=hit, output_tokens=out,
              reasoning_tokens=reasoning),
        input_inclusive=True,
        model=body.get("model"),
        request_id=body.get("id"),
        provider="deepseek",
        format="deepseek",
    )


#: OpenTelemetry attribute names per quantity, first found wins: the current GenAI
#: semantic conventions, then pydantic-ai / Logfire (``gen_ai.usage.details.*``),
#: OpenLLMetry (``gen_ai.usage.prompt_tokens``, ``..._input_tokens``), OpenLIT and the
#: older ``llm.usage.*`` names.
OTEL_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "input": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
              "llm.usage.prompt_tokens"),
    "output": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
               "llm.usage.completion_tokens"),
    "cache_read": ("gen_ai.usage.cache_read.input_tokens",
                   "gen_ai.usage.cache_read_input_tokens",
                   "gen_ai.usage.details.cache_read_tokens",
                   "gen_ai.usage.details.cache_read_input_tokens",
                   "llm.usage.cache_read_input_tokens"),
    "cache_write": ("gen_ai.usage.cache_creation.input_tokens",
                    "gen_ai.usage.cache_creation_input_tokens",
                    "gen_ai.usage.details.cache_write_tokens",
                    "gen_ai.usage.details.cache_creation_input_tokens",
                    "llm.usage.cache_creation_input_tokens"),
    "cache_write_1h": ("gen_ai.usage.cache_creation.ephemeral_1h.input_tokens",
                       "gen_ai.usage.details.cache_write_1h_tokens",
                       "gen_ai.usage.details.ephemeral_1h_input_tokens",
                       "gen_ai.usage.details.cache_creation_1h_input_tokens"),
    "cache_write_5m": ("gen_ai.usage.cache_creation.ephemeral_5m.input_tokens",
                       "gen_ai.usage.details.cache_write_5m_tokens",
                       "gen_ai.usage.details.ephemeral_5m_input_tokens",
                       "gen_ai.usage.details.cache_creation_5m_input_tokens"),
    "reasoning": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                  "gen_ai.usage.details.reasoning_tokens",
                  "gen_ai.usage.details.thinking_tokens", "llm.usage.reasoning_tokens"),
    "input_audio": ("gen_ai.usage.details.input_audio_tokens",),
    "cache_read_audio": ("gen_ai.usage.details.cache_audio_read_tokens",),
    "output_audio": ("gen_ai.usage.details.output_audio_tokens",),
    "web_search": ("gen_ai.usage.details.web_search_requests",
                   "gen_ai.usage.details.server_tool_use.web_search_requests"),
    "web_fetch": ("gen_ai.usage.details.web_fetch_requests",
                  "gen_ai.usage.details.server_tool_use.web_fetch_requests"),
}

#: Every attribute that marks a span as carrying GenAI usage.
OTEL_USAGE_KEYS: tuple[str, ...] = (*OTEL_ATTRIBUTES["input"], *OTEL_ATTRIBUTES["output"])


def _otel_flat(raw: Any) -> Mapping[str, Any]:
    m = _as_mapping(raw)
    attrs = m.get("attributes", m)
    if isinstance(attrs, list):  # OTLP JSON: [{"key": k, "value": {"intValue": "12"}}]
        flat: dict[str, Any] = {}
        for kv in attrs:
            val = kv.get("value", {})
            v = next(iter(val.values()), None) if isinstance(val, Mapping) else val
            if isinstance(v, str) and v.isdigit():
                v = int(v)
            flat[kv.get("key")] = v
        attrs = flat
    return _as_mapping(attrs)


def _otel_get(a: Mapping[str, Any], what: str) -> tuple[int | None, str]:
    """(value, attribute name) of the first attribute of ``what`` present."""
    for name in OTEL_ATTRIBUTES[what]:
        if a.get(name) is not None:
            v = a[name]
            if isinstance(v, str) and v.isdigit():
                v = int(v)
            return _int({name: v}, name, ""), name
    return None, OTEL_ATTRIBUTES[what][0]


def from_otel(raw: Any) -> AdaptedUsage:
    """OpenTelemetry GenAI span attributes (a flat mapping, or ``{"attributes": ...}``).

    The input count (``gen_ai.usage.input_tokens``, or OpenLLMetry's
    ``gen_ai.usage.prompt_tokens``) is inclusive of cache reads and cache writes, as the
    semantic conventions define it; see :data:`OTEL_ATTRIBUTES` for every name read.
    A 1-hour cache write (``gen_ai.usage.details.cache_write_1h_tokens`` /
    ``ephemeral_1h_input_tokens``) is split from the cache writes so it is priced at
    the 1-hour rate; reasoning is part of output; pydantic-ai's
    ``gen_ai.usage.details.input_audio_tokens`` (inclusive of cached audio),
    ``cache_audio_read_tokens`` and ``output_audio_tokens`` become modality detail."""
    a = _otel_flat(raw)
    prompt, p_name = _otel_get(a, "input")
    out, _ = _otel_get(a, "output")
    if prompt is None and out is None:
        _require(a, "otel", OTEL_USAGE_KEYS, "")
    prompt, out = prompt or 0, out or 0
    read, r_name = _otel_get(a, "cache_read")
    write, w_name = _otel_get(a, "cache_write")
    w1, w1_name = _otel_get(a, "cache_write_1h")
    w5, _ = _otel_get(a, "cache_write_5m")
    reasoning, rs_name = _otel_get(a, "reasoning")
    read = read or 0
    if write is None:
        write = (w1 or 0) + (w5 or 0)
    w1 = w1 or 0
    if w1 > write:
        raise UsageError(f"{w1_name} ({w1}) exceeds {w_name} ({write})", field=w1_name)
    uncached = _sub(prompt, read, p_name, r_name)
    uncached = _sub(uncached, write, f"{p_name} - cache_read", w_name)
    reasoning = reasoning or 0
    if reasoning > out:
        raise UsageError(f"{rs_name} exceeds {OTEL_ATTRIBUTES['output'][0]}", field=rs_name)
    detail: dict[str, int] = {}
    ia, _ = _otel_get(a, "input_audio")
    ca, ca_name = _otel_get(a, "cache_read_audio")
    oa, _ = _otel_get(a, "output_audio")
    if ia is not None:
        detail["input_audio_tokens"] = _sub(ia, ca or 0, OTEL_ATTRIBUTES["input_audio"][0],
                                            ca_name)
    if ca is not None:
        detail["cache_read_audio_tokens"] = ca
    if oa is not None:
        detail["output_audio_tokens"] = oa
    # pydantic-ai records Anthropic advisor iterations only as totals, without the
    # advisor's model: they cannot be priced, so they are reported, never dropped
    advisor = sum(v for k in _OTEL_ADVISOR_KEYS if isinstance(v := a.get(k), int))
    other = (("advisor_iteration_tokens", advisor),) if advisor else ()
    ws, _ = _otel_get(a, "web_search")
    wf, _ = _otel_get(a, "web_fetch")
    if ws is not None:
        detail["web_search_requests"] = ws
    if wf is not None:
        detail["web_fetch_requests"] = wf
    model = a.get("gen_ai.response.model") or a.get("gen_ai.request.model")
    rid = a.get("gen_ai.response.id")
    return AdaptedUsage(
        Usage(input_tokens=uncached, cache_read_tokens=read, cache_write_5m_tokens=write - w1,
              cache_write_1h_tokens=w1, output_tokens=out, reasoning_tokens=reasoning,
              **detail),
        input_inclusive=True,
        model=model if isinstance(model, str) else None,
        request_id=rid if isinstance(rid, str) else None,
        format="otel",
        other_tool_requests=other,
    )


_OTEL_ADVISOR_KEYS = tuple(f"gen_ai.usage.details.advisor_{k}" for k in (
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))

#: ``gen_ai.provider.name`` / ``gen_ai.system`` values -> genai-prices provider ids.
OTEL_PROVIDERS: dict[str, str] = {
    "aws.bedrock": "aws", "az.ai.openai": "azure", "azure.ai.openai": "azure",
    "azure.ai.inference": "azure", "gcp.gemini": "google", "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google", "gemini": "google", "vertex_ai": "google", "x_ai": "x-ai",
    "xai": "x-ai", "mistral_ai": "mistral", "google_genai": "google",
}


def otel_provider(system: str) -> str:
    """The catalog provider id of an OTel ``gen_ai.provider.name`` / ``gen_ai.system``."""
    return OTEL_PROVIDERS.get(system, system)


PROVIDERS: dict[str, Callable[[Any], AdaptedUsage]] = {
    "anthropic": from_anthropic,
    "openai": from_openai,
    "openai-chat": from_openai_chat,
    "openai-responses": from_openai_responses,
    "gemini": from_gemini,
    "bedrock": from_bedrock,
    "bedrock-anthropic": from_bedrock_anthropic,
    "vertex-anthropic": from_vertex_anthropic,
    "deepseek": from_deepseek,
    "mistral": from_mistral,
    "groq": from_groq,
    "openrouter": from_openrouter,
    "xai": from_xai,
    "otel": from_otel,
}


def detect_format(body: Any) -> str | None:
    """The adapter whose shape ``body`` (a response body or a bare usage object) has, or
    ``None``. Looks only at field names, never at values."""
    try:
        m = _as_mapping(body)
    except UsageError:
        return None
    if isinstance(m.get("usageMetadata"), Mapping) or "promptTokenCount" in m \
            or "candidatesTokenCount" in m:
        return "gemini"
    attrs = m.get("attributes", m)
    if isinstance(attrs, list) or any(isinstance(k, str) and k in OTEL_USAGE_KEYS
                                      for k in _as_mapping(attrs)):
        return "otel"
    inner = m.get("usage")
    u: Mapping[str, Any] = inner if isinstance(inner, Mapping) else m
    if "inputTokens" in u or "outputTokens" in u:
        return "bedrock"
    if "prompt_cache_hit_tokens" in u or "prompt_cache_miss_tokens" in u:
        return "deepseek"
    if "prompt_tokens" in u or "completion_tokens" in u:
        model = str(m.get("model") or "")
        if "cost" in u or "is_byok" in u or str(m.get("id", "")).startswith("gen-"):
            return "openrouter"
        if "x_groq" in m or "queue_time" in u or "prompt_time" in u:
            return "groq"
        if "num_sources_used" in u or model.startswith("grok"):
            return "xai"
        if "num_cached_tokens" in u or "prompt_audio_seconds" in u:
            return "mistral"
        return "openai-chat"
    if "input_tokens" in u or "output_tokens" in u:
        if m.get("object") == "response" or "input_tokens_details" in u \
                or ("output_tokens_details" in u and "reasoning_tokens" in _as_mapping(
                    u.get("output_tokens_details"))):
            return "openai-responses"
        return "anthropic"
    return None


def adapt_usage(provider: str, raw: Any) -> AdaptedUsage:
    """Convert a raw usage object (or whole response body) of ``provider``.

    ``provider="auto"`` detects the shape (:func:`detect_format`); a body no adapter
    recognises is an error naming the formats, never all zeros."""
    if provider == "auto":
        guess = detect_format(raw)
        if guess is None:
            raise UsageError(
                "no usage fields recognised: expected an Anthropic / OpenAI / Gemini / "
                "Bedrock / DeepSeek / OpenTelemetry usage object or response body "
                f"(formats: {', '.join(PROVIDERS)})",
                field="usage",
            )
        provider = guess
    try:
        fn = PROVIDERS[provider]
    except KeyError:
        raise UsageError(
            f"unknown usage format {provider!r}; expected one of auto, {', '.join(PROVIDERS)}",
            field="provider",
        ) from None
    return fn(raw)


def iteration_calls(a: AdaptedUsage, base: Call) -> list[Call]:
    """``base`` (a call built from ``a``) as the calls the store keeps: one per sampling
    iteration when ``a`` has several (Anthropic compaction / advisor), else ``[base]``.

    This is how the tracker, the gateway and the importers record a response, and it
    bills exactly what :func:`ctxbudget.priced.price_adapted` bills: each iteration call
    gets its iteration's buckets and model (an iteration naming another model, like the
    advisor's, is priced at that model and at the context-length tier of its own
    prompt). The response's server-side tool counts and its other billed counters
    (``other_tool_requests``) go on one call of the response's own model (they are priced
    at that model), the last one; so does the reasoning count when only the top level
    reports it. That call keeps ``base.request_id``; the others get ``<id>#<n>``; all carry
    ``meta.iteration`` / ``meta.iteration_type``."""
    other = dict(a.other_tool_requests) if a.other_tool_requests else None
    if other and not base.other_tool_requests:
        base = base.with_(other_tool_requests=other)
    if len(a.iterations) <= 1:
        return [base]
    models = [it.model if it.model and it.model != a.model else base.model
              for it in a.iterations]
    home = max((i for i, m in enumerate(models) if m == base.model),
               default=len(a.iterations) - 1)
    usages = [it.usage for it in a.iterations]
    tools = {f: getattr(a.usage, f) for f, _ in TOOL_FIELDS}
    usages[home] = replace(usages[home], **tools)
    reasoning = a.usage.reasoning_tokens
    if reasoning and not any(u.reasoning_tokens for u in usages):
        fits = [i for i, u in enumerate(usages) if models[i] == base.model
                and u.output_tokens >= reasoning]
        if fits:
            at = home if home in fits else fits[0]
            usages[at] = replace(usages[at], reasoning_tokens=reasoning)
    out: list[Call] = []
    for i, it in enumerate(a.iterations):
        meta = {**(base.meta or {}), "iteration": i, "iteration_type": it.type}
        rid = base.request_id if i == home or not base.request_id \
            else f"{base.request_id}#{i}"
        out.append(base.with_(usage=usages[i], model=models[i], request_id=rid, meta=meta,
                              other_tool_requests=base.other_tool_requests if i == home
                              else None))
    return out
