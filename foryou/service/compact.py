"""`foryou compact DATASET [--store FILE]`: fold an event store into the dataset's Parquet tables,
atomically, so the next `foryou train` learns from what the service received.

New posts → posts; engagements → engagements; impressions → impressions (session −1, position 0,
propensity 1: not drawn by a logged policy); follows / unfollows → the follows table. Account-level
blocks and mutes have no table in the schema and stay in the store (the service replays them).
The new dataset is written to a temporary sibling and renamed into place (`Dataset.write`), with
the models, ground truth, the event stores that live inside it (consistent copies) and
`.service/compacted.json`: per event store (by its id, see `EventStore.store_id`), the last folded
seq. A crash leaves either the old dataset or the new one, never a mix. The mark belongs to the
store it was taken from: a server on another store (`--store`) replays all of that store's events,
and a store outside the dataset is left as it is (its mark lives in the dataset).
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foryou.data.dataset import Dataset
from foryou.errors import ForYouError
from foryou.service.files import FOLDED_RELATIONS, compacted_marks, compacted_seq, lock_path, store_path
from foryou.service.store import EventStore, StoreError
from foryou.vocab import SAFETY_LABELS

# Files under .service that the new dataset gets afresh rather than as copies.
_SERVICE_FRESH = (Path(".service/compacted.json"), Path(".service/server.lock"))


class ServerRunning(ForYouError, RuntimeError):
    """A server still holds the dataset: compaction would race its writes."""


def compact(dataset: str | Path, store: str | Path | None = None) -> dict[str, Any]:
    """Fold `store` (default: the dataset's own DATASET/.service/events.sqlite) into the dataset.
    Raises ServerRunning while a server runs on the dataset, StoreError for a missing `store` or one
    that is not the history compacted before."""
    path = Path(dataset)
    ds = Dataset.load(path, validate=False)
    folded_file, default_file = store_path(path, store), store_path(path)
    if store is not None and not folded_file.is_file():
        raise StoreError(f"no event store at {folded_file}; pass the --store the server wrote to")
    lock_path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(path), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServerRunning(f"a server is running on {path}; stop it before compacting") from None
        opened: list[EventStore] = []
        try:
            opened.append(EventStore(folded_file, base_post_id=0))
            if folded_file.resolve() != default_file.resolve() and default_file.is_file():
                opened.append(EventStore(default_file, base_post_id=0))  # carried over, mark kept
            return _fold(ds, path, opened[0], opened[1:])
        finally:
            for s in opened:
                s.close()


def _mark(store: EventStore, seq: int) -> dict[str, Any]:
    e = store.event(seq)
    return {"seq": seq, "event_id": e.event_id if e else None, "store": str(store.path)}


def _fold(ds: Dataset, path: Path, store: EventStore, others: list[EventStore]) -> dict[str, Any]:
    marks = compacted_marks(path)
    for s in (store, *others):  # validates each store against its mark; converts a legacy mark
        if (seq := compacted_seq(path, s)) and s.store_id not in marks:
            marks[s.store_id] = _mark(s, seq)
    done, last = compacted_seq(path, store), store.last_seq()
    posts, engagements, impressions, follow_ops = [], [], [], []
    for e in store.iter_since(done, upto=last):
        if e.type == "post":
            b = e.body or {}
            posts.append({"post_id": e.post_id, "author_id": e.user_id, "created_at": e.t, "kind": e.kind,
                          "parent_id": b.get("parent_id"), "topic": b.get("topic", -1),
                          "has_media": b.get("has_media", False), "has_link": b.get("has_link", False),
                          "length": b.get("length", 0), **{lb: b.get(lb, False) for lb in SAFETY_LABELS}})
        elif e.type == "engagement" and e.kind == "impression":
            impressions.append({"user_id": e.user_id, "post_id": e.post_id, "created_at": e.t, "session_id": -1,
                                "position": 0, "propensity": 1.0})
        elif e.type == "engagement":
            engagements.append({"user_id": e.user_id, "post_id": e.post_id, "kind": e.kind, "created_at": e.t,
                                "value": e.value})
        elif e.type == "relation" and e.kind in FOLDED_RELATIONS and e.target_id is not None:
            follow_ops.append((e.user_id, e.target_id, e.kind, e.t))
    if last > done:
        marks[store.store_id] = _mark(store, last)
    tables = dict(ds.tables)
    tables["posts"] = _append(tables["posts"], posts, ("post_id",))
    tables["engagements"] = _append(tables["engagements"], engagements, ("user_id", "post_id", "kind", "created_at"))
    tables["impressions"] = _append(tables["impressions"], impressions, ("user_id", "post_id", "created_at"))
    tables["follows"] = _apply_follows(tables["follows"], follow_ops)
    folded = len(posts) + len(engagements) + len(impressions) + len(follow_ops)
    manifest = ds.manifest.model_copy(update={"notes": [*ds.manifest.notes,
                                                        f"foryou compact: {folded} events through seq {last}"
                                                        f" of {store.path}"]})
    new = Dataset.build(tables, manifest)
    # Stores inside the dataset go into the new one as consistent copies (their WAL folded in); any
    # other file under .service is copied too, so no store a server wrote to is left behind.
    carried: dict[Path, bytes] = {}
    for s in (store, *others):
        rel = _inside(path, s.path)
        if rel is not None:
            carried[rel] = s.backup_bytes()
    skip = {rel.with_name(rel.name + sfx) for rel in carried for sfx in ("", "-wal", "-shm", "-journal")}
    extra = {str(rel): p.read_bytes() for p in path.rglob("*")
             if p.is_file() and not _replaced(rel := p.relative_to(path)) and rel not in skip}
    extra.update({str(rel): data for rel, data in carried.items()})
    extra[".service/compacted.json"] = json.dumps({"stores": marks}, indent=1).encode()
    new.write(path, extra_files=extra)
    return {"dataset": str(path), "store": str(store.path), "through_seq": last, "posts": len(posts),
            "engagements": len(engagements), "impressions": len(impressions), "follow_changes": len(follow_ops),
            "counts": new.manifest.counts}


def _inside(root: Path, file: Path) -> Path | None:
    try:
        return file.resolve().relative_to(root.resolve())
    except ValueError:
        return None


def _replaced(rel: Path) -> bool:
    top = rel.parts[0]
    return (top in (".serving", "manifest.json") or rel in _SERVICE_FRESH
            or (len(rel.parts) == 1 and rel.suffix == ".parquet"))


def _append(table: pa.Table, rows: list[dict], key: tuple[str, ...]) -> pa.Table:
    if not rows:
        return table
    new = pa.Table.from_pylist(rows).select(table.column_names).cast(table.schema)
    both = pa.concat_tables([table, new])
    # Unique keys: the first of equal keys stays (an event repeating a stored row is dropped).
    keys = [both[k].to_numpy(zero_copy_only=False) for k in key]
    codes = [np.unique(k, return_inverse=True)[1] for k in keys]
    packed = np.zeros(len(both), dtype=np.int64)
    for c in codes:
        packed = packed * (int(c.max()) + 1) + c
    _, first = np.unique(packed, return_index=True)
    return both.take(pa.array(np.sort(first)))


def _apply_follows(table: pa.Table, ops: list[tuple[int, int, str, int]]) -> pa.Table:
    if not ops:
        return table
    state: dict[tuple[int, int], int | None] = {}  # final state per edge: follow time, or None (unfollowed)
    for src, dst, kind, t in ops:
        state[(src, dst)] = t if kind == "follow" else None
    src = table["src_id"].to_numpy()
    dst = table["dst_id"].to_numpy()
    touched = pa.array([s * (1 << 32) + d for s, d in state])
    keep = pc.invert(pc.is_in(pa.array(src * (1 << 32) + dst), value_set=touched))
    kept = table.filter(keep)
    # An edge followed again keeps its original time when it was in the table already.
    old = {(int(s), int(d)): int(t) for s, d, t in zip(src, dst, table["created_at"].to_numpy(), strict=True)
           if (int(s), int(d)) in state}
    added = [{"src_id": s, "dst_id": d, "created_at": old.get((s, d), t)} for (s, d), t in state.items()
             if t is not None]
    if not added:
        return kept
    return pa.concat_tables([kept, pa.Table.from_pylist(added).select(table.column_names).cast(table.schema)])
