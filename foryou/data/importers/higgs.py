"""Import SNAP Higgs Twitter activity (`higgs-activity_time.txt.gz`: userA userB unix_time RT|MT|RE).

Each line says userA acted on userB at unix_time: RT = userA retweeted userB (userB is the author),
RE = userA replied to userB, MT = userA mentioned userB.

Mapping:

- Every id seen (either column) → users: kind `person`, handle `user<id>`, created at the dataset start.
- The tweets themselves are not in the data, so each (userB, UTC day) that received activity becomes
  one synthetic original post by userB (topic -1, flags false, length 0), created at its earliest
  event; `post_id` runs from 1 in (created_at, author) order.
- Events → engagements by userA on that post, value 1: RT → `repost`, RE → `reply`, MT →
  `profile_click`. Exact duplicate keys are dropped. Self-actions are kept (and counted in notes).
- No follows: the follower graph is not in this copy. Any graph must be built from the training
  window only, or it leaks the future.

Positives only; no impressions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foryou.data.dataset import Dataset
from foryou.data.importers.common import (
    column,
    handles,
    map_kinds,
    plural,
    read_delimited,
    require_dir,
    require_file,
)
from foryou.data.importers.flat import Flat, build_flat
from foryou.vocab import DAY

NAME = "higgs"
VERSION = "0.1.0"
FILE = "higgs-activity_time.txt.gz"
KIND_MAP: dict[str, str] = {"RT": "repost", "RE": "reply", "MT": "profile_click"}


def import_higgs(src: Path) -> Dataset:
    """Import the Higgs Twitter activity file in `src` (see the module docstring for the mapping): events,
    synthetic posts and users as flat tables onto the generic path (`importers.flat`)."""
    src = require_dir(src, "Higgs Twitter")
    raw = read_delimited(
        require_file(src, FILE, "Higgs Twitter activity"),
        {"a": pa.int64(), "b": pa.int64(), "t": pa.int64(), "k": pa.string()},
        " ",
        header=False,
    )
    notes: list[str] = []

    ev, _, n_unmapped = map_kinds(raw, "k", KIND_MAP)
    if n_unmapped:
        notes.append(f"{plural(n_unmapped, 'event')} of unknown types (not RT/RE/MT) dropped")
    counts = {d["values"]: d["counts"] for d in pc.value_counts(raw["k"]).to_pylist()}
    notes.append("events: " + ", ".join(f"{k}→{v} ({counts.get(k, 0):,})" for k, v in KIND_MAP.items()))
    posts_key, joined = _synthetic_posts(ev)
    notes.append(
        f"posts are synthetic: one per (author, UTC day) with activity ({posts_key.num_rows:,}); "
        "RT/RE/MT on userB that day all land on it"
    )
    distinct = joined.group_by(["a", "b", "post_id", "kind", "t"], use_threads=False).aggregate([])
    n_self = int(pc.sum(pc.equal(distinct["a"], distinct["b"])).as_py() or 0)
    notes.append(f"{plural(n_self, 'self-action')} (userA = userB) kept")
    notes.append(
        "no follows: the follower graph is not in this copy; build any graph (follows, co-engagement) "
        "from the training window only, to avoid leaking the future"
    )
    events = pa.table({"user": joined["a"], "item": joined["post_id"], "kind": joined["kind"], "time": joined["t"],
                       "value": pa.array(np.ones(joined.num_rows, dtype=np.float32))})
    posts = pa.table({"item": posts_key["post_id"], "author": posts_key["b"], "created_at": posts_key["t_min"]})
    user_ids = np.unique(np.concatenate([column(raw, "a"), column(raw, "b")]))
    start = int(pc.min(joined["t"]).as_py() or 0)
    users = pa.table({"user": user_ids, "handle": handles("user", user_ids),
                      "created_at": np.full(len(user_ids), start, dtype=np.int64)})
    return build_flat(Flat(events, posts, users=users, notes=notes), source=NAME, version=VERSION,
                      name="higgs-twitter")


def _synthetic_posts(ev: pa.Table) -> tuple[pa.Table, pa.Table]:
    """One synthetic post per (author, UTC day) with activity, numbered in (created_at, author) order:
    (the posts' keys with `post_id` and `t_min`, the events joined to their post)."""
    ev = ev.append_column("day", pa.array(np.floor_divide(column(ev, "t"), DAY), pa.int64()))
    posts_key = (
        ev.group_by(["b", "day"], use_threads=False)
        .aggregate([("t", "min")])
        .sort_by([("t_min", "ascending"), ("b", "ascending")])
    )
    posts_key = posts_key.append_column("post_id", pa.array(np.arange(1, posts_key.num_rows + 1), pa.int64()))
    joined = ev.join(posts_key.select(["b", "day", "post_id"]), keys=["b", "day"], join_type="inner")
    return posts_key, joined
