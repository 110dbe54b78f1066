"""A Dataset on disk: one Parquet file per table plus `manifest.json`.

Writes are atomic at the directory level: tables go to a sibling temporary directory that is
renamed into place only when complete, so a crash mid-write never leaves a half-written dataset.
Every Parquet page carries a CRC-32, so `foryou data validate` finds a flipped byte anywhere in the data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from foryou.data.manifest import (
    MANIFEST,
    DatasetError,
    Manifest,
    read_manifest,
)
from foryou.data.schema import TABLES
from foryou.data.timescale import time_scale
from foryou.data.validate import validate_dir


class Dataset:
    """The five tables in memory (Arrow) with their manifest."""

    def __init__(self, tables: dict[str, pa.Table], manifest: Manifest, path: Path | None = None):
        missing = set(TABLES) - set(tables)
        if missing:
            raise DatasetError(f"dataset is missing tables: {', '.join(sorted(missing))}")
        self.tables = {name: tables[name] for name in TABLES}
        self.manifest = manifest
        self.path = path

    def __getitem__(self, name: str) -> pa.Table:
        return self.tables[name]

    @property
    def users(self) -> pa.Table:
        return self.tables["users"]

    @property
    def posts(self) -> pa.Table:
        return self.tables["posts"]

    @property
    def follows(self) -> pa.Table:
        return self.tables["follows"]

    @property
    def engagements(self) -> pa.Table:
        return self.tables["engagements"]

    @property
    def impressions(self) -> pa.Table:
        return self.tables["impressions"]

    # -- building ---------------------------------------------------------------------------

    @staticmethod
    def conform(name: str, table: pa.Table) -> pa.Table:
        """Select and cast a table to the declared schema (raises DatasetError if it cannot)."""
        spec = TABLES[name]
        missing = [c for c in spec.column_names if c not in table.column_names]
        if missing:
            raise DatasetError(f"{name}: missing column(s) {', '.join(missing)}")
        try:
            return table.select(spec.column_names).cast(spec.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DatasetError(f"{name}: cannot cast to the declared schema: {exc}") from exc

    @classmethod
    def build(cls, tables: dict[str, pa.Table], manifest: Manifest) -> Dataset:
        """Conform tables to the schema and fill the manifest's counts and time range."""
        conformed = {name: cls.conform(name, tables[name]) for name in TABLES}
        manifest = manifest.model_copy(
            update={
                "counts": {name: t.num_rows for name, t in conformed.items()},
                "time_range": _time_range(conformed),
                "has_impressions": conformed["impressions"].num_rows > 0,
                # from the train side only: windows derived from it must not see the validation or test windows
                "time_scale": time_scale(conformed["posts"], conformed["engagements"], until=manifest.split.train_end),
            }
        )
        return cls(conformed, manifest)

    # -- disk -------------------------------------------------------------------------------

    def write(self, path: str | os.PathLike[str], extra_files: dict[str, bytes] | None = None) -> Path:
        """Write atomically: a complete dataset appears at `path`, or nothing changes there."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            for name, table in self.tables.items():
                pq.write_table(table, tmp / f"{name}.parquet", compression="zstd", write_page_checksum=True)
            for rel, data in (extra_files or {}).items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)
            (tmp / MANIFEST).write_text(self.manifest.model_dump_json(indent=2) + "\n")
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                path.rename(old)
                tmp.rename(path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], validate: bool = True) -> Dataset:
        """Load a dataset; with `validate`, any problem raises one DatasetError naming it."""
        path = Path(path)
        manifest = read_manifest(path)
        if validate:
            problems = validate_dir(path)
            if problems:
                raise DatasetError(f"{path}: invalid dataset: " + "; ".join(str(p) for p in problems))
        tables = {}
        for name in TABLES:
            try:
                tables[name] = cls.conform(name, pq.read_table(path / f"{name}.parquet"))
            except (OSError, pa.ArrowInvalid) as exc:
                raise DatasetError(f"{path}: cannot read {name}.parquet: {exc}") from exc
        return cls(tables, manifest, path)


def _time_range(tables: dict[str, pa.Table]) -> tuple[int, int]:
    lo, hi = None, None
    # Activity only: follows often predate the observed period (or carry no real time).
    for name in ("posts", "engagements", "impressions"):
        col = tables[name]["created_at"]
        if len(col) == 0:
            continue
        mm = pc.min_max(col)
        lo = mm["min"].as_py() if lo is None else min(lo, mm["min"].as_py())
        hi = mm["max"].as_py() if hi is None else max(hi, mm["max"].as_py())
    return (lo or 0, hi or 0)
