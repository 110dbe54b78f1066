"""The feedback collector: what was served and what users did with it, kept as table columns and
written — appended to the world it came from — as a Dataset that `foryou train` reads like any
other. With a ground truth (simulations), the extended truth is written too, so the new dataset
is a synthetic world of its own (oracle, ceilings and further simulations work on it).

Impressions get propensity 1.0: the served ranking is (nearly) deterministic, unlike the world's
randomised logging policy; the manifest's notes say so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foryou.data.dataset import Dataset
from foryou.data.manifest import split_by_quantiles
from foryou.data.world.truth import LATENT_FILE, PARAMS_FILE, TRUTH_DIR, GroundTruth
from foryou.vocab import SAFETY_LABELS


class FeedbackCollector:
    def __init__(self) -> None:
        self._imp: list[tuple[np.ndarray, ...]] = []
        self._eng: list[tuple[np.ndarray, ...]] = []
        self._posts: list[dict[str, np.ndarray]] = []
        self.impressions = 0
        self.engagements = 0

    def add_impressions(self, user_id: np.ndarray, post_id: np.ndarray, t: np.ndarray, session_id: np.ndarray,
                        position: np.ndarray) -> None:
        self._imp.append(tuple(np.asarray(x, np.int64) for x in (user_id, post_id, t, session_id, position)))
        self.impressions += len(user_id)

    def add_engagements(self, user_id: np.ndarray, post_id: np.ndarray, kind: np.ndarray, t: np.ndarray,
                        value: np.ndarray) -> None:
        self._eng.append((np.asarray(user_id, np.int64), np.asarray(post_id, np.int64), np.asarray(kind, object),
                          np.asarray(t, np.int64), np.asarray(value, np.float32)))
        self.engagements += len(user_id)

    def add_posts(self, columns: dict[str, np.ndarray]) -> None:
        """New original posts: post_id, author_id, created_at, topic, has_media, has_link, length, labels."""
        self._posts.append(columns)

    # -- the dataset ----------------------------------------------------------------------------------

    def dataset(self, world: Dataset) -> Dataset:
        """The world's tables plus everything collected; the split is recomputed at the same shares."""
        cat = lambda parts, i: np.concatenate([p[i] for p in parts]) if parts else np.empty(0)  # noqa: E731
        imp = pa.table({"user_id": cat(self._imp, 0).astype(np.int64), "post_id": cat(self._imp, 1).astype(np.int64),
                        "created_at": cat(self._imp, 2).astype(np.int64),
                        "session_id": cat(self._imp, 3).astype(np.int64),
                        "position": cat(self._imp, 4).astype(np.int16),
                        "propensity": np.ones(self.impressions, np.float32)})
        # Simulated sessions get ids after the world's.
        offset = int(np.max(world.impressions["session_id"].to_numpy(), initial=0))
        imp = imp.set_column(3, "session_id", pa.array(imp["session_id"].to_numpy() + offset))
        kind = cat(self._eng, 2)
        eng = pa.table({"user_id": cat(self._eng, 0).astype(np.int64), "post_id": cat(self._eng, 1).astype(np.int64),
                        "kind": pa.array(kind.astype(str) if len(kind) else [], pa.string()),
                        "created_at": cat(self._eng, 3).astype(np.int64),
                        "value": cat(self._eng, 4).astype(np.float32)})
        eng = _unique(eng, ["user_id", "post_id", "kind", "created_at"])
        imp = _unique(imp, ["user_id", "post_id", "created_at"])
        posts = world.posts
        if self._posts:
            cols = {k: np.concatenate([p[k] for p in self._posts]) for k in self._posts[0]}
            m = len(cols["post_id"])
            new = pa.table({"post_id": cols["post_id"], "author_id": cols["author_id"],
                            "created_at": cols["created_at"], "kind": pa.array(["original"] * m, pa.string()),
                            "parent_id": pa.nulls(m, pa.int64()), "topic": cols["topic"].astype(np.int16),
                            "has_media": cols["has_media"], "has_link": cols["has_link"],
                            "length": cols["length"].astype(np.int32), **{lb: cols[lb] for lb in SAFETY_LABELS}})
            posts = pa.concat_tables([posts, Dataset.conform("posts", new)])
        follows = world.follows
        fa = eng.filter(pc.equal(eng["kind"], "follow_author"))
        if fa.num_rows:
            author_of = dict(zip(posts["post_id"].to_pylist(), posts["author_id"].to_pylist(), strict=True))
            have = set(zip(follows["src_id"].to_pylist(), follows["dst_id"].to_pylist(), strict=True))
            rows = {}
            for u, p, t in zip(fa["user_id"].to_pylist(), fa["post_id"].to_pylist(), fa["created_at"].to_pylist(),
                               strict=True):
                key = (u, author_of[p])
                if key not in have and key not in rows and u != key[1]:
                    rows[key] = t
            if rows:
                new_f = pa.table({"src_id": [k[0] for k in rows], "dst_id": [k[1] for k in rows],
                                  "created_at": list(rows.values())})
                follows = pa.concat_tables([follows, Dataset.conform("follows", new_f)])
        tables = {"users": world.users, "posts": posts, "follows": follows,
                  "engagements": pa.concat_tables([world.engagements, Dataset.conform("engagements", eng)]),
                  "impressions": pa.concat_tables([world.impressions, Dataset.conform("impressions", imp)])}
        times = tables["engagements"]["created_at"].to_numpy()
        wm = world.manifest
        manifest = wm.model_copy(update={
            "name": f"{wm.name}+feedback", "split": split_by_quantiles(times),
            "notes": [*wm.notes, f"feedback: {imp.num_rows:,} served impressions (propensity 1.0: the engine's "
                      f"ranking), {eng.num_rows:,} engagements, {posts.num_rows - world.posts.num_rows:,} new posts"]})
        return Dataset.build(tables, manifest)

    def write(self, world_dir: str | Path, out: str | Path, truth: GroundTruth | None = None) -> Path:
        world = Dataset.load(world_dir, validate=False)
        ds = self.dataset(world)
        extra = {}
        if truth is not None:
            extra = {f"{TRUTH_DIR}/{LATENT_FILE}": truth.latent.to_npz(),
                     f"{TRUTH_DIR}/{PARAMS_FILE}": truth.params.to_json().encode()}
        else:
            ds.manifest = ds.manifest.model_copy(update={"has_ground_truth": False})
        return ds.write(out, extra_files=extra)


def _unique(table: pa.Table, keys: list[str]) -> pa.Table:
    """First row per key (the schema's uniqueness), order kept."""
    if table.num_rows == 0:
        return table
    idx = table.append_column("_i", pa.array(np.arange(table.num_rows)))
    first = idx.group_by(keys).aggregate([("_i", "min")])["_i_min"].to_numpy()
    return table.take(np.sort(first))
