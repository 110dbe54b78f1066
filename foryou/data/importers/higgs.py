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

from foryou.data.dataset import Dataset, Manifest, split_by_quantiles
from foryou.data.importers import (
    column,
    count_self_engagements,
    dedupe_engagements,
    engagements_table,
    handles,
    map_values,
    original_posts,
    plural,
    read_delimited,
    require_dir,
    require_file,
    users_table,
)
from foryou.data.schema import empty_table
from foryou.vocab import DAY

NAME = "higgs"
VERSION = "0.1.0"
FILE = "higgs-activity_time.txt.gz"
KIND_MAP: dict[str, str] = {"RT": "repost", "RE": "reply", "MT": "profile_click"}



def import_higgs(src: Path) -> Dataset:
    """Import the Higgs Twitter activity file in `src` (see the module docstring for the mapping)."""
    src = require_dir(src, "Higgs Twitter")
    raw = read_delimited(
        require_file(src, FILE, "Higgs Twitter activity"),
        {"a": pa.int64(), "b": pa.int64(), "t": pa.int64(), "k": pa.string()},
        " ",
        header=False,
    )
    notes: list[str] = []

    kinds = map_values(raw["k"], KIND_MAP)
    mapped = pc.is_valid(kinds)
    n_unmapped = raw.num_rows - int(pc.sum(mapped).as_py() or 0)
    if n_unmapped:
        notes.append(f"{plural(n_unmapped, 'event')} of unknown types (not RT/RE/MT) dropped")
    counts = {d["values"]: d["counts"] for d in pc.value_counts(raw["k"]).to_pylist()}
    notes.append("events: " + ", ".join(f"{k}→{v} ({counts.get(k, 0):,})" for k, v in KIND_MAP.items()))
    ev = raw.append_column("kind", kinds).filter(mapped)
    ev = ev.append_column("day", pa.array(np.floor_divide(column(ev, "t"), DAY), pa.int64()))

    # One synthetic post per (author, UTC day) with activity, numbered in (created_at, author) order.
    posts_key = (
        ev.group_by(["b", "day"], use_threads=False)
        .aggregate([("t", "min")])
        .sort_by([("t_min", "ascending"), ("b", "ascending")])
    )
    posts_key = posts_key.append_column("post_id", pa.array(np.arange(1, posts_key.num_rows + 1), pa.int64()))
    joined = ev.join(posts_key.select(["b", "day", "post_id"]), keys=["b", "day"], join_type="inner")
    eng, n_dup = dedupe_engagements(
        engagements_table(
            column(joined, "a"),
            column(joined, "post_id"),
            joined["kind"].combine_chunks(),
            column(joined, "t"),
            np.ones(joined.num_rows, dtype=np.float32),
        )
    )
    notes.append(f"{plural(n_dup, 'exact duplicate engagement')} (user, post, kind, time) dropped")
    eng_time = column(eng, "created_at")
    start = int(eng_time.min()) if len(eng_time) else 0

    post_ids, authors = column(posts_key, "post_id"), column(posts_key, "b")
    posts = original_posts(post_ids, authors, column(posts_key, "t_min"))
    notes.append(
        f"posts are synthetic: one per (author, UTC day) with activity ({posts.num_rows:,}); "
        "RT/RE/MT on userB that day all land on it"
    )
    n_self = count_self_engagements(post_ids, authors, column(eng, "user_id"), column(eng, "post_id"))
    notes.append(f"{plural(n_self, 'self-action')} (userA = userB) kept")

    user_ids = np.unique(np.concatenate([column(raw, "a"), column(raw, "b")]))
    users = users_table(user_ids, handles("user", user_ids), "person", np.full(len(user_ids), start))
    notes.append(
        "no follows: the follower graph is not in this copy; build any graph (follows, co-engagement) "
        "from the training window only, to avoid leaking the future"
    )

    manifest = Manifest(
        name="higgs-twitter",
        source=NAME,
        generator=f"foryou.import.{NAME} {VERSION}",
        split=split_by_quantiles(eng_time),
        positives_only=True,
        notes=notes,
    )
    tables = {
        "users": users,
        "posts": posts,
        "follows": empty_table("follows"),
        "engagements": eng,
        "impressions": empty_table("impressions"),
    }
    return Dataset.build(tables, manifest)
