"""How long a dataset's posts stay engaged with, learned from its tables (the manifest's `time_scale`).

Engagement age = engagement time − the engaged post's creation time. A feed (X, the synthetic world)
engages with posts for hours; a catalog (movies, artists) for months or years. The engine derives its time
windows from this distribution (foryou.timeline.windows) unless the config sets them.

It is learned from the train side only (engagements before the validation window starts, `until`): windows
derived from it then carry no information from the validation or test windows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from foryou.data.lookup import member
from foryou.data.manifest import TimeScale, read_manifest
from foryou.vocab import DAY, HOUR

# p90 engagement age above which a dataset is a catalog: a feed's posts are stale within days
CATALOG_P90_HOURS = 7 * 24.0
RECENT_SHARE = 0.1  # "recent" popularity: the span of the last 10 % of engagements


def time_scale(posts: pa.Table, engagements: pa.Table, until: int | None = None) -> TimeScale:
    """The engagement-age distribution of these tables (vectorised: one sort and one search), from the
    engagements before `until` (the validation window's start) when given; all of them when none is
    before it (a degenerate split)."""
    post_id = posts["post_id"].to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    created = posts["created_at"].to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    e_post = engagements["post_id"].to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    e_time = engagements["created_at"].to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if until is not None:
        before = e_time < until
        if before.any():
            e_post, e_time = e_post[before], e_time[before]
        else:
            until = None
    return scale_of(post_id, created, e_post, e_time).model_copy(update={"learned_before": until})


def scale_of(post_id: np.ndarray, created: np.ndarray, e_post: np.ndarray, e_time: np.ndarray) -> TimeScale:
    """TimeScale from plain arrays: posts (id, created) and engagements (post id, time)."""
    if len(post_id) == 0 or len(e_post) == 0:
        return TimeScale(kind="feed", engagements=0)
    order = np.argsort(post_id, kind="stable")
    ids = post_id[order]
    known, pos = member(ids, e_post)
    age = np.maximum(e_time[known] - created[order][pos[known]], 0) / HOUR
    if len(age) == 0:
        return TimeScale(kind="feed", engagements=0)
    p50, p90, p99 = (float(v) for v in np.quantile(age, [0.5, 0.9, 0.99]))
    t = np.sort(e_time)
    recent = float(t[-1] - t[min(int((1 - RECENT_SHARE) * len(t)), len(t) - 1)]) / HOUR
    distinct = t[np.r_[True, t[1:] != t[:-1]]]  # t is sorted: np.unique would sort again (10 s at 10M rows)
    gaps = np.diff(distinct)
    resolution = float(np.median(gaps)) / HOUR if len(gaps) else 0.0
    return TimeScale(
        kind="catalog" if p90 > CATALOG_P90_HOURS else "feed",
        engagements=len(age),
        age_p50_hours=round(p50, 3),
        age_p90_hours=round(p90, 3),
        age_p99_hours=round(p99, 3),
        recent_hours=round(recent, 3),
        resolution_hours=round(resolution, 3),
        span_days=round(float(t[-1] - t[0]) / DAY, 3),
    )


def time_scale_of_dir(path: str | Path) -> TimeScale:
    """The time scale of a dataset directory (an older manifest without one), from its train side: reads
    the manifest's split and two columns of two tables."""
    path = Path(path)
    posts = pq.read_table(path / "posts.parquet", columns=["post_id", "created_at"])
    engagements = pq.read_table(path / "engagements.parquet", columns=["post_id", "created_at"])
    return time_scale(posts, engagements, until=read_manifest(path).split.train_end)
