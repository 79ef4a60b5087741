"""Query engines: DuckDB (default) and Spark (``--engine spark``).

An engine runs the DuckDB-dialect texts of :mod:`.sql` over ``calls``, ``tasks``
and ``prices`` and returns plain rows (Python ``Decimal`` for money).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ..prices import PriceBook
from ..store.schema import CALL_COLUMNS, DETAIL_COLUMNS
from ._results import Rows
from .pricing import PRICE_COLUMNS, PriceTable, build_price_table
from .source import TASK_COLUMNS, DataSource
from .sql import Filters, detail_present_sql, price_keys_sql, to_dialect

_SPARK_TYPES = {"VARCHAR": "STRING", "BIGINT": "BIGINT", "INTEGER": "INT", "DOUBLE": "DOUBLE",
                "BOOLEAN": "BOOLEAN", "TIMESTAMPTZ": "TIMESTAMP", "DATE": "DATE"}

__all__ = ["DuckDBEngine", "Engine", "Rows", "SparkEngine", "price_data"]


class Engine(Protocol):
    name: str
    dialect: str

    def query(self, sql: str) -> Rows: ...

    def arrow(self, sql: str) -> Any:
        """The result as a pyarrow Table (no Python object per row)."""
        ...

    def set_prices(self, table: PriceTable) -> None: ...


@dataclass
class DuckDBEngine:
    """Runs queries on a :class:`DataSource` connection."""

    source: DataSource
    name: str = "duckdb"
    dialect: str = "duckdb"

    def query(self, sql: str) -> Rows:
        cur = self.source.con.execute(sql)
        cols = tuple(d[0] for d in cur.description)
        return Rows(cols, cur.fetchall())

    def arrow(self, sql: str) -> Any:
        return self.source.con.sql(sql).to_arrow_table()

    def set_prices(self, table: PriceTable) -> None:
        con = self.source.con
        cols = ", ".join(f"{n} {t}" for n, t in PRICE_COLUMNS)
        con.execute(f"CREATE OR REPLACE TEMP TABLE prices ({cols})")
        if table.rows:  # literal VALUES: registering an Arrow table would import pandas
            con.execute(f"INSERT INTO prices VALUES {table.values_sql()}")


@dataclass
class SparkEngine:
    """Runs the transpiled queries on a Spark session (``local[2]`` unless ``master``).

    ``calls`` and ``tasks`` are Parquet files read by Spark itself (a DuckDB store is
    exported to Parquet first), cast to the store's column types. The price table is
    a small DataFrame. Decimal arithmetic runs with
    ``spark.sql.decimalOperations.allowPrecisionLoss=false`` so money stays exact.
    """

    source: DataSource
    master: str = "local[2]"
    name: str = "spark"
    dialect: str = "spark"
    spark: Any = field(default=None, repr=False)
    _tmp: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import tempfile

        if self.spark is None:
            self.spark = spark_session(self.master)
        self.spark.conf.set("spark.sql.decimalOperations.allowPrecisionLoss", "false")
        self.spark.conf.set("spark.sql.session.timeZone", "UTC")
        src = self.source
        self._tmp = tempfile.TemporaryDirectory(prefix="ctxbudget-spark-")
        calls_file = src.parquet if src.parquet is not None else self._export("calls")
        self._view("calls", calls_file, CALL_COLUMNS)
        tasks_file = src.tasks_parquet if src.parquet is not None else None
        self._view("tasks", tasks_file or self._export("tasks"), TASK_COLUMNS)

    def _view(self, name: str, path: Path, columns: tuple[tuple[str, str], ...]) -> None:
        raw = self.spark.read.parquet(str(path))
        have = set(raw.columns)
        raw.createOrReplaceTempView(f"{name}_raw")
        cols = ", ".join(
            f"CAST({n} AS {_SPARK_TYPES[t]}) AS {n}" if n in have
            else f"CAST(NULL AS {_SPARK_TYPES[t]}) AS {n}"
            for n, t in columns)
        self.spark.sql(f"SELECT {cols} FROM {name}_raw").createOrReplaceTempView(name)

    def _export(self, table: str) -> Path:
        out = Path(self._tmp.name) / f"{table}.parquet"
        self.source.con.execute(f"COPY (SELECT * FROM {table}) TO '{out}' (FORMAT parquet)")
        return out

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def query(self, sql: str) -> Rows:
        df = self.spark.sql(to_dialect(sql, "spark"))
        cols = tuple(df.columns)
        return Rows(cols, [tuple(r) for r in df.collect()])

    def arrow(self, sql: str) -> Any:
        return self.spark.sql(to_dialect(sql, "spark")).toArrow()

    def set_prices(self, table: PriceTable) -> None:
        from pyspark.sql.types import (
            BooleanType,
            DateType,
            DecimalType,
            LongType,
            StringType,
            StructField,
            StructType,
            TimestampType,
        )

        types = {"VARCHAR": StringType(), "DATE": DateType(), "BIGINT": LongType(),
                 "TIMESTAMPTZ": TimestampType(),
                 "BOOLEAN": BooleanType(), "DECIMAL(18,9)": DecimalType(18, 9)}
        schema = StructType([StructField(n, types[t], True) for n, t in PRICE_COLUMNS])
        import warnings

        with warnings.catch_warnings():  # pyspark warns about pandas >= 3 on first use
            warnings.simplefilter("ignore", FutureWarning)
            df = self.spark.createDataFrame([list(r) for r in table.rows], schema=schema)
        # a few rows Spark cannot size (an RDD): broadcast, or every join with it shuffles
        # all the calls (sort-merge join)
        from pyspark.sql.functions import broadcast

        broadcast(df).createOrReplaceTempView("prices")


_SESSIONS: dict[str, Any] = {}


def spark_session(master: str = "local[2]") -> Any:
    """A (cached) SparkSession; local masters bind 127.0.0.1."""
    if master in _SESSIONS:
        return _SESSIONS[master]
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    import warnings

    with warnings.catch_warnings():  # pyspark warns about pandas >= 3 on import
        warnings.simplefilter("ignore", FutureWarning)
        from pyspark.sql import SparkSession

    import sys

    # executors (on a cluster's workers too) run this interpreter
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with warnings.catch_warnings():  # ... and again when the session starts
        warnings.simplefilter("ignore", FutureWarning)
        spark = _build_session(SparkSession, master)
    spark.sparkContext.setLogLevel("ERROR")  # after start-up: no per-query warnings
    _SESSIONS[master] = spark
    return spark


def _build_session(session: Any, master: str) -> Any:
    return (
        session.builder.master(master)
        .appName("ctxbudget")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "2g")
        .config("spark.executor.memory", "1g")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )


def price_data(engine: Engine, f: Filters, book: PriceBook) -> PriceTable:
    """Resolve the distinct price keys of the data and install the price table; its
    ``detail`` names the usage detail columns the calls hold values in."""
    keys: list[Any] | None = None
    maybe = DETAIL_NAMES
    source = getattr(engine, "source", None)
    if isinstance(source, DataSource):  # Parquet statistics, whatever engine runs the query
        keys = parquet_price_keys(source, f)
        maybe = parquet_detail_candidates(source)
    if keys is None:
        keys = [tuple(r) for r in engine.query(price_keys_sql(f)).rows]
    table = build_price_table(keys, book)
    if maybe:
        row = engine.query(detail_present_sql(f, maybe)).rows[0]
        table = replace(table, detail=tuple(n for n, v in zip(maybe, row, strict=True) if v))
    engine.set_prices(table)
    return table


#: The usage detail columns of the calls relation (store migration 6).
DETAIL_NAMES: tuple[str, ...] = tuple(n for n, _ in DETAIL_COLUMNS)


def parquet_detail_candidates(source: DataSource) -> tuple[str, ...]:
    """The detail columns that may hold a value: all of them for the store; for a Parquet
    input, those its row-group statistics do not show to be absent or all NULL (a file
    written by ``simulate`` or an older export has none: no scan)."""
    if source.parquet is None:
        return DETAIL_NAMES
    q = str(source.parquet).replace("'", "''")
    names = ", ".join(f"'{n}'" for n in DETAIL_NAMES)
    rows = source.con.execute(f"""
SELECT path_in_schema, SUM(num_values), SUM(stats_null_count), COUNT(stats_null_count),
  COUNT(*)
FROM parquet_metadata('{q}') WHERE path_in_schema IN ({names}) GROUP BY path_in_schema
""").fetchall()
    out = []
    for name, values, nulls, known, groups in rows:
        if known == groups and nulls == values:
            continue  # every value NULL
        out.append(name)
    return tuple(n for n in DETAIL_NAMES if n in out)


_KEY_COLUMNS = ("provider", "model", "service_tier")


def parquet_price_keys(source: DataSource, f: Filters) -> list[Any] | None:
    """The price keys of :func:`~.sql.price_keys_sql` from a Parquet file's row-group
    statistics, without reading its rows; ``None`` when they cannot tell exactly.

    Used when no ``--since`` / ``--until`` applies and every row group holds one and the
    same (provider, model, service tier) — each column all NULL, or min = max (exact
    statistics) with no NULL. The first and last day come from the ``ts`` statistics
    (exact min and max). On a 10M-call file this replaces a 0.25 s scan.
    """
    if source.parquet is None or f.since is not None or f.until is not None:
        return None
    q = str(source.parquet).replace("'", "''")
    rows = source.con.execute(f"""
SELECT path_in_schema, COUNT(*), SUM(num_values), SUM(stats_null_count),
  MIN(stats_min_value), MAX(stats_max_value), COUNT(stats_min_value), COUNT(stats_max_value),
  BOOL_AND(COALESCE(min_is_exact, false)), BOOL_AND(COALESCE(max_is_exact, false)),
  CAST(MIN(TRY_CAST(stats_min AS TIMESTAMPTZ)) AS DATE),
  CAST(MAX(TRY_CAST(stats_max AS TIMESTAMPTZ)) AS DATE),
  COUNT(TRY_CAST(stats_min AS TIMESTAMPTZ)), COUNT(TRY_CAST(stats_max AS TIMESTAMPTZ))
FROM parquet_metadata('{q}')
WHERE path_in_schema IN ('ts', 'provider', 'model', 'service_tier')
GROUP BY path_in_schema""").fetchall()
    stats = {r[0]: r[1:] for r in rows}
    ts = stats.get("ts")
    if ts is None or ts[1] == 0:
        return None
    groups, values, nulls = ts[0], ts[1], ts[2]
    if nulls != 0 or ts[11] != groups or ts[12] != groups:
        return None
    first, last = ts[9], ts[10]
    key: list[str] = []
    for col in _KEY_COLUMNS:
        st = stats.get(col)
        if st is None:  # absent column: NULL in every call
            key.append("")
            continue
        n, vals, nul, lo, hi, n_lo, n_hi, lo_exact, hi_exact = st[:9]
        if n != groups or vals != values:
            return None
        if nul == vals:
            key.append("")
        elif nul == 0 and n_lo == n and n_hi == n and lo_exact and hi_exact and lo == hi:
            key.append(str(lo))
        else:
            return None
    return [(key[0], key[1], key[2], first, last)]
