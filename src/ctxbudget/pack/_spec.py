"""Thin coupling to the plan's budget spec: window, output reserve, allocation, caching.

Reads a ``ctxbudget.plan`` ``BudgetSpec`` (or a plain mapping with the same keys) by
attribute / key, so the packer does not depend on the plan's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import SpecError
from ._config import PRESETS, Budget, HistoryPolicy, PackerConfig

__all__ = ["config_from_spec"]

_PRIORITY = {"retrieved": 10, "tool_outputs": 20, "history": 30}


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _preset(name: str) -> Mapping[str, float]:
    if name in PRESETS:
        return PRESETS[name]
    try:  # the plan may define more presets
        from ..plan import presets as plan_presets

        found = getattr(plan_presets, "PRESETS", {}).get(name)
    except ImportError:
        found = None
    if found is None:
        raise SpecError(f"allocation.preset: unknown preset {name!r} "
                        f"(known: {', '.join(PRESETS)})")
    return {k: float(_get(found, k, v)) for k, v in dict(found).items()}


def config_from_spec(spec: Any, **overrides: Any) -> PackerConfig:
    """A :class:`PackerConfig` from a budget spec; ``overrides`` win (``window=...``)."""
    models = _get(spec, "models") or []
    first = models[0] if models else None
    model = first if isinstance(first, str) else _get(first, "model")
    provider = None if isinstance(first, str) else _get(first, "provider")
    window = _get(spec, "window")
    out_reserve = _get(spec, "output_reserve")
    if out_reserve is None:
        out_reserve = _get(_get(_get(spec, "variable"), "output"), "tokens")
    kw: dict[str, Any] = {"model": model}
    if provider in ("anthropic", "openai"):
        kw["provider"] = provider
    elif isinstance(model, str) and model.startswith(("gpt", "o1", "o3", "o4")):
        kw["provider"] = "openai"
    if window is not None:
        kw["window"] = int(window)
    if out_reserve:
        kw["output_reserve"] = int(out_reserve)
    alloc = _get(spec, "allocation")
    shares: dict[str, float] = {}
    if alloc is not None:
        preset = _get(alloc, "preset")
        if preset:
            shares.update(_preset(str(preset)))
        shares.update({str(k): float(v) for k, v in (_get(alloc, "targets") or {}).items()})
    if shares:
        kw["budgets"] = {k: Budget(share=v / 100.0, priority=_PRIORITY.get(k, 90))
                         for k, v in shares.items()}
    for pol in _get(spec, "history_policies") or []:
        sw = _get(pol, "sliding_window")
        if sw is None:
            continue
        turns = _get(sw, "turns")
        tokens = _get(sw, "tokens")
        if turns:
            kw["history"] = HistoryPolicy(mode="turns", max_turns=int(turns),
                                          keep_turns=max(1, round(int(turns) * 0.6)))
        elif tokens:
            budgets = dict(kw.get("budgets") or {})
            budgets["history"] = Budget(tokens=int(tokens), priority=30)
            kw["budgets"] = budgets
        break
    caching = _get(spec, "caching")
    if _get(caching, "min_cacheable_tokens") is not None:
        kw["min_cacheable_tokens"] = int(_get(caching, "min_cacheable_tokens"))
    if _get(caching, "ttl") in ("5m", "1h"):
        kw["cache_ttl"] = _get(caching, "ttl")
    kw.update({k: v for k, v in overrides.items() if v is not None})
    if "window" not in kw:
        raise SpecError("the spec has no window: set 'window' in the spec or pass --window")
    return PackerConfig(**kw)
