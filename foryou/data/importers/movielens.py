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

from foryou.data.dataset import Dataset, Manifest, split_by_quantiles
from foryou.data.importers import (
    catalog_offset,
    column,
    dedupe_engagements,
    engagements_table,
    first_times,
    handles,
    original_posts,
    plural,
    read_delimited,
    require_dir,
    require_file,
    topic_names_note,
    users_table,
)
from foryou.data.schema import empty_table

NAME = "movielens"
VERSION = "0.1.0"
# u.genre order: flag i of u.item is genre i.
GENRES: tuple[str, ...] = (
    *("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary"),
    *("Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller"),
    *("War", "Western"),
)
LIKE_MIN = 4  # rating >= 4 → like
DISLIKE_MAX = 2  # rating <= 2 → not_interested



def import_movielens(src: Path) -> Dataset:
    """Import MovieLens 100K from `src` (see the module docstring for the mapping)."""
    src = require_dir(src, "MovieLens 100K")
    ratings = read_delimited(
        require_file(src, "u.data", "MovieLens 100K"),
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
    items = read_delimited(
        require_file(src, "u.item", "MovieLens 100K"), item_cols, "|", header=False, encoding="latin-1"
    )
    notes: list[str] = []

    user, item = column(ratings, "user"), column(ratings, "item")
    rating, time = column(ratings, "rating"), column(ratings, "time")
    value = rating.astype(np.float32)
    like = rating >= LIKE_MIN
    dislike = rating <= DISLIKE_MAX
    n = len(user)
    kind = pa.array(
        np.concatenate(
            [
                np.full(n, "click", dtype=object),
                np.full(int(like.sum()), "like", dtype=object),
                np.full(int(dislike.sum()), "not_interested", dtype=object),
            ]
        ),
        pa.string(),
    )
    eng, n_dup = dedupe_engagements(
        engagements_table(
            np.concatenate([user, user[like], user[dislike]]),
            np.concatenate([item, item[like], item[dislike]]),
            kind,
            np.concatenate([time, time[like], time[dislike]]),
            np.concatenate([value, value[like], value[dislike]]),
        )
    )
    notes.append(
        f"{plural(n, 'rating')} → {n:,} clicks (value = rating), {int(like.sum()):,} likes "
        f"(rating ≥ {LIKE_MIN}), {int(dislike.sum()):,} not_interested (rating ≤ {DISLIKE_MAX})"
    )
    notes.append(f"{plural(n_dup, 'exact duplicate engagement')} (user, post, kind, time) dropped")
    eng_user, eng_post, eng_time = column(eng, "user_id"), column(eng, "post_id"), column(eng, "created_at")
    start = int(eng_time.min()) if len(eng_time) else 0

    # Users: raters, then one catalog account per movie.
    user_ids = np.unique(user)
    offset = catalog_offset(int(user_ids.max(initial=0)))
    listed = column(items, "item")
    item_ids = np.unique(np.concatenate([listed, item]))
    n_unlisted = int((~np.isin(item_ids, listed)).sum())
    if n_unlisted:
        notes.append(f"{plural(n_unlisted, 'rated item')} missing from u.item kept as 'movie<id>'")
    post_created = first_times(item_ids, eng_post, eng_time, default=start)
    idx = pc.index_in(pa.array(item_ids, pa.int64()), value_set=items["item"].combine_chunks())
    titles = pc.take(items["title"].combine_chunks(), idx)
    titles = pc.if_else(pc.is_valid(titles), titles, handles("movie", item_ids))
    users = pa.concat_tables(
        [
            users_table(
                user_ids,
                handles("user", user_ids),
                "person",
                first_times(user_ids, eng_user, eng_time, default=start),
            ),
            users_table(item_ids + offset, titles, "catalog", post_created),
        ]
    )
    notes.append(f"movie accounts: user_id = item_id + {offset:,} (kind catalog); post_id = item_id")

    # Posts: topic = first genre flag set.
    flags = np.stack([pc.fill_null(items[f"g{i}"], 0).to_numpy() for i in range(len(GENRES))], axis=1) > 0
    listed_topic = np.where(flags.any(axis=1), flags.argmax(axis=1), -1)
    topic = np.full(len(item_ids), -1, dtype=np.int64)
    topic[np.searchsorted(item_ids, listed)] = listed_topic
    posts = original_posts(item_ids, item_ids + offset, post_created, topic)
    notes.append(topic_names_note(GENRES))

    manifest = Manifest(
        name="movielens-100k",
        source=NAME,
        generator=f"foryou.import.{NAME} {VERSION}",
        split=split_by_quantiles(eng_time),
        positives_only=False,
        notes=notes,
        config={"topics": list(GENRES), "catalog_offset": offset},
    )
    tables = {
        "users": users,
        "posts": posts,
        "follows": empty_table("follows"),
        "engagements": eng,
        "impressions": empty_table("impressions"),
    }
    return Dataset.build(tables, manifest)
