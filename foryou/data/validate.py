"""Validate a Dataset directory: every problem, one line each, from DuckDB SQL over the Parquet files.

Structure (files, columns, types, manifest counts) is checked from the Parquet footers. Then every column
chunk of every row group is decoded (page CRCs verified where the writer stored them, as Dataset.write
does): a corrupt chunk is a problem, and its table's row checks are skipped (their answers would be
about garbage). DuckDB does not verify page CRCs and skips columns a query's statistics make moot, so
a byte flipped in the middle of a file could otherwise pass unnoticed. Row checks are
declarations in CHECKS (table, column, what is wrong, an SQL predicate flagging an offending row `t`,
optionally a referenced table joined as `r`); one query per table counts the offending rows of all its
checks (and whether its key repeats) in a single scan joined to every table it references. Only counts
and at most five example keys per problem come back to Python. A check whose columns are missing (or of
an unusable type) is skipped: the missing column is the problem reported.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from foryou.data.manifest import DatasetError, read_manifest
from foryou.data.schema import TABLES
from foryou.vocab import ENGAGEMENT_KINDS, POST_KINDS, USER_KINDS

MAX_EXAMPLES = 5
ROW = "row"  # examples identified by 0-based row number in the file (when the key cannot identify them)


@dataclass(frozen=True)
class Problem:
    """One problem. `count` is the number of offending rows, 0 for a problem with a file, column or manifest
    as a whole. `examples` are key values of offending rows (a tuple per row when the key has several
    columns), named by `key`."""

    table: str
    column: str
    check: str
    count: int
    examples: tuple = ()
    key: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        if not self.count:
            return f"{where}: {self.check}"
        text = f"{where}: {self.check} in {self.count} row{'s' if self.count != 1 else ''}"
        if self.examples:
            label = self.key[0] if len(self.key) == 1 else f"({', '.join(self.key)})"
            more = ", …" if self.count > len(self.examples) else ""
            text += f" ({label}={', '.join(_show(e) for e in self.examples)}{more})"
        return text


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Check:
    table: str
    column: str  # the column blamed
    check: str  # what is wrong with an offending row, as a noun phrase
    bad: str  # SQL predicate over `t` (and `r`) true for an offending row
    ref: tuple[str, str, str] | None = None  # (column of t, referenced table, its key column) joined as r
    by_row: bool = False  # identify examples by row number rather than the key


def _one_of(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _refs(table: str, column: str, target: str, key: str) -> Check:
    return Check(
        table,
        column,
        f"unknown {target[:-1]}",
        f"t.{column} IS NOT NULL AND r.{key} IS NULL",
        (column, target, key),
    )


_PARENT = ("parent_id", "posts", "post_id")
_POST = ("post_id", "posts", "post_id")
CHECKS: list[Check] = [
    *(
        Check(t.name, c.name, "null", f"t.{c.name} IS NULL", by_row=c.name in t.key)
        for t in TABLES.values()
        for c in t.columns
        if not c.nullable
    ),
    *(Check(t, "created_at", "negative time", "t.created_at < 0") for t in TABLES),
    *(
        Check(*row)
        for row in (
            ("users", "kind", "unknown kind", f"t.kind NOT IN ({_one_of(USER_KINDS)})"),
            ("posts", "kind", "unknown kind", f"t.kind NOT IN ({_one_of(POST_KINDS)})"),
            ("engagements", "kind", "unknown kind", f"t.kind NOT IN ({_one_of(ENGAGEMENT_KINDS)})"),
            ("posts", "topic", "topic below -1", "t.topic < -1"),
            ("posts", "length", "negative length", "t.length < 0"),
            ("engagements", "value", "negative or non-finite value", "t.value < 0 OR NOT isfinite(t.value)"),
            ("impressions", "position", "negative position", "t.position < 0"),
            ("impressions", "propensity", "not in (0, 1]", "NOT (t.propensity > 0 AND t.propensity <= 1)"),
            ("follows", "dst_id", "self-follow", "t.src_id = t.dst_id"),
            ("posts", "parent_id", "set on an original", "t.kind = 'original' AND t.parent_id IS NOT NULL"),
            ("posts", "parent_id", "null on a reply/repost", "t.kind <> 'original' AND t.parent_id IS NULL"),
            ("posts", "created_at", "before the parent post", "t.created_at < r.created_at", _PARENT),
            ("engagements", "created_at", "before the post", "t.created_at < r.created_at", _POST),
            ("impressions", "created_at", "before the post", "t.created_at < r.created_at", _POST),
        )
    ),
    _refs("posts", "author_id", "users", "user_id"),
    _refs("posts", "parent_id", "posts", "post_id"),
    _refs("follows", "src_id", "users", "user_id"),
    _refs("follows", "dst_id", "users", "user_id"),
    *(_refs(t, c, f"{c[:-3]}s", c) for t in ("engagements", "impressions") for c in ("user_id", "post_id")),
]

_COLUMN_REF = re.compile(r"\b([tr])\.(\w+)\b")


def _family(t: pa.DataType) -> str:
    """Types SQL treats alike: a column of the wrong type but the right family still feeds the checks."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    for name, test in (
        ("int", pa.types.is_integer),
        ("float", pa.types.is_floating),
        ("str", pa.types.is_string),
        ("str", pa.types.is_large_string),
        ("bool", pa.types.is_boolean),
    ):
        if test(t):
            return name
    return str(t)


def validate_dir(path: str | os.PathLike[str]) -> list[Problem]:
    """Every problem of the dataset at `path` (an empty list when it is valid)."""
    path = Path(path)
    problems: list[Problem] = []
    try:
        manifest = read_manifest(path)
    except DatasetError as exc:
        problems.append(Problem("manifest", "", str(exc), 0))
        manifest = None
        if not path.is_dir():
            return problems

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # no bar on the terminal of a long check
    usable: dict[str, set[str]] = {}  # table -> columns the checks may use
    for table in TABLES.values():
        name, file = table.name, path / f"{table.name}.parquet"
        if not file.exists():
            problems.append(Problem(name, "", f"file {file.name} missing", 0))
            continue
        try:
            schema, rows = pq.read_schema(file), pq.read_metadata(file).num_rows
        except (OSError, pa.ArrowException) as exc:
            problems.append(Problem(name, "", f"file {file.name} unreadable: {_first_line(exc)}", 0))
            continue
        usable[name] = set()
        for col in table.columns:
            if col.name not in schema.names:
                problems.append(Problem(name, col.name, "missing column", 0))
                continue
            actual = schema.field(col.name).type
            if actual != col.type:
                problems.append(Problem(name, col.name, f"type {actual}, declared {col.type}", 0))
            if _family(actual) == _family(col.type):
                usable[name].add(col.name)
        if manifest is not None:
            declared = manifest.counts.get(name)
            if declared is None:
                problems.append(Problem(name, "", f"{rows} rows, manifest.counts has no entry", 0))
            elif declared != rows:
                problems.append(Problem(name, "", f"{rows} rows, manifest.counts says {declared}", 0))
        corrupt = _corrupt_chunks(file, name)
        if corrupt:
            problems += corrupt
            del usable[name]  # no row checks on (or against) garbage
        literal = str(file).replace("'", "''")
        con.execute(
            f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{literal}', file_row_number=true)"
        )
    if manifest is not None:
        problems += [
            Problem("manifest", "counts", f"unknown table {t!r}", 0)
            for t in manifest.counts
            if t not in TABLES
        ]

    by_table: dict[str, list[Check]] = defaultdict(list)
    for check in CHECKS:
        if _runnable(check, usable):
            by_table[check.table].append(check)
    for name in TABLES:
        if name in usable:
            try:
                problems += _check_table(con, name, by_table[name], usable[name])
            except duckdb.Error as exc:
                problems.append(Problem(name, "", f"unreadable: {str(exc).splitlines()[0]}", 0))
    con.close()
    return problems


def _corrupt_chunks(file: Path, table: str) -> list[Problem]:
    """Decode every column chunk of every row group, verifying page CRCs; one problem per unreadable
    column (the first row group it fails in)."""
    try:
        reader = pq.ParquetFile(file, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        return [Problem(table, "", f"file {file.name} unreadable: {_first_line(exc)}", 0)]
    problems: list[Problem] = []
    with reader:
        for column in reader.schema_arrow.names:
            for group in range(reader.num_row_groups):
                try:
                    reader.read_row_group(group, columns=[column], use_threads=False)
                except (OSError, pa.ArrowException) as exc:
                    problems.append(
                        Problem(table, column, f"corrupt data in row group {group}: {_first_line(exc)}", 0)
                    )
                    break
    return problems


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _runnable(check: Check, usable: dict[str, set[str]]) -> bool:
    ref = check.ref
    needs = {(ref[1] if a == "r" and ref else check.table, col) for a, col in _COLUMN_REF.findall(check.bad)}
    if ref:
        needs |= {(check.table, ref[0]), (ref[1], ref[2])}
    return all(t in usable and c in usable[t] for t, c in needs)


def _check_table(
    con: duckdb.DuckDBPyConnection, table: str, checks: list[Check], usable: set[str]
) -> list[Problem]:
    """One scan of `table` (joined to every table it references) counts the offending rows of each check
    and tells whether its key repeats; examples are fetched only for the checks that fail."""
    refs = {ref: f"r{i}" for i, ref in enumerate(dict.fromkeys(c.ref for c in checks if c.ref))}

    def sql(check: Check) -> str:  # the predicate, with `r` renamed to its reference's alias
        alias = refs[check.ref] if check.ref else "r"
        return _COLUMN_REF.sub(lambda m: f'{m[1] if m[1] == "t" else alias}."{m[2]}"', check.bad)

    def source(used: list[tuple[str, str, str]]) -> str:
        text = f'"{table}" t'
        for ref in used:
            col, target, refkey, alias = *ref, refs[ref]
            cols = {
                c for chk in checks if chk.ref == ref for a, c in _COLUMN_REF.findall(chk.bad) if a == "r"
            }
            agg = "".join(f', min("{c}") AS "{c}"' for c in sorted(cols - {refkey}))
            text += (
                f' LEFT JOIN (SELECT "{refkey}"{agg} FROM "{target}" GROUP BY "{refkey}") {alias}'
                f' ON t."{col}" = {alias}."{refkey}"'
            )
        return text

    key = TABLES[table].key
    aggregates = [f"count(*) FILTER (WHERE {sql(c)})" for c in checks]
    keyed = set(key) <= usable
    if keyed:  # rows with a full key, and distinct keys among them (hashed: a collision is re-checked)
        cols = [f't."{k}"' for k in key]
        notnull = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        value = cols[0] if len(cols) == 1 else f"hash({', '.join(cols)})"
        aggregates += [
            f"count(*) FILTER (WHERE {notnull})",
            f"count(DISTINCT {value}) FILTER (WHERE {notnull})",
        ]
    if not aggregates:
        return []
    counts = one_row(con, f"SELECT {', '.join(aggregates)} FROM {source(list(refs))}")

    problems = _duplicates(con, table) if keyed and counts[-2] > counts[-1] else []
    for check, count in zip(checks, counts, strict=False):
        if not count:
            continue
        ident = key if keyed and not check.by_row else (ROW,)
        select = ", ".join("t.file_row_number" if k == ROW else f't."{k}"' for k in ident)
        rows = con.execute(
            f"SELECT {select} FROM {source([check.ref] if check.ref else [])} WHERE {sql(check)}"
            f" ORDER BY ALL LIMIT {MAX_EXAMPLES}"
        ).fetchall()
        problems.append(Problem(table, check.column, check.check, int(count), _examples(rows), ident))
    return problems


def _duplicates(con: duckdb.DuckDBPyConnection, table: str) -> list[Problem]:
    """Rows repeating the key of an earlier row (rows with a null key part are the null check's)."""
    key = TABLES[table].key
    cols = ", ".join(f'"{k}"' for k in key)
    notnull = " AND ".join(f'"{k}" IS NOT NULL' for k in key)
    groups = f'SELECT {cols}, count(*) AS n FROM "{table}" WHERE {notnull} GROUP BY ALL HAVING n > 1'
    count = one_row(con, f"SELECT coalesce(sum(n - 1), 0) FROM ({groups})")[0]
    if not count:
        return []
    rows = con.execute(f"SELECT {cols} FROM ({groups}) ORDER BY ALL LIMIT {MAX_EXAMPLES}").fetchall()
    return [Problem(table, ",".join(key), "duplicate key", int(count), _examples(rows), key)]


def one_row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The one row of an aggregate query (which always returns one)."""
    row = con.execute(sql).fetchone()
    if row is None:
        raise DatasetError(f"no row from: {sql}")
    return row


def _examples(rows: list[tuple]) -> tuple:
    return tuple(r[0] if len(r) == 1 else tuple(r) for r in rows)
