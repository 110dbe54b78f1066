"""Import any file of interactions (CSV / TSV / Parquet / JSON lines) through a column mapping.

- Each row is one event: `user` acted on `item` at `time`, of kind `fixed_kind` (default `like`), or the
  `kind` column (an engagement kind, any case, or a key of `kind_map`), or, with a `value` column and
  `positive_min` / `negative_max`, a rating: ≥ `positive_min` → `fixed_kind`, ≤ `negative_max` →
  `not_interested`, else `neutral_kind` (default `click`; None: not imported, counted). Value: the
  `value` column (a number ≥ 0), else 1. Exact duplicates (user, item, kind, time) are stored once.
- Time: Unix s / ms / µs / ns (the unit from the values' magnitude) or ISO dates and date-times (UTC
  unless they name a zone); `time_format` overrides: `s`, `ms`, `us`, `ns`, `iso` or a strptime pattern.
- Ids are any strings (`foryou.data.importers.tables`): whole numbers are kept as the ids (`ids="auto"`),
  anything else is numbered from 1 in order of first appearance; `ids/users.parquet` and
  `ids/items.parquet` map them back.
- Each item is one original post, by its author (items file) or else by one `catalog` account (user_id =
  post_id + the next power of ten above the largest person id), created at the items file's time or its
  first event, whichever is earlier.
- Items file: columns found by name or `items_columns` (role → column): `id`, `created`, `topic` (a
  category; whole numbers 0…99 are topic ids, else the 100 most frequent become topics 0…), `author`,
  `length`, `name` and the post flags. Social file: `src` follows `dst` (found by name, else the first two
  columns), `mutual` → both ways. Users file: `id`, `created`, `handle` (by name or `users_columns`); its
  users exist even without events.
- Bad rows (missing id or time, unparseable or pre-1970 time, unknown kind, a value that is not a number
  ≥ 0, a malformed CSV line) are counted with examples and line numbers: `on_bad_row="error"` raises a
  DatasetError naming the count and the first; `"skip"` imports the rest and says so in the notes.

Everything runs in DuckDB (its CSV sniffer, vectorised SQL, spilling to disk); nothing prints.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from foryou.data.dataset import Dataset
from foryou.data.importers.common import plural
from foryou.data.importers.events import (
    BadRows,
    EventSpec,
    bad_rows,
    event_notes,
    good_events,
    stage_events,
)
from foryou.data.importers.sidefiles import no_items, read_items, read_social, read_users
from foryou.data.importers.sql import duck
from foryou.data.importers.tables import ID_FILES, IdPolicy, build_tables
from foryou.data.manifest import DatasetError
from foryou.logs import Progress

BadRowPolicy = Literal["error", "skip"]
__all__ = ["ID_FILES", "BadRowPolicy", "BadRows", "IdPolicy", "InteractionsImport", "import_interactions"]


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


def import_interactions(
    path: str | Path, out: str | Path | None = None, *, user: str, item: str, time: str,
    kind: str | None = None, fixed_kind: str = "like", value: str | None = None,
    positive_min: float | None = None, negative_max: float | None = None, neutral_kind: str | None = "click",
    time_format: str | None = None, kind_map: Mapping[str, str] | None = None,
    items: str | Path | None = None, items_columns: Mapping[str, str] | None = None,
    social: str | Path | None = None, social_columns: Mapping[str, str] | None = None,
    social_mutual: bool = False, users: str | Path | None = None, users_columns: Mapping[str, str] | None = None,
    ids: IdPolicy = "auto", on_bad_row: BadRowPolicy = "error", name: str = "", progress: Progress | None = None,
) -> InteractionsImport:
    """Import a file of interactions (see the module docstring); written to `out` (with its id maps) when
    given. DatasetError for a missing file or column, a bad option, or bad rows under `on_bad_row="error"`."""
    path = Path(path)
    spec = EventSpec(user, item, time, kind, fixed_kind, value, positive_min, negative_max, neutral_kind,
                     time_format, {k.strip().lower(): v for k, v in (kind_map or {}).items()})
    spec.check(on_bad_row)
    if ids not in ("auto", "keep", "number"):
        raise DatasetError(f"ids must be auto, keep or number, not {ids!r}")
    report = progress or (lambda stage, fraction: None)
    with tempfile.TemporaryDirectory(prefix="foryou-import-") as tmp, duck(tmp) as con:
        report("read", 0.0)
        stage_events(con, path, spec)
        bad, rows_read = bad_rows(con, path)
        if bad.count and on_bad_row == "error":
            first = bad.examples[0]
            raise DatasetError(f"{path}: {plural(bad.count, 'bad row')}, the first at {bad.unit} {first.line}: "
                               f"{first} (--on-bad-row skip imports the rest)")
        report("read", 1.0)
        duplicates, neutral = good_events(con, spec, path)
        notes = event_notes(path, spec, rows_read, bad, duplicates, neutral)
        notes += (read_items(con, Path(items), dict(items_columns or {}), spec.item, time_format) if items
                  else no_items(con))
        notes += read_social(con, Path(social) if social else None, dict(social_columns or {}), social_mutual)
        notes += read_users(con, Path(users) if users else None, dict(users_columns or {}), spec.user, time_format)
        report("tables", 0.0)
        mapped, user_ids, item_ids = build_tables(con, notes, ids)
    mapped.name = name or path.name.split(".")[0]
    report("tables", 1.0)
    result = InteractionsImport(mapped.build(), user_ids, item_ids, rows_read, bad, duplicates, neutral)
    if out is not None:
        result.write(out)
    return result


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")
