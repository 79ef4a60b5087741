"""Tokenizers behind ``count_tokens``: tiktoken, Hugging Face tokenizer.json, estimator.

Each counter turns text into *units* (tokens for an exact tokenizer; o200k
tokens or characters for the estimator) and units into tokens. Units of a text
are memoized by content hash, so re-counting is a dict lookup.

tiktoken downloads an encoding file on first use (or reads it from
``TIKTOKEN_CACHE_DIR``). When that fails — no network, no cached file — the
counter degrades to the calibrated estimator with ONE warning on the
``ctxbudget.tokens`` logger per encoding; it never raises. We never set or
rewrite ``TIKTOKEN_CACHE_DIR`` and never ship encoding files.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TokenizerError
from ._calibration import Calibration, default_calibration
from ._memo import LRUMemo, memo_key
from ._models import encoding_for_model, provider_for_model
from ._result import TokenCount

__all__ = [
    "Counter",
    "EstimateCounter",
    "HFCounter",
    "TiktokenCounter",
    "get_counter",
    "load_encoding",
    "o200k_units",
    "safe_split",
    "units_many",
    "units_memo",
]

log = logging.getLogger("ctxbudget.tokens")

#: (counter key, blake2b digest) -> units. Shared by every counter.
units_memo: LRUMemo[int] = LRUMemo(maxsize=131_072)
_memo_get = units_memo.get
_memo_put = units_memo.put

_lock = threading.Lock()
_NO_SPECIAL: frozenset[str] = frozenset()
_SEP = "<|endoftext|>"
_ALLOW_SEP: frozenset[str] = frozenset({_SEP})
_encodings: dict[tuple[str, str | None], Any] = {}
_warned: set[tuple[str, str | None]] = set()


def _cache_dir() -> str | None:
    return os.environ.get("TIKTOKEN_CACHE_DIR")


def load_encoding(name: str) -> Any | None:
    """The tiktoken ``Encoding`` called ``name``, or ``None`` when it cannot be loaded.

    A failure (offline, no cached file, tiktoken missing) is logged once as a
    warning and remembered for this ``TIKTOKEN_CACHE_DIR`` value.
    """
    key = (name, _cache_dir())
    with _lock:
        if key in _encodings:
            return _encodings[key]
    try:
        import tiktoken

        enc: Any | None = tiktoken.get_encoding(name)
    except Exception as exc:  # offline: requests/urllib3/socket errors; also a bad cache file
        enc = None
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        with _lock:
            first = key not in _warned
            _warned.add(key)
        if first:
            log.warning(
                "tiktoken encoding %s unavailable offline (%s); token counts are estimated. "
                "Put the encoding file in TIKTOKEN_CACHE_DIR or allow one download.",
                name, reason,
            )
    with _lock:
        _encodings[key] = enc
    return enc


def _forget_encodings() -> None:
    """Drop loaded/failed encodings, resolved counters and the once-only warnings."""
    with _lock:
        _encodings.clear()
        _warned.clear()
        _resolved.clear()


@dataclass(frozen=True, slots=True, kw_only=True)
class Counter:
    """Base: ``units(text)`` then ``tokens(units)``; identity for exact tokenizers."""

    key: str
    method: str
    exact: bool
    note: str = ""
    memoize: bool = True
    #: units -> the TokenCount of a plain text with that many units (bounded)
    _results: dict[int, TokenCount] = field(default_factory=dict, compare=False, repr=False)

    def units(self, text: str) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def text_count(self, text: str) -> TokenCount:
        """The TokenCount of one plain text (memoized units, shared result objects)."""
        if self.memoize:
            key = (self.key, memo_key(text))
            units = _memo_get(key)
            if units is None:
                units = self.units(text)
                _memo_put(key, units)
        else:
            units = self.units(text)
        hit = self._results.get(units)
        return hit if hit is not None else self.result(units)

    def result(self, units: int) -> TokenCount:
        hit = self._results.get(units)
        if hit is None:
            if len(self._results) >= 65_536:
                self._results.clear()
            hit = TokenCount(tokens=self.tokens(units), exact=self.exact, method=self.method,
                             note=self.note)
            self._results[units] = hit
        return hit

    def units_seq(self, texts: Sequence[str]) -> list[int]:
        """Units of each text, in order, in this thread (no memo)."""
        return [self.units(t) for t in texts]

    def tokens(self, units: int, *, with_intercept: bool = True) -> int:
        return units


_SPLITTABLE = frozenset({"o200k_base", "cl100k_base", "r50k_base", "p50k_base", "gpt2"})
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def safe_split(text: str, parts: int) -> list[str]:
    """Cut ``text`` into at most ``parts`` pieces, each cut just before a newline
    that follows an ASCII letter or digit (see ``TiktokenCounter.split``)."""
    n = len(text)
    cuts = [0]
    for k in range(1, parts):
        pos = max(cuts[-1] + 1, n * k // parts)
        while True:
            j = text.find("\n", pos)
            if j < 0:
                break
            if text[j - 1] in _ALNUM:
                cuts.append(j)
                break
            pos = j + 1
        if j < 0:
            break
    cuts.append(n)
    return [text[a:b] for a, b in itertools.pairwise(cuts) if b > a]


@dataclass(frozen=True, slots=True, kw_only=True)
class TiktokenCounter(Counter):
    """Exact counts with a tiktoken encoding (``encode_ordinary``: special-token
    strings in user text are counted as the plain text the API also sees).

    Batches: the texts are joined with ``<|endoftext|>`` and encoded in ONE
    call allowing only that special token. tiktoken encodes the pieces between
    allowed special tokens independently (its regex runs on each slice), so the
    pieces' token counts are exactly each text's ``encode_ordinary`` count; the
    output is split at the separator's id. Texts that contain the separator
    string, or lone surrogates, are counted one by one. One call per batch keeps
    the GIL released for the whole batch, which is what lets 2 threads scale.
    """

    encoding: Any = field(repr=False)
    #: ``CoreBPE.encode_to_tiktoken_buffer`` when this tiktoken has it (checked
    #: against ``encode_ordinary`` at construction): no Python list of ints built.
    _buffer: Any = field(default=None, repr=False, compare=False)
    #: the separator token's 4 little-endian bytes in the output buffer
    _sep_bytes: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        enc = self.encoding
        fast = getattr(getattr(enc, "_core_bpe", None), "encode_to_tiktoken_buffer", None)
        if fast is None:
            return
        probe = ["probe <|endoftext|>", "", " tail  \n", "x"]
        try:
            ok = [memoryview(fast(t, _NO_SPECIAL)).nbytes // 4 for t in probe] == [
                len(enc.encode_ordinary(t)) for t in probe]
        except Exception:  # an API change in tiktoken: use the public path
            ok = False
        if not ok:
            return
        object.__setattr__(self, "_buffer", fast)
        try:
            sep_id = enc.encode_single_token(_SEP)
        except Exception:
            return
        # ids < 2**24 have a zero high byte, so the separator's bytes cannot match
        # across two tokens; checked on the probe texts before use.
        if not 0 <= sep_id < 2**24:
            return
        sep_bytes = sep_id.to_bytes(4, "little")
        object.__setattr__(self, "_sep_bytes", sep_bytes)
        plain = [t for t in probe if _SEP not in t]
        if self._joined(plain) != [len(enc.encode_ordinary(t)) for t in plain]:
            object.__setattr__(self, "_sep_bytes", None)

    def units(self, text: str) -> int:
        fast = self._buffer
        if fast is not None:
            try:
                return memoryview(fast(text, _NO_SPECIAL)).nbytes >> 2
            except UnicodeEncodeError:  # lone surrogates: tiktoken's wrapper repairs them
                pass
        return len(self.encoding.encode_ordinary(text))

    def _joined(self, texts: Sequence[str]) -> list[int] | None:
        sep_bytes = self._sep_bytes
        if sep_bytes is None:
            return None
        try:
            buf = self._buffer(_SEP.join(texts), _ALLOW_SEP)
        except UnicodeEncodeError:
            return None
        data = memoryview(buf).tobytes()
        parts = data.split(sep_bytes)
        if len(parts) != len(texts) or any(len(p) & 3 for p in parts):
            return None
        return [len(p) >> 2 for p in parts]

    def split(self, text: str, parts: int) -> list[str]:
        """``text`` cut into about ``parts`` pieces whose counts add up exactly.

        Cuts fall just before a ``\\n`` preceded by an ASCII letter or digit.
        In the cl100k/o200k (and GPT-2) pre-tokenizer patterns no piece spans a
        letter/digit and a following newline, and the piece starting at that
        newline depends only on the text after it, so BPE sees the same pieces
        whether the text is cut there or not. Other encodings are not cut.
        """
        if self.encoding.name not in _SPLITTABLE:
            return [text]
        return safe_split(text, parts)

    def units_seq(self, texts: Sequence[str]) -> list[int]:
        if self._sep_bytes is None or len(texts) < 2:
            return [self.units(t) for t in texts]
        special = [i for i, t in enumerate(texts) if _SEP in t]
        if not special:
            got = self._joined(texts)
            return got if got is not None else [self.units(t) for t in texts]
        skip = set(special)
        rest = [t for i, t in enumerate(texts) if i not in skip]
        joined = iter(self.units_seq(rest))
        return [self.units(t) if i in skip else next(joined) for i, t in enumerate(texts)]


@dataclass(frozen=True, slots=True, kw_only=True)
class HFCounter(Counter):
    """Exact counts with a Hugging Face ``tokenizers`` tokenizer.json (no special tokens added)."""

    tokenizer: Any = field(repr=False)

    def units(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def units_seq(self, texts: Sequence[str]) -> list[int]:
        encs = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encs]


@dataclass(frozen=True, slots=True, kw_only=True)
class EstimateCounter(Counter):
    """Calibrated estimate: units are o200k tokens or characters, per the calibration."""

    calibration: Calibration
    base: TiktokenCounter | None = field(default=None, repr=False)

    def units(self, text: str) -> int:
        if self.base is not None:
            return self.base.units(text)
        return len(text)

    def units_seq(self, texts: Sequence[str]) -> list[int]:
        if self.base is not None:
            return self.base.units_seq(texts)
        return [len(t) for t in texts]

    def split(self, text: str, parts: int) -> list[str]:
        if self.base is not None:
            return self.base.split(text, parts)
        return [text]

    def tokens(self, units: int, *, with_intercept: bool = True) -> int:
        return self.calibration.estimate(units, with_intercept=with_intercept)


#: count_many hands texts to worker threads in chunks of about this many
#: characters: one tiktoken call each, big enough that the GIL is rarely taken,
#: small enough that a slow (or descheduled) worker does not idle the other.
CHUNK_CHARS = 262_144


#: With threads > 1, a text longer than this is split (see ``safe_split``) into
#: pieces counted in parallel; its count is the pieces' sum, exactly.
BIG_CHARS = 1_048_576


def _index_chunks(texts: Sequence[str], idx: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    cur: list[int] = []
    acc = 0
    for i in idx:
        cur.append(i)
        acc += len(texts[i])
        if acc >= CHUNK_CHARS:
            out.append(cur)
            cur, acc = [], 0
    if cur:
        out.append(cur)
    return out


#: Batches of at least this many characters are counted in forked worker
#: processes when ``threads > 1``: tiktoken 0.14 encodes no faster on two threads
#: than on one (measured here: 2 threads of ``encode_ordinary`` on 256k-char chunks
#: ran at 0.7x one thread while 2 GIL-free threads ran at 1.95x), so a second core
#: is only reachable through a second process. Below this size forking costs more
#: than it saves. These bulk batches bypass the memo (hashing every text would cost
#: a fifth of the encoding; the memo is for the packer's repeated small items).
FORK_MIN_CHARS = 4_000_000

# (counter, texts) for forked workers: inherited through fork, never pickled.
_FORK_JOB: tuple[Counter, Sequence[str]] | None = None


def _fork_units(span: tuple[int, int]) -> list[int]:
    """In a forked worker: the units of ``texts[span]``, encoded in chunks."""
    assert _FORK_JOB is not None
    counter, texts = _FORK_JOB
    sub = texts[span[0]:span[1]]
    out: list[int] = []
    for chunk in _index_chunks(sub, list(range(len(sub)))):
        out.extend(counter.units_seq([sub[j] for j in chunk]))
    return out


def _units_forked(counter: Counter, texts: Sequence[str], workers: int) -> list[int] | None:
    """Count ``texts`` in ``workers`` forked processes, or ``None`` when that is unsafe
    or impossible (no fork on the platform, other threads running) so the caller uses
    threads."""
    import multiprocessing

    global _FORK_JOB
    if threading.active_count() > 1:  # forking a multi-threaded process can deadlock
        return None
    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:
        return None
    total = sum(len(t) for t in texts)
    spans: list[tuple[int, int]] = []  # contiguous, about equal characters each
    start, acc = 0, 0
    for j, t in enumerate(texts):
        acc += len(t)
        if acc >= total * (len(spans) + 1) / workers and len(spans) < workers - 1:
            spans.append((start, j + 1))
            start = j + 1
    spans.append((start, len(texts)))
    import gc

    _FORK_JOB = (counter, texts)
    gc.freeze()  # keep the children's collector off the inherited pages (copy-on-write)
    try:
        with ctx.Pool(len(spans)) as pool:
            parts = pool.map(_fork_units, spans)
    except OSError:
        return None
    finally:
        _FORK_JOB = None
        gc.unfreeze()
    return [u for part in parts for u in part]


def units_many(counter: Counter, texts: Sequence[str], threads: int) -> list[int]:
    """Units of every text, in order: memo first, misses encoded in chunks by
    ``threads`` workers (hashing and memo lookups happen in the workers too).
    With threads > 1, texts over ``BIG_CHARS`` are split at safe points and
    their pieces counted in parallel; tiktoken batches over ``FORK_MIN_CHARS`` go
    to forked processes instead (see there)."""
    if threads > 1 and isinstance(counter, TiktokenCounter) \
            and sum(len(t) for t in texts) >= FORK_MIN_CHARS:
        forked = _units_forked(counter, texts, threads)
        if forked is not None:
            return forked
    memoize = counter.memoize
    ckey = counter.key
    out: list[int] = [0] * len(texts)
    split = getattr(counter, "split", None) if threads > 1 else None
    small: list[int] = []
    big: list[int] = []
    for i, t in enumerate(texts):
        (big if split is not None and len(t) > BIG_CHARS else small).append(i)

    def work(idx: list[int]) -> None:
        sub = [texts[i] for i in idx]
        if not memoize:
            for i, u in zip(idx, counter.units_seq(sub), strict=True):
                out[i] = u
            return
        keys = [(ckey, memo_key(t)) for t in sub]
        got = [units_memo.get(k) for k in keys]
        miss = [j for j, u in enumerate(got) if u is None]
        if miss:
            counted = counter.units_seq([sub[j] for j in miss])
            units_memo.put_many([(keys[j], u) for j, u in zip(miss, counted, strict=True)])
            for j, u in zip(miss, counted, strict=True):
                got[j] = u
        for i, v in zip(idx, got, strict=True):
            out[i] = v or 0

    pieces: list[tuple[int, str]] = []
    big_keys: dict[int, tuple[str, str | bytes]] = {}
    for i in big:
        t = texts[i]
        if memoize:
            k = (ckey, memo_key(t))
            hit = units_memo.get(k)
            if hit is not None:
                out[i] = hit
                continue
            big_keys[i] = k
        assert split is not None
        pieces.extend((i, p) for p in split(t, max(threads, -(-len(t) // BIG_CHARS))))

    def piece(job: tuple[int, str]) -> tuple[int, int]:
        return job[0], counter.units(job[1])

    chunks = _index_chunks(texts, small)
    if threads <= 1 or len(chunks) + len(pieces) <= 1:
        for c in chunks:
            work(c)
        counted_pieces = [piece(j) for j in pieces]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futs = [pool.submit(piece, j) for j in pieces]  # the big work first
            done = [pool.submit(work, c) for c in chunks]
            counted_pieces = [f.result() for f in futs]
            for f in done:
                f.result()
    for i, u in counted_pieces:
        out[i] += u
    if big_keys:
        units_memo.put_many([(k, out[i]) for i, k in big_keys.items()])
    return out


def _tiktoken_counter(encoding_name: str) -> TiktokenCounter | None:
    enc = load_encoding(encoding_name)
    if enc is None:
        return None
    return TiktokenCounter(key=f"tiktoken:{encoding_name}", method=f"tiktoken:{encoding_name}",
                           exact=True, encoding=enc)


def _estimate_counter(family: str, calibration: Calibration | None, note: str) -> EstimateCounter:
    cal = calibration or default_calibration(family, "o200k")
    if cal.basis == "o200k":
        base = _tiktoken_counter("o200k_base")
        if base is not None:
            return EstimateCounter(key=base.key, method=cal.describe(), exact=False,
                                   note=note, calibration=cal, base=base)
        offline = "tiktoken encoding o200k_base unavailable offline; estimated from characters"
        cal = default_calibration(family, "chars")
        note = f"{note}; {offline}" if note else offline
    return EstimateCounter(key=f"chars:{cal.slope}", method=cal.describe(), exact=False,
                           note=note, memoize=False, calibration=cal)


_hf_cache: dict[tuple[str, int, int], HFCounter] = {}


def _hf_counter(path: str | Path) -> HFCounter:
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError:
        raise TokenizerError(f"{p}: tokenizer file not found") from None
    cache_key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    hit = _hf_cache.get(cache_key)
    if hit is not None:
        return hit
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise TokenizerError(
            "the 'tokenizers' package is needed for tokenizer.json files: "
            "pip install 'ctxbudget[hf]'"
        ) from None
    try:
        tok = Tokenizer.from_file(str(p))
    except Exception as exc:  # the Rust side raises a plain Exception on bad JSON
        raise TokenizerError(f"{p}: not a Hugging Face tokenizer.json ({exc})") from None
    counter = HFCounter(key=f"hf:{cache_key[0]}:{st.st_mtime_ns}", method=f"hf:{p}",
                        exact=True, tokenizer=tok)
    _hf_cache[cache_key] = counter
    return counter


#: (model, provider, calibration) -> (counter, family, TIKTOKEN_CACHE_DIR when resolved).
#: A counter built on a loaded encoding stays valid (tiktoken keeps loaded
#: encodings too); one that degraded offline is re-resolved when the variable
#: changes, so pointing it at the files later makes counts exact again.
_resolved: dict[tuple[str, str | None, Calibration | None],
                tuple[tuple[Counter, str], str | None, bool]] = {}


def get_counter(
    model: str,
    provider: str | None = None,
    *,
    tokenizer: str | Path | None = None,
    calibration: Calibration | None = None,
) -> tuple[Counter, str]:
    """The counter for ``model`` and its framing family (openai/anthropic/google/generic).

    Order: a ``tokenizer`` file the user points to (exact); tiktoken for models
    with a known encoding (exact, or the estimator with a warning when the
    encoding cannot be loaded); otherwise the calibrated estimator. Resolved
    once per (model, provider, calibration); see ``_resolved``.
    """
    if tokenizer is not None:
        return _hf_counter(tokenizer), provider_for_model(model, provider)
    key = (model, provider, calibration)
    hit = _resolved.get(key)
    if hit is not None and (hit[2] or hit[1] == os.environ.get("TIKTOKEN_CACHE_DIR")):
        return hit[0]
    env = os.environ.get("TIKTOKEN_CACHE_DIR")
    counter, family = _resolve(model, provider, calibration)
    healthy = isinstance(counter, TiktokenCounter) or (
        isinstance(counter, EstimateCounter) and counter.base is not None)
    pair = (counter, family)
    with _lock:
        if len(_resolved) > 4096:
            _resolved.clear()
        _resolved[key] = (pair, env, healthy)
    return pair


def _resolve(model: str, provider: str | None,
             calibration: Calibration | None) -> tuple[Counter, str]:
    family = provider_for_model(model, provider)
    if calibration is not None:
        return _estimate_counter(calibration.family if family == "generic" else family,
                                 calibration, ""), family
    enc_name = encoding_for_model(model) if family in ("openai", "generic") else None
    if enc_name is not None:
        counter = _tiktoken_counter(enc_name)
        if counter is not None:
            return counter, "openai" if family == "generic" else family
        note = f"tiktoken encoding {enc_name} unavailable offline; estimated"
        cal = default_calibration("openai", "chars") if enc_name.startswith("o200k") else None
        return _estimate_counter("openai", cal, note), family
    if family == "anthropic":
        note = "Claude has no public tokenizer; estimated"
    elif family == "google":
        note = "Gemini has no public tokenizer here; estimated"
    else:
        note = f"no known tokenizer for {model!r}; estimated"
    return _estimate_counter(family, None, note), family


def o200k_units(text: str) -> int:
    """o200k_base tokens of ``text`` (memoized); characters/3.6 when offline."""
    counter = _tiktoken_counter("o200k_base")
    if counter is None:
        raise TokenizerError("tiktoken encoding o200k_base unavailable offline; "
                             "fit with basis='chars' instead")
    return cached_units(counter, text)


def cached_units(counter: Counter, text: str) -> int:
    """``counter.units(text)`` through the content-hash memo."""
    if not counter.memoize:
        return counter.units(text)
    key = (counter.key, memo_key(text))
    hit = units_memo.get(key)
    if hit is not None:
        return hit
    u = counter.units(text)
    units_memo.put(key, u)
    return u
