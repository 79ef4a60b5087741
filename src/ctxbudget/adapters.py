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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .usage import Usage

__all__ = [
    "PROVIDERS",
    "AdaptedUsage",
    "adapt_usage",
    "from_anthropic",
    "from_bedrock",
    "from_deepseek",
    "from_gemini",
    "from_openai",
    "from_openai_chat",
    "from_openai_responses",
    "from_otel",
]


@dataclass(frozen=True, slots=True)
class AdaptedUsage:
    """A converted usage plus its provenance."""

    usage: Usage
    input_inclusive: bool
    """True when the source's input count included cache tokens."""
    model: str | None = None
    request_id: str | None = None
    service_tier: str | None = None


def _as_mapping(obj: Any) -> Mapping[str, Any]:
    """Accept dicts and SDK (pydantic) objects alike."""
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


def from_anthropic(raw: Any) -> AdaptedUsage:
    """Anthropic Messages ``usage`` (or a whole response / ``message_delta`` body).

    ``input_tokens`` excludes cache tokens. ``cache_creation.ephemeral_5m_input_tokens``
    and ``ephemeral_1h_input_tokens`` split the writes by TTL; when only
    ``cache_creation_input_tokens`` is present, the writes are 5-minute writes.
    ``output_tokens`` includes ``output_tokens_details.thinking_tokens`` (recorded as
    reasoning).
    """
    u, body = _unwrap(raw, "usage")
    inp = _int(u, "input_tokens", "usage.")
    out = _int(u, "output_tokens", "usage.")
    read = _int(u, "cache_read_input_tokens", "usage.")
    total_write = _int(u, "cache_creation_input_tokens", "usage.")
    cc = u.get("cache_creation")
    if cc:
        ccm = _as_mapping(cc)
        w5 = _int(ccm, "ephemeral_5m_input_tokens", "usage.cache_creation.")
        w1 = _int(ccm, "ephemeral_1h_input_tokens", "usage.cache_creation.")
        if "cache_creation_input_tokens" in u and u["cache_creation_input_tokens"] is not None \
                and w5 + w1 != total_write:
            raise UsageError(
                f"usage.cache_creation 5m+1h ({w5}+{w1}) != cache_creation_input_tokens "
                f"({total_write})",
                field="usage.cache_creation",
            )
    else:
        w5, w1 = total_write, 0
    thinking = _int(_as_mapping(u.get("output_tokens_details")), "thinking_tokens",
                    "usage.output_tokens_details.")
    if thinking > out:
        raise UsageError(
            f"usage.output_tokens_details.thinking_tokens ({thinking}) exceeds "
            f"usage.output_tokens ({out})",
            field="usage.output_tokens_details.thinking_tokens",
        )
    return AdaptedUsage(
        Usage(
            input_tokens=inp,
            cache_read_tokens=read,
            cache_write_5m_tokens=w5,
            cache_write_1h_tokens=w1,
            output_tokens=out,
            reasoning_tokens=thinking,
        ),
        input_inclusive=False,
        model=body.get("model"),
        request_id=body.get("id"),
        service_tier=u.get("service_tier"),
    )


def from_openai_chat(raw: Any) -> AdaptedUsage:
    """OpenAI Chat Completions ``usage``: ``prompt_tokens`` includes
    ``prompt_tokens_details.cached_tokens`` (and ``cache_write_tokens`` where present);
    ``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``."""
    u, body = _unwrap(raw, "usage")
    prompt = _int(u, "prompt_tokens", "usage.")
    out = _int(u, "completion_tokens", "usage.")
    ptd = _as_mapping(u.get("prompt_tokens_details"))
    ctd = _as_mapping(u.get("completion_tokens_details"))
    cached = _int(ptd, "cached_tokens", "usage.prompt_tokens_details.")
    write = _int(ptd, "cache_write_tokens", "usage.prompt_tokens_details.")
    reasoning = _int(ctd, "reasoning_tokens", "usage.completion_tokens_details.")
    uncached = _sub(prompt, cached, "usage.prompt_tokens",
                    "usage.prompt_tokens_details.cached_tokens")
    uncached = _sub(uncached, write, "usage.prompt_tokens - cached_tokens",
                    "usage.prompt_tokens_details.cache_write_tokens")
    if reasoning > out:
        raise UsageError(
            f"usage.completion_tokens_details.reasoning_tokens ({reasoning}) exceeds "
            f"usage.completion_tokens ({out})",
            field="usage.completion_tokens_details.reasoning_tokens",
        )
    return AdaptedUsage(
        Usage(input_tokens=uncached, cache_read_tokens=cached, cache_write_5m_tokens=write,
              output_tokens=out, reasoning_tokens=reasoning),
        input_inclusive=True,
        model=body.get("model"),
        request_id=body.get("id"),
        service_tier=body.get("service_tier"),
    )


def from_openai_responses(raw: Any) -> AdaptedUsage:
    """OpenAI Responses ``usage``: ``input_tokens`` includes
    ``input_tokens_details.cached_tokens`` (and ``cache_write_tokens``);
    ``output_tokens`` includes ``output_tokens_details.reasoning_tokens``."""
    u, body = _unwrap(raw, "usage")
    prompt = _int(u, "input_tokens", "usage.")
    out = _int(u, "output_tokens", "usage.")
    itd = _as_mapping(u.get("input_tokens_details"))
    otd = _as_mapping(u.get("output_tokens_details"))
    cached = _int(itd, "cached_tokens", "usage.input_tokens_details.")
    write = _int(itd, "cache_write_tokens", "usage.input_tokens_details.")
    reasoning = _int(otd, "reasoning_tokens", "usage.output_tokens_details.")
    uncached = _sub(prompt, cached, "usage.input_tokens",
                    "usage.input_tokens_details.cached_tokens")
    uncached = _sub(uncached, write, "usage.input_tokens - cached_tokens",
                    "usage.input_tokens_details.cache_write_tokens")
    if reasoning > out:
        raise UsageError(
            f"usage.output_tokens_details.reasoning_tokens ({reasoning}) exceeds "
            f"usage.output_tokens ({out})",
            field="usage.output_tokens_details.reasoning_tokens",
        )
    return AdaptedUsage(
        Usage(input_tokens=uncached, cache_read_tokens=cached, cache_write_5m_tokens=write,
              output_tokens=out, reasoning_tokens=reasoning),
        input_inclusive=True,
        model=body.get("model"),
        request_id=body.get("id"),
        service_tier=body.get("service_tier"),
    )


def from_openai(raw: Any) -> AdaptedUsage:
    """OpenAI usage of either API, told apart by its field names."""
    u, _ = _unwrap(raw, "usage")
    if "prompt_tokens" in u or "completion_tokens" in u:
        return from_openai_chat(raw)
    if "input_tokens" in u or "output_tokens" in u:
        return from_openai_responses(raw)
    raise UsageError("not an OpenAI usage object: no prompt_tokens / input_tokens field",
                     field="usage")


def from_gemini(raw: Any) -> AdaptedUsage:
    """Gemini ``usageMetadata``: ``promptTokenCount`` includes ``cachedContentTokenCount``;
    ``toolUsePromptTokenCount`` is extra input; ``thoughtsTokenCount`` is billed as output
    (added to ``candidatesTokenCount``) and recorded as reasoning."""
    u, body = _unwrap(raw, "usageMetadata")
    prompt = _int(u, "promptTokenCount", "usageMetadata.")
    cached = _int(u, "cachedContentTokenCount", "usageMetadata.")
    tool = _int(u, "toolUsePromptTokenCount", "usageMetadata.")
    cand = _int(u, "candidatesTokenCount", "usageMetadata.")
    thoughts = _int(u, "thoughtsTokenCount", "usageMetadata.")
    uncached = _sub(prompt, cached, "usageMetadata.promptTokenCount",
                    "usageMetadata.cachedContentTokenCount")
    return AdaptedUsage(
        Usage(input_tokens=uncached + tool, cache_read_tokens=cached,
              output_tokens=cand + thoughts, reasoning_tokens=thoughts),
        input_inclusive=True,
        model=body.get("modelVersion"),
        request_id=body.get("responseId"),
        service_tier=u.get("serviceTier") if isinstance(u.get("serviceTier"), str) else None,
    )


def from_bedrock(raw: Any) -> AdaptedUsage:
    """Bedrock Converse ``usage``: ``inputTokens`` excludes ``cacheReadInputTokens`` and
    ``cacheWriteInputTokens`` (``totalTokens`` = all three + output)."""
    u, body = _unwrap(raw, "usage")
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
    )


def from_deepseek(raw: Any) -> AdaptedUsage:
    """DeepSeek ``usage``: ``prompt_tokens`` = ``prompt_cache_hit_tokens`` +
    ``prompt_cache_miss_tokens``; reasoning in ``completion_tokens_details``."""
    u, body = _unwrap(raw, "usage")
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
    )


def from_otel(raw: Any) -> AdaptedUsage:
    """OpenTelemetry GenAI span attributes (a flat mapping, or ``{"attributes": ...}``).

    ``gen_ai.usage.input_tokens`` is inclusive of ``gen_ai.usage.cache_read.input_tokens``
    and ``gen_ai.usage.cache_creation.input_tokens``; reasoning is
    ``gen_ai.usage.reasoning.output_tokens`` (part of output)."""
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
    a = _as_mapping(attrs)
    prompt = _int(a, "gen_ai.usage.input_tokens", "")
    out = _int(a, "gen_ai.usage.output_tokens", "")
    read = _int(a, "gen_ai.usage.cache_read.input_tokens", "")
    write = _int(a, "gen_ai.usage.cache_creation.input_tokens", "")
    reasoning = _int(a, "gen_ai.usage.reasoning.output_tokens", "")
    uncached = _sub(prompt, read, "gen_ai.usage.input_tokens",
                    "gen_ai.usage.cache_read.input_tokens")
    uncached = _sub(uncached, write, "gen_ai.usage.input_tokens - cache_read",
                    "gen_ai.usage.cache_creation.input_tokens")
    if reasoning > out:
        raise UsageError("gen_ai.usage.reasoning.output_tokens exceeds gen_ai.usage.output_tokens",
                         field="gen_ai.usage.reasoning.output_tokens")
    model = a.get("gen_ai.response.model") or a.get("gen_ai.request.model")
    return AdaptedUsage(
        Usage(input_tokens=uncached, cache_read_tokens=read, cache_write_5m_tokens=write,
              output_tokens=out, reasoning_tokens=reasoning),
        input_inclusive=True,
        model=model if isinstance(model, str) else None,
        request_id=a.get("gen_ai.response.id") if isinstance(a.get("gen_ai.response.id"), str)
        else None,
    )


PROVIDERS: dict[str, Callable[[Any], AdaptedUsage]] = {
    "anthropic": from_anthropic,
    "openai": from_openai,
    "openai-chat": from_openai_chat,
    "openai-responses": from_openai_responses,
    "gemini": from_gemini,
    "bedrock": from_bedrock,
    "deepseek": from_deepseek,
    "otel": from_otel,
}


def adapt_usage(provider: str, raw: Any) -> AdaptedUsage:
    """Convert a raw usage object (or whole response body) of ``provider``."""
    try:
        fn = PROVIDERS[provider]
    except KeyError:
        raise UsageError(
            f"unknown usage format {provider!r}; expected one of {', '.join(PROVIDERS)}",
            field="provider",
        ) from None
    return fn(raw)
