"""What every importer shares: reading a source, building the schema's tables, one path to a Dataset.

A native importer is a thin mapping from one source's files onto flat tables: it reads them
(`require_dir`, `require_file`, `read_delimited`), maps columns with the helpers below (`map_kinds`,
`names_or_handles`, `with_unlisted`, …), says what it dropped or assumed in notes, and hands the result to
`importers.flat.build_flat`: the same DuckDB table builder as `foryou import interactions`
(`importers.tables`), which ends in `Mapped(...).build()` — the one path that writes the manifest (split by
engagement-time quantiles) and conforms every table to the schema.

Everything is vectorised (pyarrow / numpy); nothing prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from foryou.data.dataset import Dataset
from foryou.data.lookup import rows_of
from foryou.data.manifest import DatasetError, Manifest, split_by_quantiles
from foryou.data.schema import empty_table

# -- reading a source ----------------------------------------------------------------------------


def require_dir(src: str | Path, what: str) -> Path:
    """`src` as a Path; DatasetError when it is not an existing directory."""
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(f"{src}: {what} source directory not found")
    return src


def require_file(src: Path, name: str, what: str) -> Path:
    """`src / name`; DatasetError when the file is missing."""
    path = src / name
    if not path.is_file():
        raise DatasetError(f"{path}: expected {what} file {name} not found")
    return path


def read_delimited(
    path: Path,
    columns: dict[str, pa.DataType | None],
    delimiter: str,
    header: bool,
    encoding: str = "utf8",
) -> pa.Table:
    """Read a delimited text file (gzip by extension) into typed columns.

    With `header`, the file's header must name the `columns`; without, `columns` name every field in
    order. Columns typed `None` are skipped. Quoting is off: these formats never quote, and titles
    contain stray quote characters.
    """
    wanted = {name: typ for name, typ in columns.items() if typ is not None}
    read = pv.ReadOptions(encoding=encoding, column_names=None if header else list(columns))
    convert = pv.ConvertOptions(column_types=wanted, include_columns=list(wanted))
    try:
        return pv.read_csv(
            path,
            read_options=read,
            parse_options=pv.ParseOptions(delimiter=delimiter, quote_char=False),
            convert_options=convert,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"{path}: cannot parse: {first}") from exc


def column(table: pa.Table, col: str, dtype: type = np.int64) -> np.ndarray:
    """A table column as a numpy array of `dtype` (ids default to int64)."""
    return table[col].to_numpy().astype(dtype, copy=False)


def keep_rows(table: pa.Table, mask: pa.ChunkedArray | pa.Array) -> tuple[pa.Table, int]:
    """(the rows where `mask` holds, how many were dropped); the table itself when none is."""
    dropped = table.num_rows - int(pc.sum(mask).as_py() or 0)
    return (table.filter(mask) if dropped else table), dropped


# -- mapping values ------------------------------------------------------------------------------


def map_values(col: pa.ChunkedArray | pa.Array, mapping: dict[str, str]) -> pa.Array:
    """Map strings through `mapping`; unmapped values become null."""
    idx = pc.index_in(col, value_set=pa.array(list(mapping), pa.string()))
    return pc.take(pa.array(list(mapping.values()), pa.string()), idx)


def map_kinds(
    table: pa.Table, source_col: str, mapping: dict[str, str]
) -> tuple[pa.Table, pa.ChunkedArray | pa.Array, int]:
    """The rows whose `source_col` maps to an engagement kind, with the kind appended as `kind`;
    also the mapped mask over the input rows and how many rows did not map."""
    kinds = map_values(table[source_col], mapping)
    mapped = pc.is_valid(kinds)
    n_unmapped = table.num_rows - int(pc.sum(mapped).as_py() or 0)
    return table.append_column("kind", kinds).filter(mapped), mapped, n_unmapped


def handles(prefix: str, ids: np.ndarray) -> pa.Array:
    """Display handles like `user42` (vectorised)."""
    return pc.binary_join_element_wise(prefix, pa.array(ids, pa.int64()).cast(pa.string()), "")


def names_or_handles(ids: np.ndarray, listed_ids: pa.ChunkedArray, names: pa.ChunkedArray, prefix: str) -> pa.Array:
    """The listed name of each id, or a handle like `artist42` where the listing lacks it."""
    idx = pc.index_in(pa.array(ids, pa.int64()), value_set=listed_ids.combine_chunks())
    found = pc.take(names.combine_chunks(), idx)
    return pc.if_else(pc.is_valid(found), found, handles(prefix, ids))


def first_times(ids: np.ndarray, event_ids: np.ndarray, event_times: np.ndarray, default: int) -> np.ndarray:
    """Per id (in `ids`, unique) the earliest event time, `default` where it has none."""
    out = np.full(len(ids), np.iinfo(np.int64).max, dtype=np.int64)
    if len(event_ids):
        order = np.argsort(ids, kind="stable")
        pos = order[rows_of(ids[order], event_ids)]
        np.minimum.at(out, pos, np.asarray(event_times, dtype=np.int64))
    out[out == np.iinfo(np.int64).max] = default
    return out


# -- building the schema's tables ----------------------------------------------------------------


def users_table(ids: np.ndarray, handle: pa.Array, kind: str, created_at: np.ndarray) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "user_id": pa.array(ids, pa.int64()),
            "handle": handle,
            "kind": pa.array(np.full(n, kind, dtype=object), pa.string()),
            "created_at": pa.array(created_at, pa.int64()),
        }
    )


def persons(ids: np.ndarray, created_at: np.ndarray) -> pa.Table:
    """Person accounts with handles like `user42`."""
    return users_table(ids, handles("user", ids), "person", created_at)


def original_posts(
    post_id: np.ndarray,
    author_id: np.ndarray,
    created_at: np.ndarray,
    topic: np.ndarray | None = None,
    *,
    has_media: np.ndarray | None = None,
    has_link: np.ndarray | None = None,
    length: np.ndarray | None = None,
    is_nsfw: np.ndarray | None = None,
    is_toxic: np.ndarray | None = None,
) -> pa.Table:
    """Original posts (no parent); absent attributes are unknown: topic -1, flags false, length 0."""
    n = len(post_id)
    false = np.zeros(n, dtype=bool)

    def flag(x: np.ndarray | None) -> pa.Array:
        return pa.array(false if x is None else np.asarray(x, dtype=bool), pa.bool_())

    return pa.table(
        {
            "post_id": pa.array(post_id, pa.int64()),
            "author_id": pa.array(author_id, pa.int64()),
            "created_at": pa.array(created_at, pa.int64()),
            "kind": pa.array(np.full(n, "original", dtype=object), pa.string()),
            "parent_id": pa.nulls(n, pa.int64()),
            "topic": pa.array(np.full(n, -1) if topic is None else topic, pa.int16()),
            "has_media": flag(has_media),
            "has_link": flag(has_link),
            "length": pa.array(np.zeros(n) if length is None else length, pa.int32()),
            "is_nsfw": flag(is_nsfw),
            "is_toxic": flag(is_toxic),
            "is_spam": flag(None),
            "is_misinfo": flag(None),
        }
    )


def catalog_offset(max_person_id: int) -> int:
    """Catalog account ids = item id + this: the next power of ten above every person id."""
    return 10 ** max(1, math.ceil(math.log10(max(int(max_person_id), 0) + 1)))


def with_unlisted(listed: np.ndarray, *referenced: np.ndarray) -> tuple[np.ndarray, int]:
    """(every item id listed or referenced, sorted; how many are referenced but not listed)."""
    ids = np.unique(np.concatenate([listed, *referenced]))
    return ids, int((~np.isin(ids, listed)).sum())


def engagements_table(
    user_id: np.ndarray, post_id: np.ndarray, kind: pa.Array | str, created_at: np.ndarray, value: np.ndarray
) -> pa.Table:
    n = len(user_id)
    if isinstance(kind, str):
        kind = pa.array(np.full(n, kind, dtype=object), pa.string())
    return pa.table(
        {
            "user_id": pa.array(user_id, pa.int64()),
            "post_id": pa.array(post_id, pa.int64()),
            "kind": kind,
            "created_at": pa.array(created_at, pa.int64()),
            "value": pa.array(value, pa.float32()),
        }
    )


def dedupe_engagements(table: pa.Table) -> tuple[pa.Table, int]:
    """Drop exact duplicate keys (user, post, kind, time), keeping the largest value; sort by time."""
    keys = ["user_id", "post_id", "kind", "created_at"]
    out = table.group_by(keys, use_threads=False).aggregate([("value", "max")])
    out = out.rename_columns([*keys, "value"]).select([*keys, "value"])
    out = out.sort_by(
        [
            ("created_at", "ascending"),
            ("user_id", "ascending"),
            ("post_id", "ascending"),
            ("kind", "ascending"),
        ]
    )
    return out, table.num_rows - out.num_rows


def engagements_from(
    user_id: np.ndarray, post_id: np.ndarray, kind: pa.Array | str, created_at: np.ndarray, value: np.ndarray
) -> tuple[pa.Table, int]:
    """The engagements table, exact duplicate keys dropped: (table sorted by time, duplicates dropped)."""
    return dedupe_engagements(engagements_table(user_id, post_id, kind, created_at, value))


def kind_events(events: pa.Table, user: str, post: str, time: str, notes: list[str]) -> pa.Table:
    """Events already mapped to a `kind` column (`map_kinds`) → engagements of value 1 (the source's
    events carry no strength); exact duplicate keys dropped, and how many said in the notes."""
    eng, n_dup = engagements_from(
        column(events, user),
        column(events, post),
        events["kind"].combine_chunks(),
        column(events, time),
        np.ones(events.num_rows, dtype=np.float32),
    )
    notes.append(duplicates_note(n_dup))
    return eng


def dedupe_follows(src_id: np.ndarray, dst_id: np.ndarray, created_at: int) -> tuple[pa.Table, int, int]:
    """Follows without self-follows and duplicate edges: (table, self-follows dropped, duplicates dropped)."""
    src_id = np.asarray(src_id, dtype=np.int64)
    dst_id = np.asarray(dst_id, dtype=np.int64)
    keep = src_id != dst_id
    n_self = int((~keep).sum())
    pairs = (
        np.unique(np.stack([src_id[keep], dst_id[keep]], axis=1), axis=0) if keep.any() else np.empty((0, 2))
    )
    n_dup = int(keep.sum()) - len(pairs)
    table = pa.table(
        {
            "src_id": pa.array(pairs[:, 0], pa.int64()),
            "dst_id": pa.array(pairs[:, 1], pa.int64()),
            "created_at": pa.array(np.full(len(pairs), created_at, dtype=np.int64), pa.int64()),
        }
    )
    return table, n_self, n_dup


def count_self_engagements(
    post_id: np.ndarray, author_id: np.ndarray, eng_user: np.ndarray, eng_post: np.ndarray
) -> int:
    """How many engagements are by the author of the post engaged with."""
    if len(eng_post) == 0:
        return 0
    order = np.argsort(post_id, kind="stable")
    pos = rows_of(np.asarray(post_id)[order], eng_post, "post")
    return int((np.asarray(author_id)[order][pos] == eng_user).sum())


def start_time(eng: pa.Table) -> int:
    """The dataset start: the first engagement time (0 without engagements)."""
    times = column(eng, "created_at")
    return int(times.min()) if len(times) else 0


# -- notes ---------------------------------------------------------------------------------------


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def topic_names_note(names: Sequence[str]) -> str:
    return "topics: " + ", ".join(f"{i}={n}" for i, n in enumerate(names))


def duplicates_note(n_dup: int) -> str:
    return f"{plural(n_dup, 'exact duplicate engagement')} (user, post, kind, time) dropped"


# -- the one path to a Dataset -------------------------------------------------------------------


@dataclass
class Mapped:
    """A source mapped onto the schema: its tables (no follows or impressions where the source has
    none) and what the mapping did. `build()` is the same for every importer."""

    source: str  # the importer's name (manifest `source`)
    version: str  # the importer's version (manifest `generator`)
    users: pa.Table
    posts: pa.Table
    engagements: pa.Table
    follows: pa.Table | None = None
    name: str = ""  # the dataset's name; the source's when empty
    positives_only: bool = True
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Dataset:
        """Manifest (split by engagement-time quantiles) plus conformed tables."""
        manifest = Manifest(
            name=self.name or self.source,
            source=self.source,
            generator=f"foryou.import.{self.source} {self.version}",
            split=split_by_quantiles(column(self.engagements, "created_at")),
            positives_only=self.positives_only,
            notes=self.notes,
            config=self.config,
        )
        tables = {
            "users": self.users,
            "posts": self.posts,
            "follows": empty_table("follows") if self.follows is None else self.follows,
            "engagements": self.engagements,
            "impressions": empty_table("impressions"),
        }
        return Dataset.build(tables, manifest)
