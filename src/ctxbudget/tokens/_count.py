"""``count_tokens``, ``count_many``, ``count_tools``: the public counting functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputFormatError
from ._calibration import Calibration
from ._counters import Counter, cached_units, get_counter, units_many, units_memo
from ._framing import (
    Layout,
    canonical_json,
    classify,
    framing_for,
    layout_messages,
    layout_request,
    layout_tools,
    tool_name,
    tool_text,
)
from ._memo import LRUMemo, text_digest
from ._result import TokenCount

__all__ = ["clear_cache", "count_many", "count_tokens", "count_tools"]

#: Whole-structure memo for messages / tools / request bodies:
#: (counter key, calibration, family, model, kind, digest of canonical JSON) -> TokenCount.
_struct_memo: LRUMemo[TokenCount] = LRUMemo(maxsize=16_384)


def clear_cache() -> None:
    """Forget every memoized count (text units and whole structures)."""
    units_memo.clear()
    _struct_memo.clear()


def count_tokens(
    content: str | Sequence[Mapping[str, Any]] | Mapping[str, Any],
    model: str,
    *,
    provider: str | None = None,
    tokenizer: str | Path | None = None,
    calibration: Calibration | None = None,
) -> TokenCount:
    """Count the tokens ``content`` costs ``model``.

    ``content`` is a string; a list of chat messages (OpenAI ``{"role", "content"}``,
    Anthropic content blocks, Gemini ``{"role", "parts"}``); a list of tool
    definitions (OpenAI ``{"type": "function", ...}`` or Anthropic
    ``{"name", "input_schema"}``); or a whole request body (``system`` /
    ``messages`` / ``tools``). Messages and tools include the provider's framing
    overhead (see :class:`TokenCount.framing_tokens`).

    Exact with tiktoken for OpenAI models, exact with ``tokenizer=`` a Hugging
    Face tokenizer.json; otherwise (Claude, Gemini, unknown models, or offline
    without the tiktoken encoding file) a calibrated estimate with
    ``exact=False`` — pass your own ``calibration`` (see :class:`Calibration`).
    Never raises for a missing network; raises ``InputFormatError`` for content
    it cannot read and ``TokenizerError`` for a tokenizer file it cannot load.
    Repeated content is served from a content-hash memo.
    """
    counter, family = get_counter(model, provider, tokenizer=tokenizer, calibration=calibration)
    if isinstance(content, str):
        return counter.text_count(content)
    kind = classify(content)
    try:
        digest = text_digest(canonical_json(content))
    except (TypeError, ValueError):
        digest = None
    key = (counter.key, getattr(counter, "calibration", None), family, model, kind, digest)
    if digest is not None:
        hit = _struct_memo.get(key)
        if hit is not None:
            return hit
    framing = framing_for(family, model)
    if kind == "request":
        assert isinstance(content, Mapping)
        lay = layout_request(content, framing, family)
    elif kind == "tools":
        tools = [content] if isinstance(content, Mapping) else list(content)
        lay = layout_tools(tools, framing)
    else:
        msgs = [content] if isinstance(content, Mapping) else list(content)
        lay = layout_messages(msgs, framing, family)
    result = _finish(counter, lay)
    if digest is not None:
        _struct_memo.put(key, result)
    return result


def _finish(counter: Counter, lay: Layout) -> TokenCount:
    # rounded per text, so a structure's count is the sum of its parts' counts
    content_tokens = lay.extra + sum(
        counter.tokens(cached_units(counter, t), with_intercept=False) for t in lay.texts
    )
    exact = counter.exact and lay.exact
    notes = [n for n in (counter.note, *lay.notes) if n]
    return TokenCount(tokens=content_tokens + lay.framing, exact=exact, method=counter.method,
                      note="; ".join(notes), framing_tokens=lay.framing)


def count_tools(
    tools: Sequence[Mapping[str, Any]],
    model: str,
    *,
    provider: str | None = None,
    tokenizer: str | Path | None = None,
    calibration: Calibration | None = None,
) -> list[tuple[str, TokenCount]]:
    """Per-tool counts, in order: ``(tool name, TokenCount)``.

    Each count is the tool's canonical JSON plus the provider's per-tool
    overhead. The fixed tool-block overhead (e.g. Anthropic's 346-token tool-use
    system prompt) is paid once and is *not* in these figures; ``count_tokens``
    on the whole list includes it, so it equals the sum here plus that overhead.
    """
    counter, family = get_counter(model, provider, tokenizer=tokenizer, calibration=calibration)
    framing = framing_for(family, model)
    out: list[tuple[str, TokenCount]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise InputFormatError(f"tools[{i}]: expected a dict")
        units = cached_units(counter, tool_text(tool))
        tokens = counter.tokens(units, with_intercept=False) + framing.per_tool
        note = "; ".join(n for n in (counter.note, "tool schema framing is an estimate") if n)
        out.append((tool_name(tool), TokenCount(tokens=tokens, exact=False, method=counter.method,
                                                note=note, framing_tokens=framing.per_tool)))
    return out


def count_many(
    texts: Sequence[str],
    model: str,
    *,
    threads: int = 2,
    provider: str | None = None,
    tokenizer: str | Path | None = None,
    calibration: Calibration | None = None,
) -> list[TokenCount]:
    """Count many texts, in order; ``threads`` workers encode in parallel.

    Texts are counted in chunks of ~256k characters, one tokenizer call per
    chunk (see :class:`TiktokenCounter`). tiktoken does not encode faster on two
    threads than on one, so a tiktoken batch of at least ``FORK_MIN_CHARS``
    (4M characters) is split across ``threads`` forked processes when the process
    has no other thread running (measured 1.73x one thread with 2 workers on 32 MB);
    such bulk batches bypass the memo. Smaller batches use threads and the memo.
    Counts equal ``count_tokens`` on each text either way.
    """
    counter, _ = get_counter(model, provider, tokenizer=tokenizer, calibration=calibration)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputFormatError(f"texts[{i}]: expected a str, got {type(t).__name__}")
    result = counter.result
    return [result(u) for u in units_many(counter, texts, max(1, threads))]
