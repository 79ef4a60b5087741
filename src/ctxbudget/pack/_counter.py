"""Token counters for the packer: any ``Callable[[str], int]``, memoized per text.

The packer counts every text it may place (a message, a tool schema, a chunk) once and
keeps the count in a :class:`MemoCounter` keyed by the text itself (Python caches a
string's hash, so a repeated lookup costs a dict probe). The same counter instance is
what the window check uses, so the "never exceeds" guarantee is exact for that counter.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Counter", "MemoCounter", "default_counter"]

Counter = Callable[[str], int]


class MemoCounter:
    """Wraps a counter with a per-text memo (bounded: cleared past ``max_entries``)."""

    __slots__ = ("_fn", "_memo", "calls", "max_entries")

    def __init__(self, fn: Counter, max_entries: int = 200_000) -> None:
        self._fn = fn
        self._memo: dict[str, int] = {}
        self.max_entries = max_entries
        self.calls = 0
        """How many times the wrapped counter actually ran (memo misses)."""

    def __call__(self, text: str) -> int:
        n = self._memo.get(text)
        if n is None:
            if len(self._memo) >= self.max_entries:
                self._memo.clear()
            n = self._fn(text)
            self.calls += 1
            self._memo[text] = n
        return n


def default_counter(model: str | None = None, provider: str | None = None) -> Counter:
    """``ctxbudget.tokens.count_tokens`` for ``model`` (exact for OpenAI models, a
    calibrated estimate for Claude: give the config a ``safety_margin``); without a
    model, the o200k_base encoding (``gpt-4o``)."""
    from ..tokens import count_tokens

    name = model or "gpt-4o"

    def count(text: str) -> int:
        return count_tokens(text, name, provider=provider).tokens

    return count
