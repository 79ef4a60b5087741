"""Hugging Face tokenizer.json, offline degradation, and the content-hash memo."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken.registry

from ctxbudget.errors import TokenizerError
from ctxbudget.tokens import _counters as counters
from ctxbudget.tokens import count_many, count_tokens
from ctxbudget.tokens._memo import LRUMemo


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory: pytest.TempPathFactory, real_texts: dict[str, str]) -> Path:
    """A small BPE tokenizer trained on the seed article, saved as tokenizer.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["[UNK]", "[BOS]"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(real_texts.values()), trainer=trainer)
    path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    tok.save(str(path))
    return path


def test_hf_tokenizer_is_exact(tokenizer_json: Path, real_texts: dict[str, str]) -> None:
    from tokenizers import Tokenizer

    ref = Tokenizer.from_file(str(tokenizer_json))
    for text in real_texts.values():
        c = count_tokens(text, "my-local-llama", tokenizer=tokenizer_json)
        assert c.tokens == len(ref.encode(text, add_special_tokens=False).ids)
        assert c.exact is True and c.method == f"hf:{tokenizer_json}"
    texts = list(real_texts.values())
    many = count_many(texts, "my-local-llama", tokenizer=tokenizer_json)
    assert [c.tokens for c in many] == [len(e.ids) for e in ref.encode_batch(texts)]
    # a 600-token vocabulary splits finer than o200k: this really is another tokenizer
    assert many[0].tokens > 1.5 * count_tokens(texts[0], "gpt-4o").tokens


def test_hf_tokenizer_errors(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="tokenizer file not found"):
        count_tokens("x", "m", tokenizer=tmp_path / "missing.json")
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"not": "a tokenizer"}')
    with pytest.raises(TokenizerError, match=r"not a Hugging Face tokenizer\.json"):
        count_tokens("x", "m", tokenizer=bad)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty TIKTOKEN_CACHE_DIR, tiktoken's in-process cache emptied; the conftest
    already blocks non-loopback connects, so the download must fail."""
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(empty))
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    counters._forget_encodings()
    yield
    counters._forget_encodings()


def test_offline_degrades_to_estimate_with_one_warning(
    offline: None, caplog: pytest.LogCaptureFixture, real_texts: dict[str, str]
) -> None:
    text = real_texts["DESIGN.md"]
    with caplog.at_level(logging.WARNING, logger="ctxbudget.tokens"):
        first = count_tokens(text, "gpt-4o")
        again = count_tokens(text + " more", "gpt-4o-mini")
        many = count_many([text, "abc"], "gpt-4o")
        msgs = count_tokens([{"role": "user", "content": text}], "gpt-4o")
        claude = count_tokens(text, "claude-sonnet-4-5")
    for c in (first, again, *many, msgs, claude):
        assert c.exact is False
        assert c.method.startswith("estimate:chars/")
    assert first.note == "tiktoken encoding o200k_base unavailable offline; estimated"
    assert first.tokens == round(len(text) / 3.6)
    assert "unavailable offline" in claude.note
    warnings = [r for r in caplog.records if r.name == "ctxbudget.tokens"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "tiktoken encoding o200k_base unavailable offline" in warnings[0].getMessage()
    assert warnings[0].levelno == logging.WARNING


def test_online_again_after_offline(offline: None, monkeypatch: pytest.MonkeyPatch,
                                    data_dir: Path) -> None:
    assert count_tokens("hello world", "gpt-4o").exact is False
    # pointing TIKTOKEN_CACHE_DIR at the files makes counts exact again, no restart needed
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(data_dir / "tiktoken"))
    c = count_tokens("hello world", "gpt-4o")
    assert c.exact is True and c.tokens == 2


class _Spy:
    """Wraps a tiktoken Encoding and counts encode_ordinary calls."""

    def __init__(self, enc: Any) -> None:
        self.enc = enc
        self.calls = 0

    def encode_ordinary(self, text: str) -> list[int]:
        self.calls += 1
        return list(self.enc.encode_ordinary(text))


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Spy]:
    counters._forget_encodings()
    s = _Spy(tiktoken.get_encoding("o200k_base"))
    key = ("o200k_base", counters._cache_dir())
    monkeypatch.setitem(counters._encodings, key, s)
    yield s
    counters._forget_encodings()  # no counter built on the spy may outlive the test


def test_second_count_does_not_call_the_encoder(spy: _Spy, real_texts: dict[str, str]) -> None:
    text = real_texts["DESIGN.md"]
    a = count_tokens(text, "gpt-4o")
    assert spy.calls == 1
    b = count_tokens(text, "gpt-4o")
    assert spy.calls == 1 and a == b
    # the same text through count_many and inside messages: still no new encode of it
    count_many([text, text], "gpt-4o", threads=2)
    assert spy.calls == 1
    msgs = [{"role": "user", "content": text}]
    count_tokens(msgs, "gpt-4o")
    calls_after_first_messages = spy.calls  # "user" is new, the text is not
    assert calls_after_first_messages == 2
    count_tokens(msgs, "gpt-4o")
    assert spy.calls == calls_after_first_messages
    # Claude estimates from o200k units share the memo
    count_tokens(text, "claude-sonnet-4-5")
    assert spy.calls == calls_after_first_messages
    # a different text is encoded
    count_tokens(text + "!", "gpt-4o")
    assert spy.calls == calls_after_first_messages + 1


def test_lru_is_bounded() -> None:
    memo: LRUMemo[int] = LRUMemo(maxsize=2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # a is now most recent
    memo.put("c", 3)
    assert memo.get("b") is None and memo.get("a") == 1 and memo.get("c") == 3
    assert len(memo) == 2


def test_count_many_encodes_a_batch_in_one_call(real_texts: dict[str, str]) -> None:
    enc = tiktoken.get_encoding("o200k_base")
    counter = counters.TiktokenCounter(key="test-spy", method="tiktoken:o200k_base", exact=True,
                                       encoding=enc)
    real = counter._buffer
    assert real is not None and counter._sep_bytes is not None  # the fast path is active
    calls: list[int] = []

    def spy(text: str, allowed: frozenset[str]) -> Any:
        calls.append(len(text))
        return real(text, allowed)

    object.__setattr__(counter, "_buffer", spy)  # a private counter, not the shared one
    texts = [p for t in real_texts.values() for p in t.split("\n\n")][:60]
    texts.append("a text quoting <|endoftext|> literally")
    got = counters.units_many(counter, texts, threads=1)
    assert got == [len(enc.encode_ordinary(t)) for t in texts]
    # one joined call for the 60 plain texts, one on its own for the one quoting the separator
    assert len(calls) == 2
