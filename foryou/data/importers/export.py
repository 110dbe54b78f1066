"""A dataset → flat files that `foryou import interactions` reads back into the same dataset.

`export_flat(DS, OUT)` writes `interactions.csv` (user, item, kind, time, value: one row per engagement),
`items.csv` (item, created_at, topic, author, length, name, the post flags), `social.csv` (src, dst) and
`users.csv` (user, handle, created_at) with external ids (the dataset's `ids/*.parquet` when it has them,
else its integer ids, which the importer keeps), and returns the one `foryou import interactions` command
that re-imports them. For an imported dataset the round trip gives the same tables: same ids, times,
kinds, values, topics, flags, follows and split. What the flat format cannot carry is said in `lost`:
replies and reposts (exported as original items), impressions, follow times (re-imported at the
dataset start) and catalog accounts that are not one per item.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from foryou.data.dataset import Dataset
from foryou.data.importers.common import catalog_offset, plural
from foryou.data.importers.sidefiles import FLAGS
from foryou.data.importers.tables import ID_FILES
from foryou.data.lookup import member, rows_of

FILES = ("interactions.csv", "items.csv", "social.csv", "users.csv")


@dataclass
class FlatExport:
    """What `export_flat` wrote: the files, their row counts, the command that re-imports them and what
    the flat files cannot carry."""

    out: Path
    rows: dict[str, int]
    command: list[str]
    lost: list[str] = field(default_factory=list)

    @property
    def command_line(self) -> str:
        return " ".join(shlex.quote(part) for part in self.command)


def _external(path: Path, which: str, key: str, ids: np.ndarray) -> pa.Array:
    """External ids of `ids` from the dataset's id map when it has one, else the ids as text."""
    file = path / ID_FILES[which]
    if not file.is_file():
        return pa.array(ids, pa.int64()).cast(pa.string())
    table = pq.read_table(file).sort_by(key)
    return pc.take(table["external_id"], pa.array(rows_of(table[key].to_numpy(), ids, which[:-1]), pa.int64()))


def export_flat(path: str | Path, out: str | Path, reimport_to: str | Path = "DATASET") -> FlatExport:
    """Write the four flat files of the dataset at `path` into `out` (created); see the module docstring."""
    path, out = Path(path), Path(out)
    ds = Dataset.load(path, validate=False)
    out.mkdir(parents=True, exist_ok=True)
    users, posts, eng = ds.users.sort_by("user_id"), ds.posts, ds.engagements
    user_id = users["user_id"].to_numpy()
    person = pc.equal(users["kind"], "person").to_numpy(zero_copy_only=False)
    offset = catalog_offset(int(user_id[person].max(initial=0)))
    post_id, author = posts["post_id"].to_numpy(), posts["author_id"].to_numpy()
    by_catalog = np.isin(author, user_id[~person])
    # a catalog account that is exactly "post_id + offset" is what the importer makes of an authorless item
    implied = by_catalog & (author == post_id + offset)
    lost = _lost(ds, int((by_catalog & ~implied).sum()))
    ext_person = _external(path, "users", "user_id", user_id[person])
    person_ids = user_id[person]
    ext_item = _external(path, "items", "post_id", post_id)

    def users_of(ids: np.ndarray) -> pa.Array:
        found, pos = member(person_ids, ids)
        text = pa.array(ids, pa.int64()).cast(pa.string())
        return pc.if_else(pa.array(found), pc.take(ext_person, pa.array(pos, pa.int64())), text)

    author_row = rows_of(user_id, author, "author")
    name = pc.if_else(pa.array(implied), pc.take(users["handle"], pa.array(author_row, pa.int64())),
                      pa.nulls(len(author), pa.string()))
    eng_items = pc.take(ext_item, pa.array(rows_of(post_id, eng["post_id"].to_numpy(), "post"), pa.int64()))
    tables = {
        "interactions.csv": pa.table({"user": users_of(eng["user_id"].to_numpy()), "item": eng_items,
                                      "kind": eng["kind"], "time": eng["created_at"], "value": eng["value"]}),
        "items.csv": pa.table({
            "item": ext_item, "created_at": posts["created_at"], "topic": posts["topic"],
            "author": pc.if_else(pa.array(implied), pa.nulls(len(author), pa.string()), users_of(author)),
            "length": posts["length"], "name": name,
            **{f: posts[f] for f in FLAGS}}),
        "social.csv": pa.table({"src": users_of(ds.follows["src_id"].to_numpy()),
                                "dst": users_of(ds.follows["dst_id"].to_numpy())}),
        "users.csv": pa.table({"user": users_of(user_id[person]), "handle": users["handle"].filter(person),
                               "created_at": users["created_at"].filter(person)}),
    }
    for name, table in tables.items():
        pcsv.write_csv(table, out / name)
    return FlatExport(out, {n: t.num_rows for n, t in tables.items()},
                      reimport_command(out, reimport_to, has_social=ds.follows.num_rows > 0), lost)


def reimport_command(out: Path, dataset: str | Path, has_social: bool = True) -> list[str]:
    """The `foryou import interactions` command that reads the exported files back."""
    return ["foryou", "import", "interactions", str(out / "interactions.csv"), "--out", str(dataset),
            "--user", "user", "--item", "item", "--time", "time", "--kind", "kind", "--value", "value",
            "--items", str(out / "items.csv"), *(["--social", str(out / "social.csv")] if has_social else []),
            "--users", str(out / "users.csv")]


def _lost(ds: Dataset, other_catalog: int) -> list[str]:
    """What the flat files do not carry for this dataset (empty for the importers' datasets)."""
    lost = []
    n_derived = int(pc.sum(pc.not_equal(ds.posts["kind"], "original")).as_py() or 0)
    if n_derived:
        lost.append(f"{n_derived:,} {'reply or repost' if n_derived == 1 else 'replies or reposts'} exported as "
                    "original items (no parent)")
    if ds.impressions.num_rows:
        lost.append(f"{plural(ds.impressions.num_rows, 'impression')} not exported")
    if ds.follows.num_rows and len(set(ds.follows["created_at"].to_pylist())) > 1:
        lost.append("follow times not exported: re-imported at the dataset start")
    if other_catalog:
        lost.append(f"{plural(other_catalog, 'post')} by catalog accounts not one per item: exported as person authors")
    return lost
