"""Calibrated estimator: fit, residuals, JSON round trip, and the built-in default's origin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tiktoken
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxbudget.errors import TokenizerError
from ctxbudget.tokens import DEFAULT_CALIBRATIONS, Calibration, count_tokens
from ctxbudget.tokens._counters import get_counter
from ctxbudget.tokens._framing import framing_for, layout_request


@settings(max_examples=50, deadline=None)
@given(a=st.floats(0.05, 3.0), b=st.floats(-50, 500),
       xs=st.lists(st.integers(1, 100_000), min_size=3, max_size=20, unique=True))
def test_fit_recovers_an_exact_line(a: float, b: float, xs: list[int]) -> None:
    ys = [a * x + b for x in xs]
    cal = Calibration.fit_units(xs, ys, family="t", basis="chars")
    assert cal.slope == pytest.approx(a, rel=1e-6)
    assert cal.intercept == pytest.approx(b, abs=1e-3 * max(1.0, abs(b)) + 1e-3)
    assert cal.n == len(xs)
    assert cal.rmse == pytest.approx(0.0, abs=1e-6 * max(ys))


def test_fit_on_text_reports_samples_and_error(real_texts: dict[str, str]) -> None:
    enc = tiktoken.get_encoding("o200k_base")
    paragraphs = [p for t in real_texts.values() for p in t.split("\n\n") if len(p) > 80]
    assert len(paragraphs) > 20
    # a "model" whose tokenizer gives 1.25x o200k tokens, +7 framing, with +-1 noise
    pairs = [(p, round(1.25 * len(enc.encode_ordinary(p))) + 7 + (i % 3 - 1))
             for i, p in enumerate(paragraphs)]
    cal = Calibration.fit(pairs, family="anthropic", basis="o200k")
    assert cal.slope == pytest.approx(1.25, abs=0.01)
    assert cal.intercept == pytest.approx(7, abs=1.0)
    assert cal.n == len(pairs)
    assert cal.rmse is not None and 0 < cal.rmse < 1.5
    assert cal.rel_error is not None and cal.rel_error < 0.02
    assert cal.describe().startswith("estimate:o200k*1.25")
    assert f"calibrated(n={len(pairs)}, err=" in cal.describe()
    # used for counting: the estimate follows the calibration, and says so
    p = paragraphs[0]
    c = count_tokens(p, "claude-sonnet-4-5", calibration=cal)
    assert c.exact is False and c.method == cal.describe()
    assert c.tokens == round(cal.slope * len(enc.encode_ordinary(p)) + cal.intercept)


def test_chars_basis(real_texts: dict[str, str]) -> None:
    texts = list(real_texts.values())
    pairs = [(t, len(t) // 4) for t in texts] + [("x" * 400, 100)]
    cal = Calibration.fit(pairs, basis="chars", family="google")
    assert 1 / cal.slope == pytest.approx(4.0, rel=0.01)
    assert cal.describe().startswith("estimate:chars/4.0")


def test_save_load_round_trip(tmp_path: Path) -> None:
    cal = Calibration.fit_units([100, 200, 400, 800], [130, 251, 498, 1002],
                                family="anthropic", basis="o200k", source="my usage log")
    path = tmp_path / "cal.json"
    cal.save(path)
    raw = json.loads(path.read_text())
    assert raw["version"] == 1 and raw["n"] == 4
    assert Calibration.load(path) == cal


@pytest.mark.parametrize(("content", "msg"), [
    ("{", "not a calibration JSON"), ("[]", "must be a JSON object"),
    ('{"family": "x", "basis": "o200k"}', "missing calibration field 'slope'"),
    ('{"family": "x", "basis": "o200k", "slope": 1, "zzz": 1}', "unknown calibration field"),
    ('{"family": "x", "basis": "words", "slope": 1}', "basis must be"),
    ('{"family": "x", "basis": "chars", "slope": -1}', "positive"),
    ('{"family": "x", "basis": "chars", "slope": "fast"}', "invalid calibration"),
])
def test_load_errors_name_the_file(tmp_path: Path, content: str, msg: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(TokenizerError, match=msg) as info:
        Calibration.load(path)
    assert str(path) in str(info.value)


def test_fit_rejects_bad_pairs() -> None:
    with pytest.raises(TokenizerError, match="at least one"):
        Calibration.fit([], basis="chars")
    with pytest.raises(TokenizerError, match="pair 0"):
        Calibration.fit([("abc", -3)], basis="chars")
    with pytest.raises(TokenizerError, match="same length"):
        Calibration.fit([("ab", 1), ("cd", 2), ("ef", 3)], basis="chars")


def test_default_claude_calibration_matches_recorded_usage(data_dir: Path) -> None:
    """The built-in Claude slope is what a fit on the two recorded calls gives."""
    doc = yaml.safe_load((data_dir / "api-responses" / "test_anthropic_cache_real_api.yaml")
                         .read_text(encoding="utf-8"))
    pairs = []
    for inter in doc["interactions"]:
        u = inter["response"]["parsed_body"]["usage"]
        observed = (u["input_tokens"] + u["cache_read_input_tokens"]
                    + u["cache_creation_input_tokens"])
        pairs.append((inter["request"]["parsed_body"], observed))
    fitted = Calibration.fit(pairs, family="anthropic", basis="o200k")
    default = DEFAULT_CALIBRATIONS[("anthropic", "o200k")]
    assert fitted.n == default.n == 2 and fitted.intercept == 0
    assert fitted.slope == pytest.approx(default.slope, abs=0.002)
    assert fitted.rel_error == pytest.approx(default.rel_error, abs=0.002)
    # the same fit by hand: framing subtracted, texts measured in o200k tokens
    base, _ = get_counter("gpt-4o")
    framing = framing_for("anthropic", "claude-sonnet-4-5")
    xs, ys = [], []
    for body, observed in pairs:
        lay = layout_request(body, framing, "anthropic")
        xs.append(sum(base.units(t) for t in lay.texts))
        ys.append(observed - lay.framing)
    assert Calibration.fit_units(xs, ys, family="anthropic").slope == pytest.approx(fitted.slope)


def test_fit_rejects_unreadable_content() -> None:
    with pytest.raises(TokenizerError, match="pair 0"):
        Calibration.fit([([1, 2], 10)], basis="chars")


def test_close_calibrations_do_not_share_memoized_structures() -> None:
    msgs = [{"role": "user", "content": "word " * 20_000}]
    a = Calibration(family="anthropic", basis="o200k", slope=1.0171, n=5)
    b = Calibration(family="anthropic", basis="o200k", slope=1.0174, n=5)
    assert a.describe() == b.describe()  # same label...
    ca = count_tokens(msgs, "claude-sonnet-4-5", calibration=a)
    cb = count_tokens(msgs, "claude-sonnet-4-5", calibration=b)
    assert ca.tokens != cb.tokens  # ...but each count follows its own slope
