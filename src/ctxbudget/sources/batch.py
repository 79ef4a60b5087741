"""Batch API result files: ``openai-batch`` and ``anthropic-batch`` (JSON Lines).

Calls are stored with ``service_tier="batch"``, so the PriceBook prices them at the
batch variant (half price for both providers).

* **OpenAI** (``/v1/batches`` output file): one line per request,
  ``{"id", "custom_id", "response": {"status_code", "request_id", "body": {...}},
  "error"}``. ``response.body`` is a Chat Completions, Responses or Embeddings body;
  its ``usage`` goes through :func:`~ctxbudget.adapters.from_openai` (``prompt_tokens``
  / ``input_tokens`` include ``cached_tokens``). Time: ``body.created`` /
  ``body.created_at``. Key: ``body.id`` (else ``response.request_id``, else the line's
  ``id``). Lines with an ``error`` or a non-2xx status carry no usage and are not
  billed: skipped as ``failed request (not billed)``.
* **Anthropic** (Message Batches results): ``{"custom_id", "result": {"type",
  "message": {...}}}``. ``succeeded`` results are converted with
  :func:`~ctxbudget.adapters.from_anthropic`; ``errored`` / ``canceled`` / ``expired``
  ones are not billed and skipped. The results carry no timestamp: the call time is
  the file's modification time (``meta.ts_from = "file mtime"``). Key:
  ``message.id``.

``custom_id`` is kept as ``task_id`` (it is how a batch user names the work item).

**Provider.** The OpenAI batch format is also written by OpenAI-compatible providers
(Groq, Mistral, xAI...). The body's shape says which one when it can
(:func:`~ctxbudget.adapters.detect_format`: ``x_groq`` -> ``groq``...); otherwise the
provider is resolved from the model through the price catalog
(:meth:`~ctxbudget.prices.PriceBook.provider_for`: ``gpt-4o-mini`` -> ``openai``,
``llama-3.3-70b-versatile`` -> ``groq``); ``--provider`` forces it. A model sold by
several providers with no hint is an error on that line, never a guess.

**Iterations.** An Anthropic result whose ``usage.iterations`` lists several sampling
iterations (server-side compaction, the advisor tool) becomes one call per iteration,
each with its own model and buckets (so each is priced at its own model and
context-length tier): the last keeps the message id, the others get ``<id>#<n>``; all
carry ``meta.iteration`` (:func:`~ctxbudget.adapters.iteration_calls`, as the tracker and
the gateway record them). Server-side tool counts and modality detail are stored with the
call and priced in reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..adapters import PROVIDERS, AdaptedUsage, detect_format, from_anthropic, iteration_calls
from ..errors import InputFormatError
from ..usage import Call
from ._base import STDIN, Importer, Record, Skip, parse_ts

__all__ = ["AnthropicBatchImporter", "OpenAIBatchImporter", "register"]

NOT_BILLED = "failed request (not billed)"


def _obj(d: Any) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise InputFormatError(f"expected a JSON object, got {type(d).__name__}")
    return d


class OpenAIBatchImporter(Importer):
    name = "openai-batch"
    description = ("OpenAI Batch API output files, also from OpenAI-compatible providers "
                   "(JSONL: custom_id, response.body.usage)")
    patterns = ("*.jsonl",)

    def __init__(self, provider: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.provider = provider.lower() if provider else None
        self._book: Any = None

    def _provider_of(self, fmt: str | None, a: AdaptedUsage, model: str) -> str:
        if self.provider:
            return self.provider
        if fmt not in (None, "openai-chat", "openai-responses") and a.provider:
            return a.provider
        if self._book is None:
            from ..prices import default_pricebook

            self._book = default_pricebook()
        try:
            return str(self._book.provider_for(model))
        except Exception as exc:
            raise InputFormatError(f"response.body.model {model!r}: {exc}") from None

    def convert(self, rec: Record) -> Iterable[Any]:
        d = _obj(rec.value)
        resp = d.get("response")
        if d.get("error") or not isinstance(resp, Mapping):
            yield Skip(NOT_BILLED)
            return
        status = resp.get("status_code")
        if isinstance(status, int) and not 200 <= status < 300:
            yield Skip(NOT_BILLED)
            return
        body = resp.get("body")
        if not isinstance(body, Mapping):
            raise InputFormatError("response.body is missing")
        if not isinstance(body.get("usage"), Mapping):
            raise InputFormatError("response.body.usage is missing")
        fmt = detect_format(body)
        if fmt not in PROVIDERS or fmt in ("anthropic", "gemini", "bedrock", "otel"):
            fmt = "openai-chat" if "prompt_tokens" in body["usage"] else "openai-responses"
        adapted = PROVIDERS[fmt](body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InputFormatError("response.body.model is missing")
        provider = self._provider_of(fmt, adapted, model)
        created = body.get("created", body.get("created_at"))
        rid = body.get("id") or resp.get("request_id") or d.get("id")
        meta: dict[str, Any] = {"custom_id": d["custom_id"]} if d.get("custom_id") else {}
        yield from iteration_calls(adapted, Call(
            ts=parse_ts(created, "response.body.created"), provider=provider, model=model,
            usage=adapted.usage, task_id=d.get("custom_id"), request_id=rid,
            source="openai-batch", service_tier="batch", input_inclusive=True,
            meta=meta or None,
        ))


class AnthropicBatchImporter(Importer):
    name = "anthropic-batch"
    description = "Anthropic Message Batches results (JSONL: custom_id, result.message.usage)"
    patterns = ("*.jsonl",)

    def __init__(self, provider: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.provider = provider.lower() if provider else None
        self._mtimes: dict[Path, datetime] = {}

    def _mtime(self, path: Path) -> datetime:
        if path not in self._mtimes:
            self._mtimes[path] = (datetime.now(UTC) if path == STDIN else
                                  datetime.fromtimestamp(path.stat().st_mtime, UTC))
        return self._mtimes[path]

    def convert(self, rec: Record) -> Iterable[Any]:
        d = _obj(rec.value)
        result = d.get("result")
        if not isinstance(result, Mapping):
            raise InputFormatError("result is missing")
        if result.get("type") != "succeeded":
            yield Skip(NOT_BILLED)
            return
        msg = result.get("message")
        if not isinstance(msg, Mapping) or not isinstance(msg.get("usage"), Mapping):
            raise InputFormatError("result.message.usage is missing")
        adapted = from_anthropic(msg)
        model = msg.get("model")
        if not isinstance(model, str) or not model:
            raise InputFormatError("result.message.model is missing")
        base = Call(
            ts=self._mtime(rec.path), provider=self.provider or "anthropic", model=model,
            usage=adapted.usage,
            task_id=d.get("custom_id"), request_id=msg.get("id") or d.get("custom_id"),
            source="anthropic-batch", service_tier="batch", input_inclusive=False,
            meta={"custom_id": d.get("custom_id"), "ts_from": "file mtime"},
        )
        yield from iteration_calls(adapted, base)


def register(registry: Any) -> None:
    registry.add(OpenAIBatchImporter)
    registry.add(AnthropicBatchImporter)
