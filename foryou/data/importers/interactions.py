"""Import any file of interactions (CSV / TSV / Parquet / JSON lines) through a column mapping.

- Each row is one event: `user` acted on `item` at `time`, of kind `fixed_kind` (default `like`), or the
  `kind` column (an engagement kind, any case, or a key of `kind_map`), or, with a `value` column and
  `positive_min` / `negative_max`, a rating: ≥ `positive_min` → `fixed_kind`, ≤ `negative_max` →
  `not_interested`, else `neutral_kind` (default `click`; None: not imported, counted). Value: the
  `value` column (a number ≥ 0), else 1. Exact duplicates (user, item, kind, time) are stored once.
- Time: Unix s / ms / µs / ns (the unit from the values' magnitude) or ISO dates and date-times (UTC
  unless they name a zone); `time_format` overrides: `s`, `ms`, `us`, `ns`, `iso` or a strptime pattern.
- Ids are any strings: users and items are numbered from 1 in order of first appearance (then by
  external id; those without events last); `ids/users.parquet` and `ids/items.parquet` map them back.
- Each item is one original post, by its author (items file) or else by one `catalog` account (user_id =
  post_id + the next power of ten above the largest person id), created at the items file's time or its
  first event, whichever is earlier.
- Items file: columns found by name or `items_columns` (role → column): `id`, `created`, `topic` (a
  category; the 100 most frequent become topics 0…), `author`, `length`, `name` and the post flags.
  Social file: `src` follows `dst` (found by name, else the first two columns), `mutual` → both ways.
- Bad rows (missing id or time, unparseable or pre-1970 time, unknown kind, a value that is not a number
  ≥ 0, a malformed CSV line) are counted with examples and line numbers: `on_bad_row="error"` raises a
  DatasetError naming the count and the first; `"skip"` imports the rest and says so in the notes.

Everything runs in DuckDB (its CSV sniffer, vectorised SQL, spilling to disk); nothing prints.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from foryou.data.dataset import Dataset
from foryou.data.importers.common import (
    Mapped,
    catalog_offset,
    dedupe_follows,
    duck,
    duplicates_note,
    file_columns,
    file_kind,
    first_line,
    plural,
    resolve_column,
    source_sql,
    sql_ident,
    sql_literal,
    sql_row,
    sql_text,
    time_sql,
)
from foryou.data.manifest import DatasetError
from foryou.logs import Progress
from foryou.vocab import ENGAGEMENT_KINDS, NEGATIVE

NAME = "interactions"
VERSION = "0.1.0"
MAX_TOPICS = 100
MAX_EXAMPLES = 5
ID_FILES = {"users": "ids/users.parquet", "items": "ids/items.parquet"}
FLAGS = ("has_media", "has_link", "is_nsfw", "is_toxic", "is_spam", "is_misinfo")
ITEM_ROLES: dict[str, tuple[str, ...]] = {
    "id": ("item_id", "item", "id"), "created": ("created_at", "created", "time", "timestamp", "date"),
    "topic": ("topic", "category", "genre"), "author": ("author", "author_id", "owner", "owner_id", "creator"),
    "length": ("length", "text_length", "len"), "name": ("name", "title", "handle"),
    **{flag: (flag,) for flag in FLAGS},
}
SOCIAL_ROLES: dict[str, tuple[str, ...]] = {
    "src": ("src", "src_id", "source", "follower", "follower_id", "from"),
    "dst": ("dst", "dst_id", "target", "followee", "followed", "followed_id", "friend", "friend_id", "to"),
}
BadRowPolicy = Literal["error", "skip"]


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


@dataclass
class InteractionsImport:
    """The imported Dataset, its external-id maps and what the import read, skipped and merged."""

    dataset: Dataset
    user_ids: pa.Table  # external_id → user_id
    item_ids: pa.Table  # external_id → post_id
    rows_read: int
    bad: BadRows
    duplicates: int
    neutral: int  # ratings between the thresholds, not imported (neutral_kind None)

    def write(self, out: str | Path) -> Path:
        """The dataset with its id maps (`ids/users.parquet`, `ids/items.parquet`), atomically."""
        return self.dataset.write(out, extra_files={ID_FILES["users"]: _parquet(self.user_ids),
                                                    ID_FILES["items"]: _parquet(self.item_ids)})

    def summary(self) -> dict[str, Any]:
        counts = self.dataset.manifest.counts
        lo, hi = self.dataset.manifest.time_range
        return {"rows read": self.rows_read, "imported": counts.get("engagements", 0), "bad rows": self.bad.count,
                **({"first bad rows": self.bad.listing()} if self.bad.count else {}), "duplicates": self.duplicates,
                **({"neutral (not imported)": self.neutral} if self.neutral else {}),
                "users": self.user_ids.num_rows, "items": self.item_ids.num_rows, "follows": counts.get("follows", 0),
                "time range": f"{_iso(lo)} … {_iso(hi)}"}


@dataclass(frozen=True)
class _Spec:
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


def import_interactions(
    path: str | Path, out: str | Path | None = None, *, user: str, item: str, time: str,
    kind: str | None = None, fixed_kind: str = "like", value: str | None = None,
    positive_min: float | None = None, negative_max: float | None = None, neutral_kind: str | None = "click",
    time_format: str | None = None, kind_map: Mapping[str, str] | None = None,
    items: str | Path | None = None, items_columns: Mapping[str, str] | None = None,
    social: str | Path | None = None, social_columns: Mapping[str, str] | None = None,
    social_mutual: bool = False, on_bad_row: BadRowPolicy = "error", name: str = "",
    progress: Progress | None = None,
) -> InteractionsImport:
    """Import a file of interactions (see the module docstring); written to `out` (with its id maps) when
    given. DatasetError for a missing file or column, a bad option, or bad rows under `on_bad_row="error"`."""
    path = Path(path)
    spec = _Spec(user, item, time, kind, fixed_kind, value, positive_min, negative_max, neutral_kind,
                 time_format, {k.strip().lower(): v for k, v in (kind_map or {}).items()})
    spec.check(on_bad_row)
    report = progress or (lambda stage, fraction: None)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="foryou-import-") as tmp, duck(tmp) as con:
        report("read", 0.0)
        _stage_events(con, path, spec)
        bad, rows_read = _bad_rows(con, path)
        if bad.count and on_bad_row == "error":
            first = bad.examples[0]
            raise DatasetError(f"{path}: {plural(bad.count, 'bad row')}, the first at {bad.unit} {first.line}: "
                               f"{first} (--on-bad-row skip imports the rest)")
        report("read", 1.0)
        duplicates, neutral = _good_events(con, spec, path)
        notes += _event_notes(path, spec, rows_read, bad, duplicates, neutral)
        notes += _read_items(con, Path(items), dict(items_columns or {}), spec) if items else _no_items(con)
        notes += _read_social(con, Path(social) if social else None, dict(social_columns or {}), social_mutual)
        report("tables", 0.0)
        mapped, user_ids, item_ids = _tables(con, notes)
    mapped.name = name or path.name.split(".")[0]
    report("tables", 1.0)
    result = InteractionsImport(mapped.build(), user_ids, item_ids, rows_read, bad, duplicates, neutral)
    if out is not None:
        result.write(out)
    return result


# -- the interactions file -------------------------------------------------------------------------


def _stage_events(con: duckdb.DuckDBPyConnection, path: Path, spec: _Spec) -> None:
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


def _kind_sql(spec: _Spec) -> str:
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


def _why_sql(spec: _Spec) -> str:
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


def _bad_rows(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[BadRows, int]:
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


def _good_events(con: duckdb.DuckDBPyConnection, spec: _Spec, path: Path) -> tuple[int, int]:
    """Table `good`: the good events once each (largest value); returns (duplicates, neutral ratings)."""
    value = "v" if spec.value is not None else "1.0"
    con.execute(f"CREATE TEMP TABLE good AS SELECT u, i, kind, t, max({value}) AS v, count(*) AS n "
                "FROM parsed WHERE why IS NULL AND kind IS NOT NULL GROUP BY u, i, kind, t")
    row = sql_row(con, "SELECT count(*), coalesce(sum(n), 0) FROM good")
    (neutral,) = sql_row(con, "SELECT count(*) FROM parsed WHERE why IS NULL AND kind IS NULL")
    if not row[0]:
        raise DatasetError(f"{path}: no event to import")
    return int(row[1]) - int(row[0]), int(neutral)


def _event_notes(path: Path, spec: _Spec, rows_read: int, bad: BadRows, duplicates: int,
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
    notes.append(f"external ids: {ID_FILES['users']} (external_id → user_id) and {ID_FILES['items']} "
                 "(external_id → post_id), numbered from 1 in order of first appearance")
    return notes


# -- the items and social files --------------------------------------------------------------------


def _roles(cols: list[str], roles: dict[str, tuple[str, ...]], given: dict[str, str], path: Path,
           ) -> dict[str, str]:
    """role → the file's column: as `given` (which must exist), else the first conventional name found."""
    unknown = set(given) - set(roles)
    if unknown:
        raise DatasetError(f"{path}: unknown column role(s) {', '.join(sorted(unknown))}; "
                           f"roles: {', '.join(roles)}")
    found = {role: resolve_column(cols, col, path, role) for role, col in given.items()}
    lower = {c.lower(): c for c in reversed(cols)}
    for role, names in roles.items():
        hit = next((lower[n.lower()] for n in names
                    if n.lower() in lower and lower[n.lower()] not in found.values()), None)
        if role not in found and hit is not None:
            found[role] = hit
    return found


def _no_items(con: duckdb.DuckDBPyConnection) -> list[str]:
    con.execute("CREATE TEMP TABLE item_meta AS SELECT NULL::VARCHAR AS id, NULL::BIGINT AS created, "
                "NULL::VARCHAR AS topic, NULL::VARCHAR AS author, 0::BIGINT AS length, NULL::VARCHAR AS name, "
                + ", ".join(f"false AS {f}" for f in FLAGS) + " WHERE false")
    return []


def _read_items(con: duckdb.DuckDBPyConnection, path: Path, given: dict[str, str], spec: _Spec) -> list[str]:
    """Table `item_meta` (one row per item id, the first listed) from the items file."""
    cols = file_columns(con, path, "items")
    roles = _roles(cols, {**ITEM_ROLES, "id": (spec.item, *ITEM_ROLES["id"])}, given, path)
    roles["id"] = roles.get("id") or resolve_column(cols, spec.item, path, "the item id")

    def text(role: str) -> str:
        return sql_text(sql_ident(roles[role])) if role in roles else "NULL"

    created = text("created")
    flags = ", ".join(f"coalesce(TRY_CAST({text(f)} AS BOOLEAN), TRY_CAST({text(f)} AS DOUBLE) <> 0, false) AS {f}"
                      for f in FLAGS)
    try:
        con.execute(f"""CREATE TEMP TABLE item_meta AS SELECT {text('id')} AS id,
              {time_sql(created, spec.time_format)} AS created, {text('topic')} AS topic,
              {text('author')} AS author,
              coalesce(TRY_CAST(least(greatest(TRY_CAST({text('length')} AS DOUBLE), 0), 2147483647) AS BIGINT), 0)
                AS length, {text('name')} AS name, {flags}
            FROM {source_sql(path, 'items')} WITH ORDINALITY WHERE {text('id')} IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY {text('id')} ORDER BY ordinality) = 1""")
    except duckdb.Error as exc:
        raise DatasetError(f"{path}: cannot read: {first_line(exc)}") from exc
    (n,) = sql_row(con, "SELECT count(*) FROM item_meta")
    used = ", ".join(f"{role} = {col!r}" for role, col in roles.items())
    return [f"items file {path.name}: {plural(int(n), 'item')}; {used}"]


def _read_social(con: duckdb.DuckDBPyConnection, path: Path | None, given: dict[str, str], mutual: bool,
                 ) -> list[str]:
    """Table `edges` (src follows dst, external ids) from the social file; mutual → both directions."""
    if path is None:
        con.execute("CREATE TEMP TABLE edges (src VARCHAR, dst VARCHAR)")
        return []
    cols = file_columns(con, path, "social")
    roles = _roles(cols, SOCIAL_ROLES, given, path)
    rest = [c for c in cols if c not in roles.values()]
    for role in ("src", "dst"):
        if role not in roles and rest:
            roles[role] = rest.pop(0)
    if len(roles) < 2:
        raise DatasetError(f"{path}: need two columns (src, dst); the file has: {', '.join(cols)}")
    src, dst = sql_text(sql_ident(roles["src"])), sql_text(sql_ident(roles["dst"]))
    both = f" UNION ALL SELECT {dst}, {src} FROM {source_sql(path, 'social2')}" if mutual else ""
    try:
        con.execute(f"CREATE TEMP TABLE edges AS SELECT * FROM (SELECT {src} AS src, {dst} AS dst "
                    f"FROM {source_sql(path, 'social')}{both}) WHERE src IS NOT NULL AND dst IS NOT NULL")
    except duckdb.Error as exc:
        raise DatasetError(f"{path}: cannot read: {first_line(exc)}") from exc
    (n,) = sql_row(con, "SELECT count(*) FROM edges")
    how = "mutual: both directions" if mutual else "directed"
    return [f"social file {path.name}: {plural(int(n), 'edge')} ({how}), src = {roles['src']!r}, "
            f"dst = {roles['dst']!r}, dated at the dataset start"]


# -- ids and the schema's tables ---------------------------------------------------------------------


def _tables(con: duckdb.DuckDBPyConnection, notes: list[str]) -> tuple[Mapped, pa.Table, pa.Table]:
    """The mapped tables plus the id maps (external_id → user_id, external_id → post_id)."""
    con.execute("""CREATE TEMP TABLE uid AS SELECT ext, row_number() OVER (ORDER BY first_t NULLS LAST, ext) AS id,
        first_t FROM (SELECT ext, min(first_t) AS first_t FROM (
            SELECT u AS ext, t AS first_t FROM good
            UNION ALL SELECT author, NULL FROM item_meta WHERE author IS NOT NULL
            UNION ALL SELECT src, NULL FROM edges UNION ALL SELECT dst, NULL FROM edges) GROUP BY ext)""")
    con.execute("""CREATE TEMP TABLE iid AS SELECT ext, row_number() OVER (ORDER BY first_t NULLS LAST, ext) AS id,
        first_t FROM (SELECT ext, min(first_t) AS first_t FROM (
            SELECT i AS ext, t AS first_t FROM good UNION ALL SELECT id, NULL FROM item_meta) GROUP BY ext)""")
    con.execute(f"""CREATE TEMP TABLE topics AS SELECT topic, row_number() OVER (ORDER BY n DESC, topic) - 1 AS tid
        FROM (SELECT topic, count(*) AS n FROM item_meta WHERE topic IS NOT NULL GROUP BY topic)
        QUALIFY tid < {MAX_TOPICS}""")
    (start, n_persons) = sql_row(con, "SELECT (SELECT min(t) FROM good), (SELECT count(*) FROM uid)")
    offset = catalog_offset(int(n_persons))
    eng = con.sql("""SELECT uu.id AS user_id, pp.id AS post_id, kind, t AS created_at, CAST(v AS FLOAT) AS value
        FROM good JOIN uid uu ON good.u = uu.ext JOIN iid pp ON good.i = pp.ext
        ORDER BY created_at, user_id, post_id, kind""").to_arrow_table()
    con.execute(f"""CREATE TEMP TABLE post AS SELECT p.id AS post_id, a.id AS author, p.ext,
            coalesce(least(m.created, p.first_t), {int(start)}) AS created_at, m.created > p.first_t AS moved,
            coalesce(CAST(tp.tid AS SMALLINT), -1) AS topic, coalesce(m.length, 0) AS length, m.name,
            {', '.join(f'coalesce(m.{f}, false) AS {f}' for f in FLAGS)}
        FROM iid p LEFT JOIN item_meta m ON m.id = p.ext LEFT JOIN uid a ON a.ext = m.author
        LEFT JOIN topics tp ON tp.topic = m.topic""")
    posts = con.sql(f"""SELECT post_id, coalesce(author, post_id + {offset}) AS author_id, created_at,
        'original' AS kind, NULL::BIGINT AS parent_id, topic, has_media, has_link, length, is_nsfw, is_toxic,
        is_spam, is_misinfo FROM post ORDER BY post_id""").to_arrow_table()
    users = con.sql(f"""SELECT id AS user_id, ext AS handle, 'person' AS kind,
            coalesce(first_t, {int(start)}) AS created_at FROM uid
        UNION ALL SELECT post_id + {offset}, coalesce(name, ext), 'catalog', created_at FROM post
            WHERE author IS NULL ORDER BY user_id""").to_arrow_table()
    notes += _table_notes(con, offset)
    follows = _follows(con, int(start), notes)
    topic_names = [r[0] for r in con.execute("SELECT topic FROM topics ORDER BY tid").fetchall()]
    positives_only = not any(k in NEGATIVE for k in set(eng["kind"].to_pylist()))
    config = {"topics": topic_names, "catalog_offset": offset, "id_files": ID_FILES}
    user_ids = con.sql("SELECT ext AS external_id, id AS user_id FROM uid ORDER BY id").to_arrow_table()
    item_ids = con.sql("SELECT ext AS external_id, id AS post_id FROM iid ORDER BY id").to_arrow_table()
    return Mapped(NAME, VERSION, users, posts, eng, follows, positives_only=positives_only, notes=notes,
                  config=config), user_ids, item_ids


def _table_notes(con: duckdb.DuckDBPyConnection, offset: int) -> list[str]:
    row = sql_row(con, "SELECT count(*) FILTER (WHERE author IS NULL), count(*) FILTER (WHERE moved), "
                      "(SELECT count(DISTINCT topic) FROM item_meta) FROM post")
    n_catalog, n_moved, n_topics = (int(x) for x in row)
    notes = []
    if n_catalog:
        notes.append(f"{plural(n_catalog, 'item')} without an author → catalog accounts: user_id = post_id + "
                     f"{offset:,} (handle = the item's name or external id)")
    if n_moved:
        notes.append(f"{plural(n_moved, 'item')} created after its first event: created at that event")
    if n_topics:
        kept = min(n_topics, MAX_TOPICS)
        notes.append(f"topics: the {kept:,} categories most frequent in the items file, 0 = most frequent"
                     + (f"; {n_topics - kept:,} rarer ones → -1" if n_topics > kept else ""))
    return notes


def _follows(con: duckdb.DuckDBPyConnection, start: int, notes: list[str]) -> pa.Table | None:
    edges = con.execute("SELECT s.id, d.id FROM edges JOIN uid s ON s.ext = edges.src "
                        "JOIN uid d ON d.ext = edges.dst").fetchnumpy()
    src, dst = list(edges.values())
    if not len(src):
        return None
    follows, n_self, n_dup = dedupe_follows(np.asarray(src), np.asarray(dst), start)
    if n_self or n_dup:
        notes.append(f"follows: {plural(n_self, 'self-follow')} and {plural(n_dup, 'duplicate edge')} dropped")
    return follows


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")
