"""`foryou compact DATASET`: fold the event store into the dataset's Parquet tables, atomically,
so the next `foryou train` learns from what the service received.

New posts → posts; engagements → engagements; impressions → impressions (session −1, position 0,
propensity 1: not drawn by a logged policy); follows / unfollows → the follows table. Account-level
blocks and mutes have no table in the schema and stay in the store (the service replays them).
The new dataset is written to a temporary sibling and renamed into place (`Dataset.write`), with
the models, ground truth and the event store (a consistent copy plus `compacted.json`, the last
folded seq) inside it: a crash leaves either the old dataset or the new one, never a mix.
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
from foryou.service.service import LABELS, compacted_seq, lock_path, store_path
from foryou.service.store import EventStore


class ServerRunning(RuntimeError):
    pass


def compact(dataset: str | Path) -> dict[str, Any]:
    path = Path(dataset)
    ds = Dataset.load(path, validate=False)
    lock_path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(path), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServerRunning(f"a server is running on {path}; stop it before compacting") from None
        store = EventStore(store_path(path), base_post_id=0)
        try:
            return _fold(ds, path, store)
        finally:
            store.close()


def _fold(ds: Dataset, path: Path, store: EventStore) -> dict[str, Any]:
    done, last = compacted_seq(path), store.last_seq()
    posts, engagements, impressions, follow_ops = [], [], [], []
    for e in store.iter_since(done, upto=last):
        if e.type == "post":
            b = e.body or {}
            posts.append({"post_id": e.post_id, "author_id": e.user_id, "created_at": e.t, "kind": e.kind,
                          "parent_id": b.get("parent_id"), "topic": b.get("topic", -1),
                          "has_media": b.get("has_media", False), "has_link": b.get("has_link", False),
                          "length": b.get("length", 0), **{lb: b.get(lb, False) for lb in LABELS}})
        elif e.type == "engagement" and e.kind == "impression":
            impressions.append({"user_id": e.user_id, "post_id": e.post_id, "created_at": e.t, "session_id": -1,
                                "position": 0, "propensity": 1.0})
        elif e.type == "engagement":
            engagements.append({"user_id": e.user_id, "post_id": e.post_id, "kind": e.kind, "created_at": e.t,
                                "value": e.value})
        elif e.type == "relation" and e.kind in ("follow", "unfollow"):
            follow_ops.append((e.user_id, e.target_id, e.kind, e.t))
    tables = dict(ds.tables)
    tables["posts"] = _append(tables["posts"], posts, ("post_id",))
    tables["engagements"] = _append(tables["engagements"], engagements, ("user_id", "post_id", "kind", "created_at"))
    tables["impressions"] = _append(tables["impressions"], impressions, ("user_id", "post_id", "created_at"))
    tables["follows"] = _apply_follows(tables["follows"], follow_ops)
    folded = len(posts) + len(engagements) + len(impressions) + len(follow_ops)
    manifest = ds.manifest.model_copy(update={"notes": [*ds.manifest.notes,
                                                        f"foryou compact: {folded} events through seq {last}"]})
    new = Dataset.build(tables, manifest)
    extra = {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*")
             if p.is_file() and not _replaced(p.relative_to(path))}
    extra[".service/events.sqlite"] = store.backup_bytes()
    extra[".service/compacted.json"] = json.dumps({"seq": last}).encode()
    new.write(path, extra_files=extra)
    return {"dataset": str(path), "through_seq": last, "posts": len(posts), "engagements": len(engagements),
            "impressions": len(impressions), "follow_changes": len(follow_ops), "counts": new.manifest.counts}


def _replaced(rel: Path) -> bool:
    top = rel.parts[0]
    return top in (".serving", ".service", "manifest.json") or (len(rel.parts) == 1 and rel.suffix == ".parquet")


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
