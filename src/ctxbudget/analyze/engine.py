"""Query engines: DuckDB (default) and Spark (``--engine spark``).

An engine runs the DuckDB-dialect texts of :mod:`.sql` over ``calls``, ``tasks``
and ``prices`` and returns plain rows (Python ``Decimal`` for money).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..prices import PriceBook
from ..store.schema import CALL_COLUMNS
from .pricing import PRICE_COLUMNS, PriceTable, build_price_table
from .source import DataSource
from .sql import Filters, price_keys_sql, to_dialect

_SPARK_TYPES = {"VARCHAR": "STRING", "BIGINT": "BIGINT", "INTEGER": "INT", "DOUBLE": "DOUBLE",
                "BOOLEAN": "BOOLEAN", "TIMESTAMPTZ": "TIMESTAMP"}

__all__ = ["DuckDBEngine", "Engine", "Rows", "SparkEngine", "price_data"]


@dataclass(frozen=True, slots=True)
class Rows:
    """Column names and row tuples of one result."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


class Engine(Protocol):
    name: str
    dialect: str

    def query(self, sql: str) -> Rows: ...

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

    def set_prices(self, table: PriceTable) -> None:
        con = self.source.con
        cols = ", ".join(f"{n} {t}" for n, t in PRICE_COLUMNS)
        con.execute(f"CREATE OR REPLACE TEMP TABLE prices ({cols})")
        if table.rows:
            con.register("_ctxb_prices", table.to_arrow())
            try:
                con.execute("INSERT INTO prices SELECT * FROM _ctxb_prices")
            finally:
                con.unregister("_ctxb_prices")


@dataclass
class SparkEngine:
    """Runs the transpiled queries on a Spark session (``local[2]`` unless ``master``).

    ``calls`` and ``tasks`` come from Parquet files (read by Spark itself) or, for a
    DuckDB store, from an Arrow export of its tables. Decimal arithmetic runs with
    ``spark.sql.decimalOperations.allowPrecisionLoss=false`` so money stays exact.
    """

    source: DataSource
    master: str = "local[2]"
    name: str = "spark"
    dialect: str = "spark"
    spark: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.spark is None:
            self.spark = spark_session(self.master)
        self.spark.conf.set("spark.sql.decimalOperations.allowPrecisionLoss", "false")
        self.spark.conf.set("spark.sql.session.timeZone", "UTC")
        src = self.source
        if src.parquet is not None:
            # Spark reads the file itself; the view casts to the store's types.
            self.spark.read.parquet(str(src.parquet)).createOrReplaceTempView("calls_raw")
            have = set(self.spark.table("calls_raw").columns)
            cols = ", ".join(
                f"CAST({n} AS {_SPARK_TYPES[t]}) AS {n}" if n in have
                else f"CAST(NULL AS {_SPARK_TYPES[t]}) AS {n}"
                for n, t in CALL_COLUMNS)
            calls = self.spark.sql(f"SELECT {cols} FROM calls_raw")
        else:
            calls = self._from_duck("SELECT * FROM calls")
        calls.createOrReplaceTempView("calls")
        self._from_duck("SELECT * FROM tasks").createOrReplaceTempView("tasks")

    def _from_duck(self, sql: str) -> Any:
        table = self.source.con.execute(sql).fetch_arrow_table()
        return _arrow_to_spark(self.spark, table)

    def query(self, sql: str) -> Rows:
        df = self.spark.sql(to_dialect(sql, "spark"))
        cols = tuple(df.columns)
        return Rows(cols, [tuple(r) for r in df.collect()])

    def set_prices(self, table: PriceTable) -> None:
        _arrow_to_spark(self.spark, table.to_arrow()).createOrReplaceTempView("prices")


def _arrow_to_spark(spark: Any, table: Any) -> Any:
    import pyarrow as pa

    # Spark wants naive-UTC or tz timestamps in microseconds; cast for safety.
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_timestamp(t):
            t = pa.timestamp("us", tz="UTC")
        fields.append(pa.field(f.name, t))
    table = table.cast(pa.schema(fields))
    if table.num_rows == 0:
        from pyspark.sql.pandas.types import from_arrow_schema

        return spark.createDataFrame([], from_arrow_schema(table.schema))
    return spark.createDataFrame(table.to_pandas(), schema=_spark_schema(table.schema))


def _spark_schema(schema: Any) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


_SESSIONS: dict[str, Any] = {}


def spark_session(master: str = "local[2]") -> Any:
    """A (cached) SparkSession; local masters bind 127.0.0.1."""
    if master in _SESSIONS:
        return _SESSIONS[master]
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(master)
        .appName("ctxbudget")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    _SESSIONS[master] = spark
    return spark


def price_data(engine: Engine, f: Filters, book: PriceBook) -> PriceTable:
    """Resolve the distinct price keys of the data and install the price table."""
    keys: list[Any] = [tuple(r) for r in engine.query(price_keys_sql(f)).rows]
    table = build_price_table(keys, book)
    engine.set_prices(table)
    return table
