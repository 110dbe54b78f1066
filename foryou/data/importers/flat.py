"""The native importers' way onto the generic path: a source already read into flat Arrow tables (the
shapes `foryou data export` writes) → the same DuckDB table builder as `import interactions`
(`importers.tables.build_tables`), integer ids kept.

A native importer reads its files, maps them onto `Flat` (interactions, plus items, social edges and users
where the source has them) and calls `build_flat`: ids, catalog accounts, creation times, topics, follows,
duplicates and the manifest all come from the one generic path. Nothing prints.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from foryou.data.dataset import Dataset
from foryou.data.importers.common import duplicates_note
from foryou.data.importers.sidefiles import FLAGS
from foryou.data.importers.sql import duck, sql_row
from foryou.data.importers.tables import build_tables
from foryou.data.manifest import DatasetError


@dataclass
class Flat:
    """A source as flat tables; ids are integers (kept as the dataset's ids).

    interactions: user, item, kind, time (Unix s), value. items: item plus any of created_at, topic (an
    integer topic id), author, length, name and the post flags; an item without an author is one catalog
    account. social: src follows dst. users: user plus any of handle, created_at."""

    interactions: pa.Table
    items: pa.Table | None = None
    social: pa.Table | None = None
    users: pa.Table | None = None
    notes: list[str] = field(default_factory=list)


ITEM_DEFAULTS: dict[str, str] = {"item": "NULL", "created_at": "NULL::BIGINT", "topic": "NULL::VARCHAR",
                                 "author": "NULL::VARCHAR", "length": "0::BIGINT", "name": "NULL::VARCHAR",
                                 **{f: "false" for f in FLAGS}}


def _cols(table: pa.Table, wanted: dict[str, str]) -> str:
    return ", ".join(f'"{c}"' if c in table.column_names else f"{default} AS \"{c}\"" for c, default in wanted.items())


def _stage(con: duckdb.DuckDBPyConnection, flat: Flat) -> int:
    """Tables `good`, `item_meta`, `edges`, `user_meta` from the flat tables; returns the duplicates merged."""
    con.register("flat_events", flat.interactions)
    con.execute("""CREATE TEMP TABLE good AS SELECT CAST("user" AS VARCHAR) AS u, CAST(item AS VARCHAR) AS i, kind,
        CAST("time" AS BIGINT) AS t, max(CAST(value AS DOUBLE)) AS v, count(*) AS n FROM flat_events
        GROUP BY ALL""")
    items = flat.items if flat.items is not None else pa.table({"item": pa.array([], pa.int64())})
    con.register("flat_items", items)
    con.execute(f"""CREATE TEMP TABLE item_meta AS SELECT CAST(item AS VARCHAR) AS id, CAST(created_at AS BIGINT)
        AS created, CAST(topic AS VARCHAR) AS topic, CAST(author AS VARCHAR) AS author, CAST(length AS BIGINT)
        AS length, CAST(name AS VARCHAR) AS name, {', '.join(f'coalesce({f}, false) AS {f}' for f in FLAGS)}
        FROM (SELECT {_cols(items, ITEM_DEFAULTS)} FROM flat_items)""")
    social = flat.social if flat.social is not None else pa.table({"src": pa.array([], pa.int64()),
                                                                     "dst": pa.array([], pa.int64())})
    con.register("flat_social", social)
    con.execute("CREATE TEMP TABLE edges AS SELECT CAST(src AS VARCHAR) AS src, CAST(dst AS VARCHAR) AS dst "
                "FROM flat_social")
    users = flat.users if flat.users is not None else pa.table({"user": pa.array([], pa.int64())})
    con.register("flat_users", users)
    con.execute(f"""CREATE TEMP TABLE user_meta AS SELECT CAST("user" AS VARCHAR) AS id,
        CAST(created_at AS BIGINT) AS created, CAST(handle AS VARCHAR) AS handle
        FROM (SELECT {_cols(users, {'user': 'NULL', 'created_at': 'NULL::BIGINT', 'handle': 'NULL::VARCHAR'})}
        FROM flat_users)""")
    (n_good, n_rows) = sql_row(con, "SELECT count(*), coalesce(sum(n), 0) FROM good")
    if not n_good:
        raise DatasetError("no event to import")
    return int(n_rows) - int(n_good)


def build_flat(flat: Flat, *, source: str, version: str, name: str, config: dict[str, Any] | None = None,
               ) -> Dataset:
    """The Dataset of a source mapped onto flat tables (see the module docstring); its manifest names the
    source and carries its notes, then the generic path's."""
    notes = list(flat.notes)
    with tempfile.TemporaryDirectory(prefix="foryou-import-") as tmp, duck(tmp) as con:
        notes.append(duplicates_note(_stage(con, flat)))
        mapped, _, _ = build_tables(con, notes, "keep")
    mapped.source, mapped.version, mapped.name = source, version, name
    mapped.notes = [n for n in mapped.notes if not n.startswith("external ids:")]  # the ids are the source's
    catalog = bool(pc.any(pc.equal(mapped.users["kind"], "catalog")).as_py())
    mapped.config = {**(config or {}), **({"catalog_offset": mapped.config["catalog_offset"]} if catalog else {})}
    return mapped.build()
