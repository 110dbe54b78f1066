"""Import the mini-recsys mimic's synthetic dataset (Parquet: users, tweets, follows, interactions).

Mapping:

- `users` → users: kind `person`, handle `user<id>`, `created_at` = the dataset's first interaction
  time − `account_age_days`·86400, clipped at 0.
- `tweets` → original posts: `topic` = index of `category` in the sorted distinct categories;
  `has_media`/`has_link` as given; `length` = `text_length`; `is_nsfw` = `nsfw_score` ≥ 0.5,
  `is_toxic` = `toxicity_score` ≥ 0.5; spam/misinfo false; `created_at` = min(first interaction on the
  tweet, last interaction time − `hours_old`·3600), clipped at 0 (so no engagement precedes its post).
- `follows`: `follower_id` → `src_id`, `followed_id` → `dst_id`, `created_at` = the first interaction
  time (the source has none); `follow_weight` dropped; self-follows and duplicates dropped.
- `interactions` → engagements, value 1: like→like, retweet→repost, reply→reply, click→click (a few
  other plausible names are mapped too); anything else is dropped and counted in the notes.
  Exact duplicate keys are dropped.

Dropped on purpose: `engagement_prob` is the generator's label probability and `quality_score` a latent
of its generator — both leak the labels. The source's `split` column is not kept (we split by time).
Positives only; no impressions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from foryou.data.dataset import Dataset
from foryou.data.importers.common import (
    column,
    count_self_engagements,
    dedupe_follows,
    first_times,
    keep_rows,
    kind_events,
    map_kinds,
    original_posts,
    persons,
    plural,
    require_dir,
    require_file,
    topic_names_note,
)
from foryou.data.importers.flat import Flat, build_flat
from foryou.data.importers.sidefiles import FLAGS
from foryou.data.manifest import DatasetError
from foryou.vocab import DAY, HOUR

NAME = "minirecsys"
VERSION = "0.1.0"

# source interaction_type → our engagement kind
KIND_MAP: dict[str, str] = {
    "like": "like",
    "favorite": "like",
    "retweet": "repost",
    "repost": "repost",
    "reply": "reply",
    "click": "click",
    "profile_click": "profile_click",
    "follow": "follow_author",
    "not_interested": "not_interested",
    "mute": "mute",
    "block": "block",
    "report": "report",
}

COLUMNS: dict[str, list[str]] = {
    "users": ["user_id", "account_age_days"],
    "tweets": [
        "tweet_id",
        "author_id",
        "category",
        "text_length",
        "has_media",
        "has_link",
        "nsfw_score",
        "toxicity_score",
        "hours_old",
    ],
    "follows": ["follower_id", "followed_id"],
    "interactions": ["user_id", "tweet_id", "interaction_type", "timestamp"],
}


def _read(src: Path, name: str) -> pa.Table:
    path = require_file(src, f"{name}.parquet", "minirecsys")
    try:
        schema = pq.read_schema(path)
        missing = [c for c in COLUMNS[name] if c not in schema.names]
        if missing:
            raise DatasetError(f"{path}: expected column(s) {', '.join(missing)} not found")
        return pq.read_table(path, columns=COLUMNS[name])
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(f"{path}: cannot read Parquet: {exc}") from exc


def import_minirecsys(src: Path) -> Dataset:
    """Import the mini-recsys Parquet files in `src` (see the module docstring for the mapping)."""
    src = require_dir(src, "minirecsys")
    users_src, tweets, follows_src, inter = (_read(src, name) for name in COLUMNS)
    notes: list[str] = [
        "dropped as leaks: engagement_prob (the generator's label probability) and quality_score "
        "(a generator latent); the source's split column is not kept (split by engagement time quantiles)"
    ]
    user_ids = column(users_src, "user_id")
    known_users = pa.array(user_ids, pa.int64())
    # Tweets whose author is unknown cannot be posts.
    tweets, n_bad_author = keep_rows(tweets, pc.is_in(tweets["author_id"], value_set=known_users))
    if n_bad_author:
        notes.append(f"{plural(n_bad_author, 'tweet')} by unknown authors dropped")
    eng = _engagements(inter, known_users, tweets, notes)
    eng_user, eng_post, eng_time = column(eng, "user_id"), column(eng, "post_id"), column(eng, "created_at")
    t0 = int(eng_time.min()) if len(eng_time) else 0
    t1 = int(eng_time.max()) if len(eng_time) else 0

    age = column(users_src, "account_age_days")
    users = persons(user_ids, np.maximum(t0 - age * DAY, 0))
    posts, categories = _posts(tweets, eng_post, eng_time, t1)
    notes.append(topic_names_note(categories))
    notes.append(
        "times: user created_at = first interaction time − account_age_days·86400; post created_at = "
        "min(first interaction on it, last interaction time − hours_old·3600)"
    )

    ok_follow = pc.and_(
        pc.is_in(follows_src["follower_id"], value_set=known_users),
        pc.is_in(follows_src["followed_id"], value_set=known_users),
    )
    follows_src, n_bad_follow = keep_rows(follows_src, ok_follow)
    if n_bad_follow:
        notes.append(f"{plural(n_bad_follow, 'follow')} with unknown users dropped")
    follows, n_self, n_fdup = dedupe_follows(
        column(follows_src, "follower_id"), column(follows_src, "followed_id"), created_at=t0
    )
    notes.append(
        f"follows: {plural(n_self, 'self-follow')} and {plural(n_fdup, 'duplicate')} dropped; "
        "follow times are unknown and set to the first interaction time"
    )
    n_selfeng = count_self_engagements(column(tweets, "tweet_id"), column(tweets, "author_id"), eng_user, eng_post)
    if n_selfeng:
        notes.append(f"{plural(n_selfeng, 'engagement')} by authors on their own tweets kept")
    # onto the generic path (`importers.flat`): every table as computed here, ids kept
    events = pa.table({"user": eng["user_id"], "item": eng["post_id"], "kind": eng["kind"],
                       "time": eng["created_at"], "value": eng["value"]})
    items = posts.select(["post_id", "author_id", "created_at", "topic", "length", *FLAGS]).rename_columns(
        ["item", "author", "created_at", "topic", "length", *FLAGS])
    social = follows.select(["src_id", "dst_id"]).rename_columns(["src", "dst"])
    flat_users = users.select(["user_id", "handle", "created_at"]).rename_columns(["user", "handle", "created_at"])
    return build_flat(Flat(events, items, social, flat_users, notes), source=NAME, version=VERSION, name=NAME,
                      config={"topics": categories})


def _engagements(raw: pa.Table, known_users: pa.Array, tweets: pa.Table, notes: list[str]) -> pa.Table:
    """Interactions of mappable types on known users and tweets → engagements (value 1)."""
    inter, mapped, n_unmapped = map_kinds(raw, "interaction_type", KIND_MAP)
    if n_unmapped:
        bad = pc.value_counts(raw["interaction_type"].filter(pc.invert(mapped))).to_pylist()
        detail = ", ".join(f"{d['values']}: {d['counts']:,}" for d in bad)
        notes.append(f"{plural(n_unmapped, 'interaction')} of unmappable types dropped ({detail})")
    else:
        notes.append("0 interactions dropped: every interaction_type maps to an engagement kind")
    ok_ref = pc.and_(
        pc.is_in(inter["user_id"], value_set=known_users),
        pc.is_in(inter["tweet_id"], value_set=tweets["tweet_id"].combine_chunks()),
    )
    inter, n_orphan = keep_rows(inter, ok_ref)
    if n_orphan:
        notes.append(f"{plural(n_orphan, 'interaction')} on unknown users or tweets dropped")
    eng = kind_events(inter, "user_id", "tweet_id", "timestamp", notes)
    used = pc.value_counts(inter["interaction_type"]).to_pylist()
    notes.append(
        "interaction types: "
        + ", ".join(
            f"{d['values']}→{KIND_MAP[d['values']]} ({d['counts']:,})"
            for d in sorted(used, key=lambda d: -d["counts"])
        )
    )
    return eng


def _posts(
    tweets: pa.Table, eng_post: np.ndarray, eng_time: np.ndarray, t1: int
) -> tuple[pa.Table, list[str]]:
    """Tweets → original posts, created at min(first interaction, t1 − hours_old), clipped at 0; and the
    sorted categories (topic = index of the tweet's category among them)."""
    tweet_ids = column(tweets, "tweet_id")
    categories = sorted(c for c in pc.unique(tweets["category"]).to_pylist() if c is not None)
    topic = pc.fill_null(pc.index_in(tweets["category"], value_set=pa.array(categories, pa.string())), -1)
    first_eng = first_times(tweet_ids, eng_post, eng_time, default=np.iinfo(np.int64).max)
    hours_old = np.nan_to_num(column(tweets, "hours_old", np.float64), nan=0.0)
    aged = t1 - np.floor(hours_old * HOUR).astype(np.int64)
    created = np.maximum(np.minimum(first_eng, aged), 0)
    posts = original_posts(
        tweet_ids,
        column(tweets, "author_id"),
        created,
        topic.to_numpy(),
        has_media=pc.fill_null(tweets["has_media"], False).to_numpy(),
        has_link=pc.fill_null(tweets["has_link"], False).to_numpy(),
        length=np.maximum(pc.fill_null(tweets["text_length"], 0).to_numpy(), 0),
        is_nsfw=pc.fill_null(pc.greater_equal(tweets["nsfw_score"], 0.5), False).to_numpy(),
        is_toxic=pc.fill_null(pc.greater_equal(tweets["toxicity_score"], 0.5), False).to_numpy(),
    ).sort_by("post_id")
    return posts, categories
