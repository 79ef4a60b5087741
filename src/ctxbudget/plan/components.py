"""Resolve the spec's components to token counts, and lay out each call's prompt.

Fixed components given as ``files`` or ``tools_file`` are counted with
:func:`ctxbudget.tokens.count_tokens` for the spec's first model (a tools file is
counted per tool with the per-tool counter, so tool framing is included).
"""

from __future__ import annotations

import glob
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spec import ALLOCATION_BUCKETS, BudgetSpec, LoadedSpec

__all__ = ["ALLOCATION_OF", "FixedTokens", "history_growth", "resolve_fixed"]

#: Allocation bucket of each variable component (fixed components are ``system_tools``).
ALLOCATION_OF: Mapping[str, str] = {
    "history": "history",
    "retrieved": "retrieved",
    "tool_outputs": "tool_outputs",
    "user_message": "user_output",
    "output": "user_output",
}
assert set(ALLOCATION_OF.values()) | {"system_tools"} == set(ALLOCATION_BUCKETS)


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedTokens:
    """A fixed component's resolved size."""

    name: str
    tokens: int
    """Tokens sent once per call (count x tokens, or the counted files / tools)."""
    source: str
    """``tokens``, ``files (N)`` or ``tools_file (N tools)``."""
    exact: bool
    """False when the counter only estimates this model's tokenizer."""
    parts: tuple[tuple[str, int], ...] = ()
    """Per-tool counts for a ``tools_file`` (without the once-per-request tool-block
    overhead, which ``tokens`` includes)."""


def _count(content: Any, model: str, provider: str | None) -> tuple[int, bool]:
    from ..tokens import count_tokens  # the token-counting layer (lazy: tokenizers load)

    r = count_tokens(content, model, provider=provider)
    return int(r.tokens), bool(r.exact)


def resolve_fixed(loaded: LoadedSpec, model: str, provider: str | None) -> list[FixedTokens]:
    """Token counts of the fixed components, in spec order. Missing files are spec errors."""
    out: list[FixedTokens] = []
    for name, comp in loaded.spec.fixed.items():
        if comp.tokens is not None:
            out.append(FixedTokens(name=name, tokens=comp.tokens * comp.count,
                                   source="tokens" if comp.count == 1
                                   else f"{comp.count} x {comp.tokens}", exact=True))
        elif comp.files is not None:
            total, exact, n = 0, True, 0
            for i, pattern in enumerate(comp.files):
                full = str(loaded.folder / pattern)
                matches = sorted(glob.glob(full, recursive=True))
                files = [Path(m) for m in matches if Path(m).is_file()]
                if not files:
                    raise loaded.error(("fixed", name, "files", i),
                                       f"no file matches {pattern!r} (relative to "
                                       f"{loaded.folder})")
                for f in files:
                    try:
                        text = f.read_text(encoding="utf-8")
                    except (OSError, UnicodeDecodeError) as exc:
                        raise loaded.error(("fixed", name, "files", i),
                                           f"cannot read {f}: {exc}") from None
                    t, e = _count(text, model, provider)
                    total += t
                    exact = exact and e
                    n += 1
            out.append(FixedTokens(name=name, tokens=total, source=f"files ({n})", exact=exact))
        else:
            assert comp.tools_file is not None
            f = loaded.folder / comp.tools_file
            if not f.is_file():
                raise loaded.error(("fixed", name, "tools_file"), f"file not found: {f}")
            try:
                doc = json.loads(f.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise loaded.error(("fixed", name, "tools_file"),
                                   f"{f}:{exc.lineno}: not valid JSON ({exc.msg})") from None
            except (OSError, ValueError, RecursionError) as exc:  # not UTF-8, int limit, nesting
                msg = str(exc).splitlines()[0] if str(exc) else "nested too deeply"
                raise loaded.error(("fixed", name, "tools_file"),
                                   f"{f}: cannot read ({msg[:200]})") from None
            tools = doc.get("tools") if isinstance(doc, dict) else doc
            if not isinstance(tools, list):
                raise loaded.error(("fixed", name, "tools_file"),
                                   f"{f}: expected a JSON list of tools (or {{\"tools\": [...]}})")
            if not all(isinstance(t, dict) for t in tools):
                raise loaded.error(("fixed", name, "tools_file"),
                                   f"{f}: every tool must be a JSON object")
            from ..tokens import count_tools

            total, exact = _count(tools, model, provider)
            parts = tuple((n, c.tokens) for n, c in count_tools(tools, model, provider=provider))
            out.append(FixedTokens(name=name, tokens=total,
                                   source=f"tools_file ({len(tools)} tools)", exact=exact,
                                   parts=parts))
    return out


def history_growth(spec: BudgetSpec, turns: int) -> list[int]:
    """Tokens each completed turn adds to the history: ``growth[k-1]`` for turn k.

    With ``reaches: R, at_turn: T`` the history at turn t is round(R·(t-1)/(T-1)) and
    the growth is the difference of consecutive values (so it adds up exactly).
    """
    h = spec.variable.history
    v = spec.variable
    k_calls = spec.session.calls_per_turn
    if h.tokens_per_turn is not None:
        return [h.tokens_per_turn] * turns
    if h.reaches is not None and h.at_turn is not None:
        r, t_ = h.reaches, h.at_turn

        def at(t: int) -> int:
            # exact half-up rounding with integers: floor((2·R·(t-1) + (T-1)) / (2·(T-1)))
            return (2 * r * (t - 1) + (t_ - 1)) // (2 * (t_ - 1))

        return [at(k + 1) - at(k) for k in range(1, turns + 1)]
    if h.accumulate is not None:
        per = {
            "user_message": v.user_message.tokens,
            "output": v.output.tokens * k_calls,
            "tool_outputs": v.tool_outputs.tokens * k_calls,
            "retrieved": v.retrieved.total,
        }
        return [sum(per[c] for c in h.accumulate)] * turns
    return [0] * turns
