"""Retrieval policy: relevance floor, top-k, per-chunk sentence trim, budget fit, and
best-at-the-edges ordering (models attend least to the middle of a long context)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._config import RetrievalPolicy
from ._counter import Counter
from ._ledger import Decision
from ._model import Chunk
from ._trim import sentence_trim

__all__ = ["SelectedChunk", "edge_order", "select_chunks"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectedChunk:
    chunk: Chunk
    text: str
    """The rendered text (template applied, chunk possibly trimmed)."""
    tokens: int
    rank: int
    """0 = most relevant."""


def edge_order(items: Sequence[SelectedChunk]) -> list[SelectedChunk]:
    """Ranks 0,1,2,3,4 -> 0,2,4,3,1: the best first, the second best last."""
    ranked = sorted(items, key=lambda s: s.rank)
    front = ranked[0::2]
    back = ranked[1::2]
    return front + back[::-1]


def rank_key(c: Chunk) -> tuple[float, str]:
    return (-c.score, c.id)


def select_chunks(chunks: Sequence[Chunk], policy: RetrievalPolicy, budget: int,
                  count: Counter, trim_memo: dict[tuple[str, int], tuple[str, bool]],
                  decisions: list[Decision]) -> list[SelectedChunk]:
    """The chunks to send, in ranked order (apply :func:`edge_order` to render)."""
    ranked = sorted(chunks, key=rank_key)
    out: list[SelectedChunk] = []
    used = 0
    for rank, c in enumerate(ranked):
        before = count(c.text)
        if policy.min_relevance is not None and c.score < policy.min_relevance:
            decisions.append(Decision(component="retrieved", action="dropped", item=c.id,
                                      tokens_before=before, tokens_after=0,
                                      reason=f"relevance {c.score:g} < min_relevance "
                                             f"{policy.min_relevance:g}"))
            continue
        if policy.top_k is not None and len(out) >= policy.top_k:
            decisions.append(Decision(component="retrieved", action="dropped", item=c.id,
                                      tokens_before=before, tokens_after=0,
                                      reason=f"beyond top_k={policy.top_k}"))
            continue
        text = c.text
        if policy.max_chunk_tokens is not None and before > policy.max_chunk_tokens:
            key = (c.text, policy.max_chunk_tokens)
            hit = trim_memo.get(key)
            if hit is None:
                hit = trim_memo[key] = sentence_trim(c.text, policy.max_chunk_tokens, count)
            text, at_sentence = hit
            decisions.append(Decision(
                component="retrieved", action="trimmed", item=c.id, tokens_before=before,
                tokens_after=count(text),
                reason=f"longer than max_chunk_tokens={policy.max_chunk_tokens}; cut at a "
                       + ("sentence boundary" if at_sentence else "word (no sentence fits)")))
        rendered = policy.template.format(id=c.id, text=text, score=c.score)
        n = count(rendered)
        if used + n > budget:
            decisions.append(Decision(component="retrieved", action="dropped", item=c.id,
                                      tokens_before=before, tokens_after=0,
                                      reason=f"does not fit the retrieved budget ({used} of "
                                             f"{budget} used, needs {n})"))
            continue
        used += n
        out.append(SelectedChunk(chunk=c, text=rendered, tokens=n, rank=rank))
    return out
