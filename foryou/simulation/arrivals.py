"""New posts during a simulation, drawn like the world's own, and the ground truth extended to them.

Authors post at the rate they posted in the world (originals per day); a post's topic follows the
author's topic mix (the generator's interests³, normalised), its quality is the author's quality
plus noise (σ = 0.6, as generated), media / link / safety labels follow the author's own past
shares (smoothed towards the world's), length is log-normal as generated. Times follow the
world's daily rhythm. Drawn once for the whole horizon with a seeded RNG, so every arm of an
experiment sees the same stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from foryou.data.world.generator import RHYTHM
from foryou.data.world.truth import GroundTruth, Latent, PostColumns
from foryou.vocab import DAY, HOUR, SAFETY_LABELS

_SMOOTH = 5.0  # pseudo-posts at the world's share when estimating an author's share


@dataclass
class Arrivals:
    """New original posts, sorted by creation time; ids continue the world's."""

    post_id: np.ndarray
    author_row: np.ndarray  # ground-truth user row (= users table row)
    created_at: np.ndarray
    topic: np.ndarray
    has_media: np.ndarray
    has_link: np.ndarray
    length: np.ndarray
    labels: dict[str, np.ndarray]
    quality: np.ndarray

    def __len__(self) -> int:
        return len(self.post_id)


def draw_arrivals(dataset_dir, truth: GroundTruth, start: int, days: float, seed: int) -> Arrivals:
    """New posts created in [start, start + days·86400)."""
    rng = np.random.default_rng([seed, 7])
    cols = ["post_id", "author_id", "created_at", "kind", "has_media", "has_link", *SAFETY_LABELS]
    p = pq.read_table(f"{dataset_dir}/posts.parquet", columns=cols)
    original = (p["kind"].to_numpy(zero_copy_only=False) == "original")
    author = truth.user_rows(p["author_id"].to_numpy()[original])
    n_users = len(truth.user_ids)
    created = p["created_at"].to_numpy()
    span_days = max((created.max() - created.min()) / DAY, 1.0)
    per_author = np.bincount(author, minlength=n_users).astype(np.float64)
    rate = per_author / span_days

    def share(col: str) -> np.ndarray:
        x = p[col].to_numpy(zero_copy_only=False)[original].astype(np.float64)
        world = x.mean() if len(x) else 0.0
        return (np.bincount(author, weights=x, minlength=n_users) + _SMOOTH * world) / (per_author + _SMOOTH)

    counts = rng.poisson(rate * days)
    a = np.repeat(np.arange(n_users), counts)
    m = len(a)
    day = rng.integers(0, int(np.ceil(days)), m)
    t = start + day * DAY + rng.choice(24, m, p=RHYTHM) * HOUR + rng.integers(0, HOUR, m)
    keep = t < start + int(days * DAY)
    a, t = a[keep], t[keep]
    order = np.argsort(t, kind="stable")
    a, t = a[order], t[order].astype(np.int64)
    m = len(a)
    mix = truth.latent.interests.astype(np.float64) ** 3 + 1e-4  # the generator's topic mix
    cdf = np.cumsum(mix / mix.sum(1, keepdims=True), 1)
    topic = np.minimum((cdf[a] < rng.random(m)[:, None]).sum(1), cdf.shape[1] - 1)
    return Arrivals(
        post_id=int(truth.posts.post_id.max()) + 1 + np.arange(m, dtype=np.int64),
        author_row=a.astype(np.int64), created_at=t, topic=topic.astype(np.int64),
        has_media=rng.random(m) < share("has_media")[a], has_link=rng.random(m) < share("has_link")[a],
        length=np.clip(rng.lognormal(4.2, 0.8, m), 1, 280).astype(np.int32),
        labels={lb: rng.random(m) < share(lb)[a] for lb in SAFETY_LABELS},
        quality=(truth.latent.author_quality[a] + rng.normal(0, 0.6, m)).astype(np.float32),
    )


def extend_truth(truth: GroundTruth, new: Arrivals) -> GroundTruth:
    """A GroundTruth that also knows the new posts (their content is their own: originals)."""
    p, lat = truth.posts, truth.latent
    n0 = len(p.post_id)
    posts = PostColumns(
        post_id=np.r_[p.post_id, new.post_id], author_row=np.r_[p.author_row, new.author_row],
        created_at=np.r_[p.created_at, new.created_at], topic=np.r_[p.topic, new.topic],
        has_media=np.r_[p.has_media, new.has_media], length=np.r_[p.length, new.length],
        labels={lb: np.r_[p.labels[lb], new.labels[lb]] for lb in p.labels})
    latent = Latent(**{**lat.__dict__, "post_quality": np.r_[lat.post_quality, new.quality],
                       "content_row": np.r_[lat.content_row, n0 + np.arange(len(new))]})
    return GroundTruth(truth.params, latent, truth.user_ids, posts, truth.weights)
