"""Any table of calls: CSV, JSON Lines / JSON, or Parquet, with a column mapping.

Each row is one call. Target fields (the ``Call`` / ``Usage`` names): ``ts``,
``model``, ``provider``, ``input_tokens``, ``cache_read_tokens``,
``cache_write_5m_tokens``, ``cache_write_1h_tokens``, ``cache_write_tokens`` (=
5-minute writes), ``output_tokens``, ``reasoning_tokens``, ``request_id``,
``task_id``, ``session_id``, ``task_type``, ``latency_ms``, ``status``,
``service_tier``. A column with the target's own name is used unless ``mapping``
says otherwise: ``--map input_tokens=prompt_uncached,ts=timestamp``.

``input_tokens`` is uncached input unless ``inclusive`` (``--inclusive``): then the
input column includes the cache reads and writes, which are subtracted (a row
where they exceed it is rejected). ``reasoning_tokens`` is a subset of output.
Without ``provider`` the provider is guessed from the model name. Without
``request_id`` the key is a hash of the row's content, so re-importing the same
rows is still idempotent. Parquet files are read in record batches (streaming).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import InputFormatError
from ..usage import Call, Usage
from ._base import Importer, Record, csv_records, json_records, jsonl_records, parse_ts
from ._guess import int_cell, provider_for

__all__ = ["FIELDS", "TableImporter", "parse_mapping", "register"]

FIELDS: tuple[str, ...] = (
    "ts", "model", "provider", "input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
    "cache_write_1h_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
    "request_id", "task_id", "session_id", "task_type", "latency_ms", "status", "service_tier",
)
_TS_FALLBACKS = ("ts", "timestamp", "time", "created_at", "start_time")


def parse_mapping(text: str | None) -> dict[str, str]:
    """``"input_tokens=prompt_uncached,ts=timestamp"`` -> ``{"input_tokens": ...}``."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        target, eq, column = part.partition("=")
        target, column = target.strip(), column.strip()
        if not eq or not column:
            raise InputFormatError(f"--map: {part!r} is not FIELD=COLUMN")
        if target not in FIELDS:
            raise InputFormatError(
                f"--map: unknown field {target!r}; fields: {', '.join(FIELDS)}")
        out[target] = column
    return out


class TableImporter(Importer):
    name = "table"
    description = "CSV / JSONL / Parquet table of calls with a column mapping (--map, --inclusive)"
    patterns = ("*.csv", "*.jsonl", "*.ndjson", "*.json", "*.parquet")

    def __init__(self, *, mapping: Mapping[str, str] | str | None = None,
                 inclusive: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.mapping = parse_mapping(mapping) if isinstance(mapping, str) or mapping is None \
            else dict(mapping)
        for target in self.mapping:
            if target not in FIELDS:
                raise InputFormatError(f"mapping: unknown field {target!r}")
        self.inclusive = inclusive

    def records(self, path: Path) -> Iterator[Record]:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return self._checked(path, csv_records(path))
        if suffix == ".parquet":
            return self._checked(path, _parquet_records(path))
        if suffix == ".json":
            return json_records(path)
        return jsonl_records(path)

    def _checked(self, path: Path, records: Iterator[Record]) -> Iterator[Record]:
        """``records`` of a file with a header (CSV, Parquet: every row has its columns),
        checked against the mapping at the first row: a mapped column the header lacks,
        or no model / time column, is one error for the file (the import stops, exit 2),
        not one rejection per row."""
        first = True
        for rec in records:
            if first and isinstance(rec.value, Mapping):
                first = False
                self.check_columns(path, list(rec.value))
            yield rec

    def check_columns(self, path: Path, columns: list[str]) -> None:
        """Raise :class:`InputFormatError` naming ``path`` when a mapped column is not in
        ``columns`` or no column gives the model or the time."""
        have = set(columns)
        shown = ", ".join(columns[:15]) + (", ..." if len(columns) > 15 else "")
        for target, col in self.mapping.items():
            if col not in have:
                raise InputFormatError(f"{path}: --map {target}={col}: no column {col!r} in "
                                       f"the header (columns: {shown})")
        if "model" not in self.mapping and "model" not in have:
            raise InputFormatError(f"{path}: no 'model' column (columns: {shown}); map one "
                                   "with --map model=COLUMN")
        if "ts" not in self.mapping and not have.intersection(_TS_FALLBACKS):
            raise InputFormatError(f"{path}: no time column ({', '.join(_TS_FALLBACKS)}; "
                                   f"columns: {shown}); map one with --map ts=COLUMN")

    def _get(self, row: Mapping[str, Any], target: str) -> Any:
        col = self.mapping.get(target)
        if col is not None:
            if col not in row:
                raise InputFormatError(f"column {col!r} (mapped to {target}) is missing")
            return row[col]
        if target == "ts":
            for name in _TS_FALLBACKS:
                if name in row:
                    return row[name]
            return None
        return row.get(target)

    def convert(self, rec: Record) -> Iterable[Any]:
        row = rec.value
        if not isinstance(row, Mapping):
            raise InputFormatError(f"expected a row object, got {type(row).__name__}")
        g = self._get
        model = g(row, "model")
        if not model:
            raise InputFormatError("model is missing (map it with --map model=COLUMN)")
        tok = {t: int_cell(g(row, t), t) for t in (
            "input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
            "cache_write_1h_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")}
        w5 = tok["cache_write_5m_tokens"] + tok["cache_write_tokens"]
        inp = tok["input_tokens"]
        if self.inclusive:
            cached = tok["cache_read_tokens"] + w5 + tok["cache_write_1h_tokens"]
            if cached > inp:
                raise InputFormatError(
                    f"cache tokens ({cached}) exceed the inclusive input_tokens ({inp})")
            inp -= cached
        usage = Usage(input_tokens=inp, cache_read_tokens=tok["cache_read_tokens"],
                      cache_write_5m_tokens=w5, cache_write_1h_tokens=tok["cache_write_1h_tokens"],
                      output_tokens=tok["output_tokens"], reasoning_tokens=tok["reasoning_tokens"])
        latency = g(row, "latency_ms")
        rid = g(row, "request_id")
        status = g(row, "status")
        yield Call(
            ts=parse_ts(g(row, "ts"), self.mapping.get("ts", "ts")), model=str(model),
            provider=provider_for(str(model), g(row, "provider")), usage=usage,
            request_id=str(rid) if rid not in (None, "") else None,
            task_id=_str(g(row, "task_id")), session_id=_str(g(row, "session_id")),
            task_type=_str(g(row, "task_type")),
            latency_ms=float(latency) if latency not in (None, "") else None,
            status=str(status) if status else "ok", service_tier=_str(g(row, "service_tier")),
            source="table", input_inclusive=self.inclusive,
        )


def _str(v: Any) -> str | None:
    return None if v in (None, "") else str(v)


def _parquet_records(path: Path) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        yield Record(path=path, line=1, value=InputFormatError(f"not a Parquet file ({exc})"))
        return
    size = path.stat().st_size
    rows_total = max(1, pf.metadata.num_rows)
    share = size // rows_total
    n = 0
    batches = pf.iter_batches(batch_size=65536)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, ValueError, pa.ArrowException) as exc:  # damaged pages
            yield Record(path=path, line=n + 1, value=InputFormatError(
                f"rows from {n + 1} on cannot be read ({_first_line(exc)})"))
            return
        try:
            rows = batch.to_pylist()
        except (ValueError, OverflowError, pa.ArrowException):  # a value Python cannot hold
            rows = [_row(batch, i) for i in range(batch.num_rows)]
        for row in rows:
            n += 1
            yield Record(path=path, line=n, value=row, nbytes=share)


def _row(batch: Any, i: int) -> Any:
    """Row ``i`` of a record batch, or the InputFormatError saying why it cannot be read
    (a timestamp past year 9999, a date before year 1...)."""
    import pyarrow as pa

    try:
        return batch.slice(i, 1).to_pylist()[0]
    except (ValueError, OverflowError, pa.ArrowException) as exc:
        return InputFormatError(f"a value cannot be read ({_first_line(exc)})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def register(registry: Any) -> None:
    registry.add(TableImporter)
