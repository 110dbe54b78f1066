"""The generic importer's events: one file of interactions → the DuckDB table `good` (one row per distinct
event: user, item, kind, time, value) plus the bad rows, counted with their line numbers.

Runs in DuckDB (its CSV sniffer, vectorised SQL, spilling to disk); nothing prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from foryou.data.importers.common import duplicates_note, plural
from foryou.data.importers.sql import (
    file_columns,
    file_kind,
    first_line,
    resolve_column,
    source_sql,
    sql_ident,
    sql_literal,
    sql_row,
    sql_text,
    time_sql,
)
from foryou.data.manifest import DatasetError
from foryou.vocab import ENGAGEMENT_KINDS

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class BadRow:
    line: int  # 1-based line of the file (the header is line 1); the row number for Parquet
    why: str
    value: str  # the offending value (or the raw line)

    def __str__(self) -> str:
        return f"{self.why} {self.value!r}" if self.value else self.why


@dataclass(frozen=True)
class BadRows:
    """The rows that could not be imported: how many and the first few, with their line numbers."""

    count: int = 0
    examples: tuple[BadRow, ...] = ()
    unit: str = "line"

    def listing(self) -> str:
        more = ", …" if self.count > len(self.examples) else ""
        return "; ".join(f"{self.unit} {b.line}: {b}" for b in self.examples) + more

    def __str__(self) -> str:
        return plural(self.count, "bad row") + (f" ({self.listing()})" if self.examples else "")


@dataclass(frozen=True)
class EventSpec:
    """How the interactions file's columns map onto events (see `import_interactions`)."""

    user: str
    item: str
    time: str
    kind: str | None
    fixed_kind: str
    value: str | None
    positive_min: float | None
    negative_max: float | None
    neutral_kind: str | None
    time_format: str | None
    kind_map: dict[str, str] = field(default_factory=dict)

    @property
    def ratings(self) -> bool:
        return self.positive_min is not None or self.negative_max is not None

    def check(self, on_bad_row: str) -> None:
        for what, k in (("fixed kind", self.fixed_kind), ("neutral kind", self.neutral_kind),
                        *(("kind map", v) for v in self.kind_map.values())):
            if k is not None and k not in ENGAGEMENT_KINDS:
                raise DatasetError(f"{what} {k!r} is not an engagement kind ({', '.join(ENGAGEMENT_KINDS)})")
        if self.ratings and self.value is None:
            raise DatasetError("positive_min / negative_max need a value (rating) column")
        if self.ratings and self.kind is not None:
            raise DatasetError("choose a kind column or rating thresholds, not both")
        if on_bad_row not in ("error", "skip"):
            raise DatasetError(f"on_bad_row must be 'error' or 'skip', not {on_bad_row!r}")


def stage_events(con: duckdb.DuckDBPyConnection, path: Path, spec: EventSpec) -> None:
    """Table `parsed`: every row with its number, raw text, parsed time, kind and value, and why it is bad
    (NULL when it is good)."""
    cols = file_columns(con, path, "ev")

    def col(name: str | None, flag: str) -> str:
        return "NULL::VARCHAR" if name is None else sql_text(sql_ident(resolve_column(cols, name, path, flag)))

    try:
        con.execute(f"CREATE TEMP TABLE ev AS SELECT ordinality AS rownum, {col(spec.user, '--user')} AS u, "
                    f"{col(spec.item, '--item')} AS i, {col(spec.time, '--time')} AS t_raw, "
                    f"lower({col(spec.kind, '--kind')}) AS k_raw, {col(spec.value, '--value')} AS v_raw "
                    f"FROM {source_sql(path, 'ev')} WITH ORDINALITY")
        con.execute(f"""CREATE TEMP TABLE parsed AS
            WITH a AS (SELECT *, {time_sql('t_raw', spec.time_format)} AS t,
                              TRY_CAST(v_raw AS DOUBLE) AS v FROM ev),
                 b AS (SELECT *, {_kind_sql(spec)} AS kind FROM a)
            SELECT *, {_why_sql(spec)} AS why FROM b""")
        con.execute("DROP TABLE ev")
    except duckdb.Error as exc:
        raise DatasetError(f"{path}: cannot read: {first_line(exc)}") from exc


def _kind_sql(spec: EventSpec) -> str:
    if spec.ratings:
        parts = []
        if spec.positive_min is not None:
            parts.append(f"WHEN v >= {float(spec.positive_min)!r} THEN {sql_literal(spec.fixed_kind)}")
        if spec.negative_max is not None:
            parts.append(f"WHEN v <= {float(spec.negative_max)!r} THEN 'not_interested'")
        neutral = "NULL" if spec.neutral_kind is None else sql_literal(spec.neutral_kind)
        return f"CASE {' '.join(parts)} ELSE {neutral} END"
    if spec.kind is None:
        return sql_literal(spec.fixed_kind)
    mapping = {k: k for k in ENGAGEMENT_KINDS} | spec.kind_map
    return "CASE k_raw " + " ".join(f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in mapping.items()) + " END"


def _why_sql(spec: EventSpec) -> str:
    checks = [("u IS NULL", "missing user id", "''"), ("i IS NULL", "missing item id", "''"),
              ("t_raw IS NULL", "missing time", "''"), ("t IS NULL", "unparseable time", "t_raw"),
              ("t < 0", "time before 1970", "t_raw")]
    if spec.kind is not None:
        checks += [("k_raw IS NULL", "missing kind", "''"), ("kind IS NULL", "unknown kind", "k_raw")]
    if spec.value is not None:
        checks += [("v_raw IS NULL", "missing value", "''"), ("v IS NULL", "value not a number", "v_raw"),
                   ("NOT isfinite(v) OR v < 0 OR v > 3e38", "value out of range", "v_raw")]
    whens = " ".join(f"WHEN {cond} THEN {sql_literal(why)} || chr(0) || {shown}" for cond, why, shown in checks)
    return f"CASE {whens} END"


def bad_rows(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[BadRows, int]:
    """(the bad rows, how many rows were read): rows flagged in `parsed` plus malformed CSV lines."""
    (n_flagged, n_parsed) = sql_row(con, "SELECT count(why), count(*) FROM parsed")
    flagged = con.execute(f"SELECT rownum, why FROM parsed WHERE why IS NOT NULL ORDER BY rownum "
                          f"LIMIT {MAX_EXAMPLES}").fetchall()
    kind = file_kind(path)
    rejected: list[tuple[int, str, str]] = []
    if kind == "csv":
        rejected = con.execute("SELECT line, lower(any_value(error_type)), any_value(csv_line) FROM ev_rejects "
                               "GROUP BY line ORDER BY line").fetchall()
    lines = np.array([r[0] for r in rejected], dtype=np.int64)
    examples = [BadRow(int(line), why, text[:80]) for line, why, text in rejected[:MAX_EXAMPLES]]
    for rownum, why in flagged:
        reason, _, shown = why.partition("\0")
        examples.append(BadRow(_line(int(rownum), kind, lines), reason, shown))
    examples.sort(key=lambda b: b.line)
    bad = BadRows(int(n_flagged) + len(rejected), tuple(examples[:MAX_EXAMPLES]),
                  "row" if kind == "parquet" else "line")
    return bad, int(n_parsed) + len(rejected)


def _line(rownum: int, kind: str, rejected_lines: np.ndarray) -> int:
    """The file line of the `rownum`-th parsed row (1-based): after the header and any rejected lines
    before it (one line per row; a quoted field spanning lines shifts later numbers)."""
    if kind != "csv":
        return rownum
    line = rownum + 1
    while True:
        moved = rownum + 1 + int(np.searchsorted(rejected_lines, line, side="right"))
        if moved == line:
            return line
        line = moved


def good_events(con: duckdb.DuckDBPyConnection, spec: EventSpec, path: Path) -> tuple[int, int]:
    """Table `good`: the good events once each (largest value); returns (duplicates, neutral ratings)."""
    value = "v" if spec.value is not None else "1.0"
    con.execute(f"CREATE TEMP TABLE good AS SELECT u, i, kind, t, max({value}) AS v, count(*) AS n "
                "FROM parsed WHERE why IS NULL AND kind IS NOT NULL GROUP BY u, i, kind, t")
    row = sql_row(con, "SELECT count(*), coalesce(sum(n), 0) FROM good")
    (neutral,) = sql_row(con, "SELECT count(*) FROM parsed WHERE why IS NULL AND kind IS NULL")
    if not row[0]:
        raise DatasetError(f"{path}: no event to import")
    return int(row[1]) - int(row[0]), int(neutral)


def event_notes(path: Path, spec: EventSpec, rows_read: int, bad: BadRows, duplicates: int,
                neutral: int) -> list[str]:
    if spec.ratings:
        rules = [f"≥ {spec.positive_min} → {spec.fixed_kind}"] if spec.positive_min is not None else []
        rules += [f"≤ {spec.negative_max} → not_interested"] if spec.negative_max is not None else []
        rules += [f"else → {spec.neutral_kind or 'not imported'}"]
        kinds = f"ratings in {spec.value!r}: " + ", ".join(rules)
    else:
        kinds = f"kind = column {spec.kind!r}" if spec.kind else f"every event is a {spec.fixed_kind}"
        kinds += f", value = column {spec.value!r}" if spec.value else ", value 1"
    time = f"format {spec.time_format!r}" if spec.time_format else "Unix s/ms/µs/ns by magnitude or ISO, UTC"
    notes = [f"{path.name}: {plural(rows_read, 'row')}; user = {spec.user!r}, item = {spec.item!r}, time = "
             f"{spec.time!r} ({time}); {kinds}"]
    if bad.count:
        notes.append(f"{bad} skipped")
    if neutral:
        notes.append(f"{plural(neutral, 'neutral rating')} not imported")
    notes.append(duplicates_note(duplicates))
    return notes
