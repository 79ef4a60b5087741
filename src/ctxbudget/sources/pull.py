"""Pull importers: read calls from Langfuse's and LiteLLM's APIs instead of export files.

* ``ctxbudget import langfuse --host URL --public-key pk --secret-key sk``:
  ``GET {host}/api/public/observations?type=GENERATION&page=N&limit=L&fromStartTime=T``
  (Basic auth public:secret; response ``{"data": [...], "meta": {"page", "limit",
  "totalItems", "totalPages"}}``), pages until ``page >= totalPages``.
* ``ctxbudget import litellm --url URL --key sk``: the proxy's
  ``GET {url}/spend/logs/v2?start_date=..&end_date=..&page=N&page_size=L&sort_by=startTime
  &sort_order=asc`` (Bearer key; response ``{"data": [...], "total", "page",
  "page_size", "total_pages"}``).

Each row is converted by the same importer as an export file of that system
(:class:`~ctxbudget.sources.langfuse.LangfuseImporter`,
:class:`~ctxbudget.sources.litellm.LiteLLMImporter`): same buckets, keys
(``langfuse:<id>``, ``litellm:<request_id>``), skips and rejections (named
``URL page N item I``). Calls are written to the store page by page (idempotent by
key), so an interrupted pull loses nothing and repeats nothing.

Incremental: the latest ``startTime`` seen is kept in the store's ``imports`` table
(``path = <format>+<url>``, ``state = {"since": ...}``) once every page was read; the
next pull asks only from there on (rows at that instant come again and replace
themselves). ``--from`` overrides it. Network and HTTP errors are user errors naming
the URL and status (exit 2), never a traceback.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InputFormatError, UsageError
from ..usage import Call
from ._base import ImportStats, Record, Rejection, Skip

__all__ = ["PullError", "pull_langfuse", "pull_litellm"]

Fetch = Callable[[str, Mapping[str, str]], Any]


class PullError(InputFormatError):
    """The remote API could not be read (bad URL, credentials, status, body)."""


def http_get_json(url: str, headers: Mapping[str, str], *, timeout: float = 60.0) -> Any:
    """GET ``url`` and decode its JSON body; raise :class:`PullError` naming what failed."""
    req = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace").strip()
        raise PullError(f"GET {url}: HTTP {exc.code} {exc.reason}"
                        + (f": {detail}" if detail else "")) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PullError(f"GET {url}: {reason}") from None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise PullError(f"GET {url}: the body is not JSON ({exc})") from None


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_since(v: str | None) -> datetime | None:
    if not v:
        return None
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise PullError(f"--from {v!r}: expected an ISO 8601 date or time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _state_key(fmt: str, url: str) -> str:
    return f"{fmt}+{url.rstrip('/')}"


def _load_since(store: Any, fmt: str, key: str) -> datetime | None:
    row = store.con.execute("SELECT state FROM imports WHERE format = ? AND path = ?",
                            [fmt, key]).fetchall()
    if not row or row[0][0] is None:
        return None
    return _parse_since(json.loads(row[0][0]).get("since"))


def _save_since(store: Any, fmt: str, key: str, since: datetime, stats: ImportStats) -> None:
    store.con.execute("DELETE FROM imports WHERE format = ? AND path = ?", [fmt, key])
    store.con.execute(
        "INSERT INTO imports (path, format, size_bytes, mtime, lines, accepted, rejected, "
        "imported_at, tail_hash, state) VALUES (?, ?, 0, 0, ?, ?, ?, now(), NULL, ?)",
        [key, fmt, stats.lines, stats.accepted, stats.rejected,
         json.dumps({"since": _iso(since)})])


def _row_ts(row: Any) -> datetime | None:
    if not isinstance(row, Mapping):
        return None
    v = row.get("startTime")
    if isinstance(v, str) and v:
        try:
            t = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return None


def _run(store: Any, importer: Any, fmt: str, key: str,
         pages: Iterator[tuple[str, list[Any]]], since: datetime | None) -> ImportStats:
    from ..store.db import call_key

    stats = ImportStats(format=fmt)
    newest = since
    for where, rows in pages:
        batch: dict[str, Call] = {}
        for i, row in enumerate(rows):
            stats.lines += 1
            ts = _row_ts(row)
            if ts is not None and (newest is None or ts > newest):
                newest = ts
            rec = Record(path=Path(where), line=i + 1, value=row)
            try:
                for out in importer.convert(rec):
                    if isinstance(out, Skip):
                        stats.skip(out.reason)
                        continue
                    stats.calls += 1
                    k = call_key(out)
                    if k in batch:
                        stats.duplicates += 1
                    batch[k] = out
            except (InputFormatError, UsageError, ValueError, TypeError, KeyError) as exc:
                stats.reject(Rejection(path=where, line=i + 1, reason=f"item {i}: {exc}"))
        if batch:
            store.insert_calls(list(batch.values()))
    stats.files = 1
    stats.accepted = stats.calls - stats.duplicates
    if newest is not None:
        _save_since(store, fmt, key, newest, stats)
    return stats


def pull_langfuse(store: Any, *, host: str, public_key: str, secret_key: str,
                  since: str | None = None, limit: int = 100,
                  fetch: Fetch = http_get_json) -> ImportStats:
    """Import Langfuse generations (paged, incremental); see the module docstring."""
    from .langfuse import LangfuseImporter

    base = host.rstrip("/")
    key = _state_key("langfuse", base)
    start = _parse_since(since) or _load_since(store, "langfuse", key)
    auth = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}"}

    def pages() -> Iterator[tuple[str, list[Any]]]:
        page = 1
        while True:
            q: dict[str, Any] = {"type": "GENERATION", "page": page, "limit": limit}
            if start is not None:
                q["fromStartTime"] = _iso(start)
            url = f"{base}/api/public/observations?{urllib.parse.urlencode(q)}"
            doc = fetch(url, headers)
            if not isinstance(doc, Mapping) or not isinstance(doc.get("data"), list):
                raise PullError(f"GET {url}: expected {{\"data\": [...], \"meta\": ...}}")
            yield f"{base} page {page}", list(doc["data"])
            meta = doc.get("meta") or {}
            total = meta.get("totalPages") if isinstance(meta, Mapping) else None
            if not doc["data"] or not isinstance(total, int) or page >= total:
                return
            page += 1

    return _run(store, LangfuseImporter(), "langfuse", key, pages(), start)


def pull_litellm(store: Any, *, url: str, key: str, since: str | None = None,
                 page_size: int = 500, fetch: Fetch = http_get_json,
                 now: datetime | None = None) -> ImportStats:
    """Import a LiteLLM proxy's spend logs (paged, incremental); see the module docstring."""
    from .litellm import LiteLLMImporter

    base = url.rstrip("/")
    skey = _state_key("litellm", base)
    start = _parse_since(since) or _load_since(store, "litellm", skey)
    end = now or datetime.now(UTC)
    fmt_t = "%Y-%m-%d %H:%M:%S"
    headers = {"Authorization": f"Bearer {key}"}
    first = start or datetime(2000, 1, 1, tzinfo=UTC)

    def pages() -> Iterator[tuple[str, list[Any]]]:
        page = 1
        while True:
            q = {"start_date": first.astimezone(UTC).strftime(fmt_t),
                 "end_date": end.astimezone(UTC).strftime(fmt_t), "page": page,
                 "page_size": page_size, "sort_by": "startTime", "sort_order": "asc"}
            u = f"{base}/spend/logs/v2?{urllib.parse.urlencode(q)}"
            doc = fetch(u, headers)
            if not isinstance(doc, Mapping) or not isinstance(doc.get("data"), list):
                raise PullError(f"GET {u}: expected {{\"data\": [...], \"total_pages\": ...}}")
            yield f"{base} page {page}", list(doc["data"])
            total = doc.get("total_pages")
            if not doc["data"] or not isinstance(total, int) or page >= total:
                return
            page += 1

    return _run(store, LiteLLMImporter(), "litellm", skey, pages(), start)
