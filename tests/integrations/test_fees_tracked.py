"""Tracked responses with server-side tool fees, sampling iterations or modality detail:
the report's total equals ``ctxbudget usage FILE --cost`` on the same body, exactly.

Each recorded real body of ``tests/core/data/responses`` is answered by the local fake
API (``tests/track/fakeapi.py``: Anthropic, OpenAI Chat / Responses;
``fakeproviders.py``: Gemini) to the real SDK client, tracked with ``ctxbudget.track``;
the spool is folded into a store and ``report --json`` read from it."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAPI
from fakeproviders import FakeProviders
from track_helpers import closing, recorded

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: fees_parity

import ctxbudget
from ctxbudget.store.spool import ingest_spool
from fees_parity import (
    ANTHROPIC,
    COMPATIBLE,
    GEMINI,
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    assert_same_total,
    body,
    usage_cost,
)

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

MSG = [{"role": "user", "content": "What is new in Python 3.14?"}]


def _stored(spool: Path, tmp_path: Path) -> tuple[Path, date]:
    """The spool folded into a fresh store; the day the call was made."""
    calls, _ = recorded(spool)
    assert calls and all(c.status == "ok" for c in calls)
    db = tmp_path / "u.duckdb"
    report = ingest_spool(db, spool)
    assert report.rejected == 0 and report.calls == len(calls)
    return db, calls[0].ts.date()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("name", ANTHROPIC)
def test_anthropic_sdk(name: str, stream: bool, api: FakeAPI, spool: Path,
                       tmp_path: Path) -> None:
    """Iterations (compaction; the advisor's at its own model) and server tool counts,
    from the message or from the stream's ``message_start`` + ``message_delta`` usage."""
    b = body(name)
    api.respond_next("anthropic", b)
    client = ctxbudget.track(closing(anthropic.Anthropic(base_url=api.url, api_key="test",
                                                         max_retries=0)))
    if stream:
        for _ev in client.messages.create(model=b["model"], max_tokens=256, messages=MSG,
                                          stream=True):
            pass
    else:
        client.messages.create(model=b["model"], max_tokens=256, messages=MSG)
    db, day = _stored(spool, tmp_path)
    assert_same_total(db, usage_cost(name, day))


@pytest.mark.parametrize("name", OPENAI_CHAT)
def test_openai_chat_sdk(name: str, api: FakeAPI, spool: Path, tmp_path: Path) -> None:
    b = body(name)
    api.respond_next("openai-chat", b)
    client = ctxbudget.track(closing(openai.OpenAI(base_url=api.url + "/v1", api_key="test",
                                                   max_retries=0)))
    client.chat.completions.create(model=b["model"], messages=MSG)
    db, day = _stored(spool, tmp_path)
    assert_same_total(db, usage_cost(name, day))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("name", OPENAI_RESPONSES)
def test_openai_responses_sdk(name: str, stream: bool, api: FakeAPI, spool: Path,
                              tmp_path: Path) -> None:
    """The ``web_search_call`` items of ``output[]`` are the fee: read from the response
    object (and from ``response.completed`` when streamed)."""
    b = body(name)
    api.respond_next("openai-responses", b)
    client = ctxbudget.track(closing(openai.OpenAI(base_url=api.url + "/v1", api_key="test",
                                                   max_retries=0)))
    if stream:
        for _ev in client.responses.create(model=b["model"], input="hi", stream=True):
            pass
    else:
        client.responses.create(model=b["model"], input="hi")
    db, day = _stored(spool, tmp_path)
    assert_same_total(db, usage_cost(name, day))


@pytest.mark.parametrize(("name", "provider"), COMPATIBLE)
def test_openai_compatible_sdk(name: str, provider: str, api: FakeAPI, spool: Path,
                               tmp_path: Path) -> None:
    """OpenRouter / xAI through the OpenAI SDK: their tool counters (an unpriced web search
    on both) are unpriced fees in the report too, not $0."""
    b = body(name)
    api.respond_next("openai-chat", b)
    client = ctxbudget.track(closing(openai.OpenAI(base_url=api.url + "/v1", api_key="test",
                                                   max_retries=0)), provider=provider)
    client.chat.completions.create(model=b["model"], messages=MSG)
    db, day = _stored(spool, tmp_path)
    assert_same_total(db, usage_cost(name, day, provider=provider))


@pytest.mark.parametrize("name", GEMINI)
def test_gemini_sdk(name: str, providers: FakeProviders, spool: Path, tmp_path: Path) -> None:
    """Grounding (a web search fee) and audio / video / image tokens at their own rates."""
    genai = pytest.importorskip("google.genai")
    b = body(name)
    providers.gemini_chunks = [b]
    client: Any = genai.Client(api_key="test", http_options={"base_url": providers.url})
    ctxbudget.track(client).models.generate_content(model=b["modelVersion"], contents="hi")
    db, day = _stored(spool, tmp_path)
    assert_same_total(db, usage_cost(name, day))
