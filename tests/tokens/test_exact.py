"""Exact counts equal tiktoken; model -> encoding; memo never changes a number."""

from __future__ import annotations

import itertools

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxbudget.tokens import (
    clear_cache,
    count_many,
    count_tokens,
    encoding_for_model,
    provider_for_model,
)


@pytest.mark.parametrize(("model", "encoding"),
                         [("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")])
def test_equals_tiktoken_on_real_text(real_texts: dict[str, str], model: str,
                                      encoding: str) -> None:
    enc = tiktoken.get_encoding(encoding)
    assert real_texts
    for name, text in real_texts.items():
        c = count_tokens(text, model)
        assert c.tokens == len(enc.encode(text, disallowed_special=())), name
        assert c.exact is True
        assert c.method == f"tiktoken:{encoding}"
        assert c.framing_tokens == 0 and c.note == ""
    # cl100k and o200k disagree on real text, so the right encoding was chosen
    joined = "\n".join(real_texts.values())
    assert count_tokens(joined, "gpt-4o").tokens != count_tokens(joined, "gpt-4").tokens


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"), ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"), ("gpt-5", "o200k_base"), ("gpt-5.6-sol", "o200k_base"),
        ("o1", "o200k_base"), ("o3-mini", "o200k_base"), ("o4-mini-2025-04-16", "o200k_base"),
        ("gpt-4", "cl100k_base"), ("gpt-4-0613", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"), ("text-embedding-3-small", "cl100k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("claude-sonnet-4-5", None), ("gemini-2.5-flash", None), ("o1xyz", None),
    ],
)
def test_encoding_for_model(model: str, encoding: str | None) -> None:
    assert encoding_for_model(model) == encoding


def test_provider_for_model() -> None:
    assert provider_for_model("claude-sonnet-4-5") == "anthropic"
    assert provider_for_model("anthropic.claude-3-haiku-20240307-v1:0", "bedrock") == "anthropic"
    assert provider_for_model("gemini-2.5-flash") == "google"
    assert provider_for_model("gpt-4o", "azure") == "openai"
    assert provider_for_model("llama-3.1-8b") == "generic"


_texts = st.lists(
    st.one_of(st.text(max_size=20),
              st.sampled_from(["<|endoftext|>", "  ", "\n\n", "🙂", "é", "<|im_start|>", " \n",
                               "<|endoftext", "\ud800", "'s", "123"])),
    max_size=12,
).map("".join)


@settings(max_examples=60, deadline=None)
@given(text=_texts)
def test_any_text_equals_encode_ordinary(text: str) -> None:
    enc = tiktoken.get_encoding("o200k_base")
    expected = len(enc.encode_ordinary(text))
    assert count_tokens(text, "gpt-4o").tokens == expected
    assert count_tokens(text, "gpt-4o").tokens == expected  # memoized: same number


@settings(max_examples=80, deadline=None)
@given(texts=st.lists(_texts, max_size=12), threads=st.integers(1, 3),
       model=st.sampled_from(["gpt-4", "gpt-4o"]))
def test_count_many_equals_encode_ordinary_in_order(texts: list[str], threads: int,
                                                    model: str) -> None:
    """count_many joins texts with <|endoftext|> into one encode call; the split
    counts must still be exactly each text's encode_ordinary count."""
    clear_cache()  # no memo: the batch path must compute every number itself
    enc = tiktoken.encoding_for_model(model)
    many = count_many(texts, model, threads=threads)
    assert [c.tokens for c in many] == [len(enc.encode_ordinary(t)) for t in texts]
    assert all(c.exact and c.method == f"tiktoken:{enc.name}" for c in many)


def test_count_many_threads_on_real_text(real_texts: dict[str, str]) -> None:
    enc = tiktoken.get_encoding("o200k_base")
    texts = [t[i:] for t in real_texts.values() for i in range(0, 2000, 97)]
    got = [c.tokens for c in count_many(texts, "gpt-4o", threads=2)]
    assert got == [len(x) for x in enc.encode_ordinary_batch(texts)]


def test_import_ctxbudget_does_not_import_tiktoken() -> None:
    import os
    import subprocess
    import sys

    code = ("import os, sys, ctxbudget, ctxbudget.tokens; f = ctxbudget.count_tokens; "
            "print('tiktoken' in sys.modules, 'tokenizers' in sys.modules, "
            "'TIKTOKEN_CACHE_DIR' in os.environ)")
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    # no tiktoken import, and TIKTOKEN_CACHE_DIR is never set for the user
    assert out.stdout.split() == ["False", "False", "False"]


def test_count_many_many_chunks_keep_order(real_texts: dict[str, str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from ctxbudget.tokens import _counters

    monkeypatch.setattr(_counters, "CHUNK_CHARS", 500)
    enc = tiktoken.get_encoding("cl100k_base")
    texts = [p for t in real_texts.values() for p in t.split("\n\n")]
    assert len(texts) > 50
    got = [c.tokens for c in count_many(texts, "gpt-4", threads=3)]
    assert got == [len(enc.encode_ordinary(t)) for t in texts]


@pytest.mark.parametrize("text", ["a\ud800b", "<|endoftext|><|im_start|>x<|fim_prefix|>", "",
                                  "\n\n\n   \t", "🙂" * 50, "x" * 5000])
@pytest.mark.parametrize(("model", "encoding"),
                         [("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")])
def test_edge_texts_equal_encode_ordinary(text: str, model: str, encoding: str) -> None:
    enc = tiktoken.get_encoding(encoding)
    assert count_tokens(text, model).tokens == len(enc.encode_ordinary(text))
    assert count_many([text, text[:7]], model)[0].tokens == len(enc.encode_ordinary(text))


_lines = st.lists(
    st.one_of(st.text(max_size=12), st.sampled_from(
        ["abc", "Z9", "\n", "\r\n", "  \n", "it's\n", ".\n", "\n\n", "x\n", "123\n", "é\n",
         "<|endoftext|>", "\t", " ", "//\n", "日本\n"])),
    max_size=40,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=_lines, parts=st.integers(2, 9),
       encoding=st.sampled_from(["o200k_base", "cl100k_base"]))
def test_safe_split_pieces_add_up_exactly(text: str, parts: int, encoding: str) -> None:
    from ctxbudget.tokens._counters import safe_split

    enc = tiktoken.get_encoding(encoding)
    pieces = safe_split(text, parts)
    assert "".join(pieces) == text and len(pieces) <= max(1, parts)
    assert all(p[:1] == "\n" and prev[-1:].isascii() and prev[-1:].isalnum()
               for prev, p in itertools.pairwise(pieces))
    assert sum(len(enc.encode_ordinary(p)) for p in pieces) == len(enc.encode_ordinary(text))


def test_big_texts_counted_in_parallel_pieces(real_texts: dict[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ctxbudget.tokens import _counters

    monkeypatch.setattr(_counters, "BIG_CHARS", 20_000)
    big = "\n".join(real_texts.values()) * 6  # ~130k chars -> split into pieces
    texts = ["short one", big, real_texts["DESIGN.md"], big + "tail\n"]
    for model in ("gpt-4o", "gpt-4"):
        enc = tiktoken.encoding_for_model(model)
        clear_cache()
        got = [c.tokens for c in count_many(texts, model, threads=2)]
        assert got == [len(enc.encode_ordinary(t)) for t in texts]
        # memoized whole-text counts afterwards
        assert count_tokens(big, model).tokens == got[1]
    assert len(_counters.safe_split(big, 7)) == 7


def test_count_many_large_batch_in_processes_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches over FORK_MIN_CHARS go to forked workers; counts stay exactly tiktoken's."""
    import threading

    import tiktoken

    from ctxbudget.tokens import _counters, count_many

    enc = tiktoken.get_encoding("o200k_base")
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    base = root.parent / "shared" / "seed" / "token-budget-planning-and-execution.txt"
    text = base.read_text(encoding="utf-8") if base.exists() else "plain text, many words. " * 400
    texts = [f"{i} {text[i % 500:(i % 500) + 300]}" for i in range(400)]
    monkeypatch.setattr(_counters, "FORK_MIN_CHARS", 10_000)
    used: list[bool] = []
    real = _counters._units_forked

    def spy(counter: object, ts: object, workers: int) -> object:
        out = real(counter, ts, workers)  # type: ignore[arg-type]
        used.append(out is not None)
        return out

    monkeypatch.setattr(_counters, "_units_forked", spy)
    got = [c.tokens for c in count_many(texts, "gpt-4o", threads=2)]
    assert got == [len(enc.encode_ordinary(t)) for t in texts]
    assert used, "the process path was not tried"
    if threading.active_count() == 1:
        assert used == [True]
