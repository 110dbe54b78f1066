"""Reading any delimited / Parquet / JSON-lines file through DuckDB: the generic importer's SQL pieces
(its CSV sniffer, typed-text columns, time parsing). Nothing prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from foryou.data.manifest import DatasetError

# Time units of numeric timestamps, by the divisor to seconds (`time_sql` picks one by magnitude).
TIME_UNITS: dict[str, int] = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
PARQUET_SUFFIXES = (".parquet", ".pq")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")


def duck(temp_dir: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to `temp_dir` beyond 1 GB and reads naive times as UTC."""
    con = duckdb.connect(config={"temp_directory": str(temp_dir), "memory_limit": "1GB"})
    con.execute("SET TimeZone = 'UTC'")
    return con


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_text(expr: str) -> str:
    """`expr` as trimmed text, empty → NULL."""
    return f"NULLIF(trim(CAST({expr} AS VARCHAR)), '')"


def file_kind(path: Path) -> str:
    """parquet | json | csv (by extension; everything else goes through the CSV sniffer)."""
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return "json" if name.endswith(JSON_SUFFIXES) else "csv"


def source_sql(path: Path, tag: str) -> str:
    """A DuckDB table function reading `path`. CSV/TSV: the sniffer finds delimiter, quoting and line ends,
    the first line is the header, every value is text, and malformed lines (wrong column count, bad quoting)
    land in the tables `{tag}_rejects` / `{tag}_scans` with their line numbers instead of failing the read."""
    p = sql_literal(str(path))
    kind = file_kind(path)
    if kind == "parquet":
        return f"read_parquet({p})"
    if kind == "json":
        return f"read_json({p}, format='newline_delimited')"
    return (f"read_csv({p}, header=true, all_varchar=true, store_rejects=true, "
            f"rejects_table='{tag}_rejects', rejects_scan='{tag}_scans')")


def file_columns(con: duckdb.DuckDBPyConnection, path: Path, tag: str) -> list[str]:
    """The file's column names (DatasetError when it is missing or unreadable)."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source_sql(path, tag)}").fetchall()]
    except duckdb.Error as exc:
        raise DatasetError(f"{path}: cannot read: {first_line(exc)}") from exc


def sql_row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The first row of a query that returns one (an aggregate), every result fetched."""
    rows = con.execute(sql).fetchall()
    if not rows:
        raise DatasetError(f"no row from: {sql}")
    return tuple(rows[0])


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def resolve_column(columns: list[str], name: str, path: Path, what: str) -> str:
    """The file's column called `name` (exactly, else the one equal ignoring case); DatasetError naming the
    column and the columns the file has when there is none."""
    if name in columns:
        return name
    folded = [c for c in columns if c.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    shown = ", ".join(columns[:20]) + (f", … ({len(columns)} columns)" if len(columns) > 20 else "")
    raise DatasetError(f"{path}: no column {name!r} ({what}); the file has: {shown}")


def time_sql(col: str, time_format: str | None) -> str:
    """SQL turning the text column `col` into Unix seconds (BIGINT; NULL when it does not parse).
    `time_format`: None (a number is seconds below 1e11 (year 5138), else milliseconds below 1e14,
    microseconds below 1e17, else nanoseconds; any other text is an ISO date / date-time, UTC unless it
    names a zone), a unit of TIME_UNITS (numbers only), "iso" (text only) or a strptime pattern."""
    x = f"TRY_CAST({col} AS DOUBLE)"
    by_magnitude = f"CASE WHEN abs({x}) < 1e11 THEN 1 WHEN abs({x}) < 1e14 THEN 1e3 WHEN abs({x}) < 1e17 THEN 1e6 " \
                   "ELSE 1e9 END"
    scale = TIME_UNITS.get(time_format or "", by_magnitude)
    number = f"TRY_CAST(floor({x} / {scale}) AS BIGINT)"
    iso = f"TRY_CAST(floor(epoch(TRY_CAST({col} AS TIMESTAMPTZ))) AS BIGINT)"
    if time_format is None:
        return f"coalesce({number}, {iso})"
    if time_format in TIME_UNITS:
        return number
    if time_format == "iso":
        return iso
    return f"TRY_CAST(floor(epoch(try_strptime({col}, {sql_literal(time_format)}))) AS BIGINT)"
