"""Provider prompt-caching facts shared by plan, pack and audit (one table, one place).

Sources: Anthropic "Prompt caching" docs, minimum cacheable prompt length table
(2026): 4096 for Opus 4.6 / 4.5 and Haiku 4.5; 2048 for Opus 4.7 and Haiku 3.5 / 3;
1024 for Sonnet 4.6 / 4.5 / 4, Opus 4.1 / 4, Sonnet 3.7 (and Opus 4.8, Sonnet 5);
512 for the 5.x Opus family. OpenAI: 1024 for every cached model, cached in
128-token increments. Gemini implicit caching: 2048 for 2.5 Flash / Pro, 4096 for
3.x. Third-party copies of these tables disagree in places (Sonnet 4.6 is quoted
as 2048 by one gateway); every consumer lets the user override the minimum.
"""

from __future__ import annotations

__all__ = [
    "ANTHROPIC_LOOKBACK_BLOCKS",
    "OPENAI_CACHE_STEP",
    "TTL_SECONDS",
    "min_cacheable_tokens",
    "provider_family",
]

#: Cache lifetimes by TTL name, in seconds (refreshed on every hit).
TTL_SECONDS: dict[str, float] = {"5m": 300.0, "1h": 3600.0}

#: OpenAI caches the prompt prefix in steps of this many tokens past the minimum.
OPENAI_CACHE_STEP = 128

#: Anthropic looks for a cached prefix at most this many blocks before a breakpoint.
ANTHROPIC_LOOKBACK_BLOCKS = 20

# (provider family, model-name fragment, minimum cacheable prompt tokens); first match
# wins, so specific fragments come before the family default.
_MIN_CACHEABLE: tuple[tuple[str, str, int], ...] = (
    ("anthropic", "opus-4-6", 4096),
    ("anthropic", "opus-4-5", 4096),
    ("anthropic", "haiku-4-5", 4096),
    ("anthropic", "mythos-preview", 4096),
    ("anthropic", "opus-4-7", 2048),
    ("anthropic", "haiku-3", 2048),
    ("anthropic", "3-5-haiku", 2048),
    ("anthropic", "3-haiku", 2048),
    ("anthropic", "opus-5", 512),
    ("anthropic", "", 1024),
    ("openai", "", 1024),
    ("google", "gemini-2-5", 2048),
    ("google", "gemini-3", 4096),
    ("google", "", 4096),
)


def provider_family(provider: str) -> str:
    """Map provider ids (bedrock, azure, vertex...) to the caching family they follow."""
    p = provider.lower()
    if p in ("anthropic", "bedrock", "aws", "vertex-anthropic") or p.startswith("anthropic"):
        return "anthropic"
    if p in ("openai", "azure", "azure-openai"):
        return "openai"
    if p in ("google", "gemini", "vertex", "google-vertex", "google-gla"):
        return "google"
    return p


def min_cacheable_tokens(provider: str, model: str | None) -> int:
    """The provider's minimum cacheable prefix for ``model`` (0 when the provider is unknown).

    Model names are matched with dots read as dashes (``claude-opus-4.5`` = ``-4-5``).
    """
    fam = provider_family(provider)
    name = (model or "").lower().replace(".", "-")
    for p, frag, n in _MIN_CACHEABLE:
        if p == fam and frag in name:
            return n
    return 0
