"""The result type of every token count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TokenCount"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenCount:
    """How many tokens a piece of content costs a model, and how sure we are.

    ``tokens`` is the whole count, framing included: for plain text it is the
    tokens of the text alone; for chat messages it adds the provider's per-message
    and reply-priming overhead; for tool definitions the per-tool and fixed
    tool-block overhead. ``framing_tokens`` is the part of ``tokens`` that is
    overhead (0 for plain text), so ``tokens - framing_tokens`` is the content.

    ``exact`` is True only when every content token came from the model's own
    tokenizer (tiktoken, or a Hugging Face ``tokenizer.json`` the user chose) and
    the framing follows a formula the provider documents for that model family.
    ``method`` names the tokenizer or estimator: ``"tiktoken:o200k_base"``,
    ``"hf:/path/tokenizer.json"``, ``"estimate:o200k*1.017 calibrated(n=2, err=1.3%)"``.
    ``note`` is one human line saying why a count is not exact (or ``""``).
    """

    tokens: int
    exact: bool
    method: str
    note: str = ""
    framing_tokens: int = 0

    def __post_init__(self) -> None:
        if self.tokens < 0 or self.framing_tokens < 0 or self.framing_tokens > self.tokens:
            raise ValueError(
                f"inconsistent TokenCount: tokens={self.tokens}, framing={self.framing_tokens}"
            )

    @property
    def content_tokens(self) -> int:
        """Tokens of the content itself, framing excluded."""
        return self.tokens - self.framing_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "content_tokens": self.content_tokens,
            "framing_tokens": self.framing_tokens,
            "exact": self.exact,
            "method": self.method,
            "note": self.note,
        }
