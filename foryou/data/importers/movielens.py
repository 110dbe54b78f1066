"""Import MovieLens 100K (`u.data`: user item rating unix_time, tab-separated; `u.item`: `|`-separated
Latin-1 with 19 genre flags).

Mapping:

- Raters → users: kind `person`, ids kept, handle `user<id>`, created at their first rating.
- Each movie → one `catalog` account, user id = item id + offset (offset = 10**ceil(log10(largest user
  id + 1)), i.e. 1000), handle = the title, and one original post by it with `post_id` = item id;
  `topic` = the first genre flag set (0–18 in `u.genre` order), else -1; flags false, length 0. Post and
  account are created at the movie's first rating (else the dataset start).
- Ratings → engagements at the rating time: every rating → `click` with value = rating; rating ≥ 4
  also → `like` and rating ≤ 2 also → `not_interested`, both with value = rating. Exact duplicate keys
  are dropped.

Explicit dislikes exist, so `positives_only` is false; there are no impressions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foryou.data.dataset import Dataset
from foryou.data.importers.common import (
    catalog_offset,
    column,
    handles,
    names_or_handles,
    plural,
    read_delimited,
    require_dir,
    require_file,
    topic_names_note,
    with_unlisted,
)
from foryou.data.importers.flat import Flat, build_flat
from foryou.data.lookup import rows_of

NAME = "movielens"
VERSION = "0.1.0"
WHAT = "MovieLens 100K"
# u.genre order: flag i of u.item is genre i.
GENRES: tuple[str, ...] = (
    *("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary"),
    *("Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller"),
    *("War", "Western"),
)
LIKE_MIN = 4  # rating >= 4 → like
DISLIKE_MAX = 2  # rating <= 2 → not_interested


def import_movielens(src: Path) -> Dataset:
    """Import MovieLens 100K from `src` (see the module docstring for the mapping): ratings and movies as
    flat tables onto the generic path (`importers.flat`)."""
    ratings, items = _read(require_dir(src, WHAT))
    notes: list[str] = []
    events = _ratings(ratings, notes)
    listed = column(items, "item")
    item_ids, n_unlisted = with_unlisted(listed, column(ratings, "item"))
    if n_unlisted:
        notes.append(f"{plural(n_unlisted, 'rated item')} missing from u.item kept as 'movie<id>'")
    # Topic = first genre flag set.
    flags = np.stack([pc.fill_null(items[f"g{i}"], 0).to_numpy() for i in range(len(GENRES))], axis=1) > 0
    topic = np.full(len(item_ids), -1, dtype=np.int64)
    topic[rows_of(item_ids, listed, "item")] = np.where(flags.any(axis=1), flags.argmax(axis=1), -1)
    movies = pa.table({"item": item_ids, "topic": topic,
                       "name": names_or_handles(item_ids, items["item"], items["title"], "movie")})
    raters = np.unique(column(ratings, "user"))
    users = pa.table({"user": raters, "handle": handles("user", raters)})
    notes.append(f"movie accounts: user_id = item_id + {catalog_offset(int(raters.max(initial=0))):,} "
                 "(kind catalog); post_id = item_id")
    notes.append(topic_names_note(GENRES))
    return build_flat(Flat(events, movies, users=users, notes=notes), source=NAME, version=VERSION,
                      name="movielens-100k", config={"topics": list(GENRES)})


def _read(src: Path) -> tuple[pa.Table, pa.Table]:
    """(ratings: user item rating time, items: item title g0..g18)."""
    ratings = read_delimited(
        require_file(src, "u.data", WHAT),
        {"user": pa.int64(), "item": pa.int64(), "rating": pa.int64(), "time": pa.int64()},
        "\t",
        header=False,
    )
    item_cols: dict[str, pa.DataType | None] = {
        "item": pa.int64(),
        "title": pa.string(),
        "release": None,
        "video_release": None,
        "url": None,
    }
    item_cols.update({f"g{i}": pa.int8() for i in range(len(GENRES))})
    items = read_delimited(require_file(src, "u.item", WHAT), item_cols, "|", header=False, encoding="latin-1")
    return ratings, items


def _ratings(ratings: pa.Table, notes: list[str]) -> pa.Table:
    """Every rating → a click (value = rating), plus a like (rating ≥ LIKE_MIN) or a not_interested
    (rating ≤ DISLIKE_MAX) at the same time and value: flat interactions."""
    rating = column(ratings, "rating")
    like, dislike = rating >= LIKE_MIN, rating <= DISLIKE_MAX
    rows = np.concatenate([np.arange(len(rating)), np.flatnonzero(like), np.flatnonzero(dislike)])
    kind = np.concatenate([np.full(len(rating), "click", dtype=object), np.full(int(like.sum()), "like", dtype=object),
                           np.full(int(dislike.sum()), "not_interested", dtype=object)])
    picked = ratings.take(pa.array(rows, pa.int64()))
    notes.append(
        f"{plural(len(rating), 'rating')} → {len(rating):,} clicks (value = rating), {int(like.sum()):,} likes "
        f"(rating ≥ {LIKE_MIN}), {int(dislike.sum()):,} not_interested (rating ≤ {DISLIKE_MAX})"
    )
    return pa.table({"user": picked["user"], "item": picked["item"], "kind": pa.array(kind, pa.string()),
                     "time": picked["time"], "value": picked["rating"].cast(pa.float32())})
