"""Which provider a model belongs to, and which tiktoken encoding (if any) it uses.

Pure string logic: tiktoken's own table is consulted (it is plain Python, no
download) and a prefix table covers names tiktoken does not know yet.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["encoding_for_model", "provider_for_model", "split_model"]

#: Provider ids ctxbudget knows, and the aliases that map onto them.
_PROVIDER_ALIASES: dict[str, str] = {
    "openai": "openai",
    "azure": "openai",
    "azure_openai": "openai",
    "anthropic": "anthropic",
    "bedrock": "anthropic",  # framing follows the model family; see provider_for_model
    "vertex_ai": "google",
    "vertex": "google",
    "google": "google",
    "gemini": "google",
    "google-gla": "google",
    "google-vertex": "google",
}

#: Checked in order: longer / more specific prefixes first.
_O200K_PREFIXES = (
    "gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "o1", "o3", "o4",
    "ft:gpt-4o", "codex-", "computer-use",
)
_CL100K_PREFIXES = (
    "gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002",
    "ft:gpt-4", "ft:gpt-3.5", "davinci-002", "babbage-002",
)


def split_model(model: str) -> tuple[str | None, str]:
    """``"openai/gpt-4o"`` -> ``("openai", "gpt-4o")``; a bare name -> ``(None, name)``."""
    head, sep, tail = model.partition("/")
    if sep and head.lower() in _PROVIDER_ALIASES and tail:
        return _PROVIDER_ALIASES[head.lower()], tail
    return None, model


@lru_cache(maxsize=1024)
def provider_for_model(model: str, provider: str | None = None) -> str:
    """The framing family of ``model``: ``openai``, ``anthropic``, ``google`` or ``generic``.

    An explicit ``provider`` wins when it names a known family; Bedrock and Vertex
    host several families, so for them the model name decides.
    """
    prefixed, name = split_model(model)
    lower = name.lower()
    if "claude" in lower:
        by_name = "anthropic"
    elif lower.startswith(("gemini", "gemma", "models/gemini")):
        by_name = "google"
    elif _o200k_prefix(lower) or _cl100k_prefix(lower) or lower.startswith(
        ("text-embedding", "davinci", "babbage", "gpt-", "ft:")
    ):
        by_name = "openai"
    else:
        by_name = "generic"
    if provider is not None:
        p = _PROVIDER_ALIASES.get(provider.lower())
        if p is not None and provider.lower() not in ("bedrock", "vertex_ai", "vertex"):
            return p
    if prefixed is not None and by_name == "generic":
        return prefixed
    return by_name


def _o200k_prefix(lower: str) -> bool:
    for p in _O200K_PREFIXES:
        if lower.startswith(p):
            rest = lower[len(p):]
            # "o1", "o3-mini", "o4-mini-2025..." but not "o1xyz"
            if p[0] == "o" and p[1].isdigit() and rest and rest[0] != "-":
                continue
            return True
    return False


def _cl100k_prefix(lower: str) -> bool:
    return lower.startswith(_CL100K_PREFIXES)


@lru_cache(maxsize=1024)
def encoding_for_model(model: str) -> str | None:
    """The tiktoken encoding name for an OpenAI model, or ``None`` when it has none.

    Uses ``tiktoken.encoding_name_for_model`` when tiktoken knows the model, then
    a prefix table (gpt-4o, gpt-4.1, gpt-5*, o1/o3/o4 -> ``o200k_base``; gpt-4,
    gpt-3.5-turbo, text-embedding-3 -> ``cl100k_base``). Loads no encoding file.
    """
    _, name = split_model(model)
    lower = name.lower()
    try:
        from tiktoken.model import encoding_name_for_model

        return encoding_name_for_model(lower)
    except (KeyError, ImportError):
        pass
    if _o200k_prefix(lower):
        return "o200k_base"
    if _cl100k_prefix(lower):
        return "cl100k_base"
    return None
