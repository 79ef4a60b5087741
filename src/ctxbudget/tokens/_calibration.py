"""Calibrated token estimates for models without a public tokenizer (Claude, Gemini).

An estimate is ``tokens ≈ slope * units + intercept`` where ``units`` is either
the o200k_base token count of the text (``basis="o200k"``: Claude tokens track
o200k tokens closely, so this is the better model) or its character count
(``basis="chars"``: the fallback when the o200k encoding is unavailable
offline). ``Calibration.fit`` finds slope and intercept by least squares from
pairs of (text, observed input tokens) taken from real responses' usage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ..errors import TokenizerError

__all__ = ["DEFAULT_CALIBRATIONS", "Basis", "Calibration", "default_calibration"]

Basis = Literal["o200k", "chars"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """A fitted (or default) linear estimator of a model family's token counts.

    ``slope`` is tokens per unit of ``basis``; ``intercept`` is tokens added once
    per counted request (the fixed framing the observed counts included).
    ``n`` is how many (text, observed tokens) pairs it was fitted on (0 for a
    built-in default). ``rmse`` is the root-mean-square residual in tokens and
    ``rel_error`` the mean of |residual| / observed over the fitting pairs
    (``None`` when not fitted or n < 2).
    """

    family: str
    basis: Basis
    slope: float
    intercept: float = 0.0
    n: int = 0
    rmse: float | None = None
    rel_error: float | None = None
    source: str = "default"

    def __post_init__(self) -> None:
        if self.basis not in ("o200k", "chars"):
            raise TokenizerError(
                f"calibration basis must be 'o200k' or 'chars', not {self.basis!r}"
            )
        if not (self.slope > 0 and math.isfinite(self.slope)) or not math.isfinite(self.intercept):
            raise TokenizerError(f"calibration slope must be a positive number, got {self.slope!r}")

    def estimate(self, units: int, *, with_intercept: bool = True) -> int:
        """Estimated tokens for ``units`` basis units (o200k tokens or characters)."""
        value = self.slope * units + (self.intercept if with_intercept else 0.0)
        return max(0, round(value))

    def describe(self) -> str:
        """The ``method`` string of counts made with this calibration."""
        if self.basis == "chars":
            core = f"chars/{1.0 / self.slope:.2f}"
        else:
            core = f"o200k*{self.slope:.3f}"
        if self.intercept:
            core += f"{self.intercept:+.0f}"
        if self.n:
            err = f", err={self.rel_error * 100:.1f}%" if self.rel_error is not None else ""
            return f"estimate:{core} calibrated(n={self.n}{err})"
        return f"estimate:{core} default"

    # -- fitting -----------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        pairs: Iterable[tuple[Any, int]],
        *,
        family: str = "custom",
        basis: Basis = "o200k",
        intercept: bool | None = None,
        source: str = "fit",
        units: Callable[[str], int] | None = None,
    ) -> Calibration:
        """Least-squares fit of ``observed ≈ slope * units(text) + intercept``.

        ``pairs`` are (content, observed input tokens from the provider's usage,
        cache reads and writes included). Content is the whole prompt as text,
        or — better — the request body / message list that was sent: then the
        ``family``'s framing estimate is subtracted from the observed count and
        only the texts are measured, so the slope is the tokenizer's alone.
        ``intercept`` defaults to True when there are at least 3 pairs, else the
        line goes through the origin. ``units`` overrides how a text is
        measured (default: o200k tokens or characters, per ``basis``).
        """
        measure = units or _default_units(basis)
        xs: list[float] = []
        ys: list[float] = []
        for i, (content, observed) in enumerate(pairs):
            if isinstance(observed, bool) or not isinstance(observed, int) or observed < 0:
                raise TokenizerError(f"calibration pair {i}: observed tokens must be an int >= 0")
            if isinstance(content, str):
                xs.append(float(measure(content)))
                ys.append(float(observed))
                continue
            try:
                texts, overhead = _layout(content, family)
            except ValueError as exc:
                raise TokenizerError(f"calibration pair {i}: {exc}") from None
            xs.append(float(sum(measure(t) for t in texts)))
            ys.append(float(observed - overhead))
        return cls.fit_units(xs, ys, family=family, basis=basis, intercept=intercept,
                             source=source)

    @classmethod
    def fit_units(
        cls,
        xs: Sequence[float],
        ys: Sequence[float],
        *,
        family: str = "custom",
        basis: Basis = "o200k",
        intercept: bool | None = None,
        source: str = "fit",
    ) -> Calibration:
        """Fit from measured units (``xs``) and observed tokens (``ys``) directly."""
        n = len(xs)
        if n == 0 or n != len(ys):
            raise TokenizerError("calibration needs at least one (text, observed tokens) pair")
        use_b = n >= 3 if intercept is None else intercept
        if use_b and n < 2:
            raise TokenizerError("an intercept needs at least 2 calibration pairs")
        if use_b:
            mx, my = sum(xs) / n, sum(ys) / n
            sxx = sum((x - mx) ** 2 for x in xs)
            if sxx == 0:
                raise TokenizerError("calibration texts all have the same length; cannot fit")
            a = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
            b = my - a * mx
        else:
            sxx = sum(x * x for x in xs)
            if sxx == 0:
                raise TokenizerError("calibration texts are all empty; cannot fit")
            a = sum(x * y for x, y in zip(xs, ys, strict=True)) / sxx
            b = 0.0
        if a <= 0:
            raise TokenizerError(
                f"calibration gave a non-positive slope ({a:.4g}); check the pairs"
            )
        resid = [y - (a * x + b) for x, y in zip(xs, ys, strict=True)]
        rmse = math.sqrt(sum(r * r for r in resid) / n)
        rel = [abs(r) / y for r, y in zip(resid, ys, strict=True) if y > 0]
        rel_error = sum(rel) / len(rel) if rel else None
        return cls(family=family, basis=basis, slope=a, intercept=b, n=n, rmse=rmse,
                   rel_error=rel_error, source=source)

    # -- persistence -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, **asdict(self)}

    def save(self, path: str | Path) -> None:
        """Write this calibration as JSON (atomically: temp file then rename)."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(p)

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a calibration written by :meth:`save`; errors name the file and field."""
        p = Path(path)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TokenizerError(f"{p}: calibration file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TokenizerError(f"{p}: not a calibration JSON file ({exc})") from None
        if not isinstance(raw, dict):
            raise TokenizerError(f"{p}: calibration must be a JSON object")
        raw.pop("version", None)
        fields = {"family", "basis", "slope", "intercept", "n", "rmse", "rel_error", "source"}
        unknown = set(raw) - fields
        if unknown:
            raise TokenizerError(f"{p}: unknown calibration field(s) {sorted(unknown)}")
        for key in ("family", "basis", "slope"):
            if key not in raw:
                raise TokenizerError(f"{p}: missing calibration field {key!r}")
        try:
            return cls(**raw)
        except (TypeError, TokenizerError) as exc:
            raise TokenizerError(f"{p}: invalid calibration ({exc})") from None

    def with_source(self, source: str) -> Calibration:
        return replace(self, source=source)


def _layout(content: Any, family: str) -> tuple[list[str], int]:
    """Texts of a structured prompt and its framing + non-text estimate, for ``family``."""
    from ._framing import classify, framing_for, layout_messages, layout_request, layout_tools

    framing = framing_for(family, "")
    kind = classify(content)
    if kind == "request":
        lay = layout_request(content, framing, family)
    elif kind == "tools":
        lay = layout_tools([content] if isinstance(content, dict) else list(content), framing)
    else:
        lay = layout_messages([content] if isinstance(content, dict) else list(content),
                              framing, family)
    return lay.texts, lay.framing + lay.extra


def _default_units(basis: Basis) -> Callable[[str], int]:
    if basis == "chars":
        return len
    from ._counters import o200k_units

    return o200k_units


#: Built-in estimators, per family and basis.
#:
#: - anthropic/o200k: fitted on the two real Claude Sonnet 4.5 calls recorded in
#:   pydantic-ai's cassette ``test_anthropic_cache_real_api.yaml`` (observed
#:   prompt = input + cache read + cache write = 1,114 and 1,532 tokens, minus
#:   the Anthropic framing estimate of 4 + 3 per message), through the origin.
#: - anthropic/chars, generic/chars: 3.6 characters per token, deliberately
#:   conservative (prose runs ~4.5 chars per Claude token, code and JSON ~3):
#:   offline budgets should over- rather than under-estimate.
#: - google: Gemini's SentencePiece vocabulary tokenizes English close to o200k;
#:   uncalibrated (n=0) until fitted on the user's own usage.
DEFAULT_CALIBRATIONS: dict[tuple[str, Basis], Calibration] = {
    ("anthropic", "o200k"): Calibration(
        family="anthropic", basis="o200k", slope=1.0173, n=2, rel_error=0.012,
        source="pydantic-ai cassette test_anthropic_cache_real_api.yaml (claude-sonnet-4-5)",
    ),
    ("anthropic", "chars"): Calibration(family="anthropic", basis="chars", slope=1 / 3.6),
    ("google", "o200k"): Calibration(family="google", basis="o200k", slope=1.0),
    ("google", "chars"): Calibration(family="google", basis="chars", slope=1 / 4.0),
    ("openai", "chars"): Calibration(family="openai", basis="chars", slope=1 / 3.6),
    ("generic", "o200k"): Calibration(family="generic", basis="o200k", slope=1.1),
    ("generic", "chars"): Calibration(family="generic", basis="chars", slope=1 / 3.6),
}


def default_calibration(family: str, basis: Basis) -> Calibration:
    """The built-in calibration for ``family`` (``generic`` when unknown)."""
    return DEFAULT_CALIBRATIONS.get((family, basis)) or DEFAULT_CALIBRATIONS[("generic", basis)]
