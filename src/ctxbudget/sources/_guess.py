"""Small shared helpers: provider ids, JSON-in-a-cell, integer cells."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import InputFormatError
from ._base import short_repr

_BY_PREFIX = (
    ("claude", "anthropic"), ("gpt", "openai"), ("o1", "openai"), ("o3", "openai"),
    ("o4", "openai"), ("chatgpt", "openai"), ("text-embedding", "openai"),
    ("gemini", "google"), ("mistral", "mistral"), ("codestral", "mistral"),
    ("deepseek", "deepseek"), ("grok", "x-ai"), ("command", "cohere"),
)

_ALIASES = {
    "vertex_ai": "google", "vertex_ai_beta": "google", "gemini": "google", "bedrock": "aws",
    "bedrock_converse": "aws", "azure_ai": "azure", "xai": "x-ai", "mistralai": "mistral",
}


def provider_for(model: str, declared: Any = None) -> str:
    """A genai-prices provider id: the declared one (normalised), else guessed from the
    model name, else ``unknown`` (the PriceBook then reports the call as unpriced)."""
    if isinstance(declared, str) and declared:
        return _ALIASES.get(declared.lower(), declared.lower())
    name = model.rsplit("/", 1)[-1].lower()
    for prefix, provider in _BY_PREFIX:
        if name.startswith(prefix):
            return provider
    return "unknown"


def json_cell(value: Any, what: str) -> Any:
    """A JSON object given as an object or as a JSON string (CSV exports)."""
    if value is None or isinstance(value, Mapping | list):
        return value
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputFormatError(f"{what}: not valid JSON ({exc.msg})") from None
        except (ValueError, RecursionError):  # an int past the int-str limit, deep nesting
            raise InputFormatError(f"{what}: not valid JSON (a number too long or "
                                   "nesting too deep)") from None
    raise InputFormatError(f"{what}: expected a JSON object, got {short_repr(value)}")


def int_cell(value: Any, what: str) -> int:
    """A non-negative integer from a number or a numeric string (``None`` / empty = 0)."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise InputFormatError(f"{what}: {short_repr(value)} is not a token count")
    if isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            raise InputFormatError(f"{what}: {short_repr(value)} is not a token count") from None
        if not f.is_integer():
            raise InputFormatError(f"{what}: {short_repr(value)} is not a whole number")
        n = int(f)
    else:
        raise InputFormatError(f"{what}: {short_repr(value)} is not a token count")
    if n < 0:
        raise InputFormatError(f"{what}: negative ({n})")
    return n

