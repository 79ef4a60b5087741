"""Which provider an OpenAI-SDK-compatible client is really talking to.

The ``openai`` SDK is used against many providers (DeepSeek, Groq, Mistral, xAI,
OpenRouter, Azure, Gemini's OpenAI endpoint...). Pricing needs the real one, so:

1. ``track(client, provider=...)`` wins;
2. else the client's ``base_url`` is matched against genai-prices' provider
   ``api_pattern`` regexes (``https://api.deepseek.com`` -> ``deepseek``...);
3. else (a local proxy, an unknown host) the provider is resolved per call from the
   request's model with genai-prices' model matchers (``claude-*`` -> ``anthropic``,
   ``gemini-*`` -> ``google``...), falling back to ``openai`` when nothing matches.
"""

from __future__ import annotations

import functools

__all__ = ["provider_for_model", "provider_for_url"]


@functools.lru_cache(maxsize=256)
def provider_for_url(url: str) -> str | None:
    """genai-prices' provider id whose ``api_pattern`` matches ``url``, or ``None``."""
    from genai_prices import data_snapshot  # lazy: the catalog is large

    try:
        return str(data_snapshot.get_snapshot().find_provider(None, None, url.rstrip("/")).id)
    except LookupError:
        return None


@functools.lru_cache(maxsize=1024)
def provider_for_model(model: str, default: str = "openai") -> str:
    """genai-prices' provider id whose model matcher accepts ``model``, else ``default``."""
    if not model:
        return default
    from genai_prices import data_snapshot

    try:
        return str(data_snapshot.get_snapshot().find_provider(model, None, None).id)
    except LookupError:
        return default
