"""Import HetRec 2011 Last.fm 2k (tab-separated files with headers; `tags.dat` is Latin-1).

Mapping:

- Listeners (every user id in `user_artists`, `user_friends`, `user_taggedartists`) → users: kind
  `person`, ids kept, handle `user<id>`, created at their first event: a like, or a friendship (those
  are dated at the dataset start), else the dataset start.
- Each artist → one `catalog` account, user id = artist id + offset (offset = 10**ceil(log10(largest
  listener id + 1)), i.e. 10000), handle = the artist's name, and one original post by it with
  `post_id` = artist id; `topic` = index (0–29) of the artist's most frequent tag among the 30 most
  frequent tags of `user_taggedartists` (ties: the more frequent tag overall), else -1; flags false,
  length 0. Post and account are created at the post's first engagement (else the dataset start).
- `user_friends` → follows, both directions as listed, deduplicated, self-follows dropped, created at
  the dataset start (the friendships carry no time).
- `user_taggedartists` rows → `like` engagements at 00:00 UTC of their day/month/year, one per (user,
  artist, date) however many tags were applied that day; value = the user's play count of the artist
  from `user_artists` (1.0 when absent). Rows before 2005 (bogus years 1956/1957/1979) are dropped.
- Play-count pairs with no tag event carry no date and are not imported as events (counted in notes).

Positives only; no impressions. The dataset start is the first engagement time.
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
    dedupe_follows,
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

NAME = "lastfm"
VERSION = "0.1.0"
MIN_YEAR = 2005
N_TOPICS = 30

I64 = pa.int64()



def _dates_to_unix(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """00:00 UTC of each (year, month, day) as Unix seconds (vectorised)."""
    months = ((year - 1970) * 12 + (month - 1)).astype("datetime64[M]")
    days = months.astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")
    return days.astype("datetime64[s]").astype(np.int64)


def import_lastfm(src: Path) -> Dataset:
    """Import HetRec 2011 Last.fm 2k from `src` (see the module docstring for the mapping)."""
    src = require_dir(src, "Last.fm HetRec 2011")
    what = "Last.fm HetRec 2011"
    artists_src = read_delimited(
        require_file(src, "artists.dat", what), {"id": I64, "name": pa.string()}, "\t", header=True
    )
    plays = read_delimited(
        require_file(src, "user_artists.dat", what),
        {"userID": I64, "artistID": I64, "weight": pa.float64()},
        "\t",
        header=True,
    )
    friends = read_delimited(
        require_file(src, "user_friends.dat", what), {"userID": I64, "friendID": I64}, "\t", header=True
    )
    tagged = read_delimited(
        require_file(src, "user_taggedartists.dat", what),
        {"userID": I64, "artistID": I64, "tagID": I64, "day": I64, "month": I64, "year": I64},
        "\t",
        header=True,
    )
    tags = read_delimited(
        require_file(src, "tags.dat", what),
        {"tagID": I64, "tagValue": pa.string()},
        "\t",
        header=True,
        encoding="latin-1",
    )
    notes: list[str] = []

    # Tag events: drop bogus dates.
    year, month, day = column(tagged, "year"), column(tagged, "month"), column(tagged, "day")
    ok = (year >= MIN_YEAR) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)
    n_bogus = int((~ok).sum())
    bogus_years = sorted(set(year[~ok].tolist()))
    notes.append(
        f"{plural(n_bogus, 'tag event')} dated before {MIN_YEAR} (or with an invalid date) dropped"
        + (f" (years {', '.join(map(str, bogus_years))})" if n_bogus else "")
    )
    tagged = tagged.filter(pa.array(ok))
    ev_user, ev_artist, ev_tag = column(tagged, "userID"), column(tagged, "artistID"), column(tagged, "tagID")
    ev_time = _dates_to_unix(year[ok], month[ok], day[ok])

    # Topics: the 30 most frequent tags overall (ties: lower tag id).
    tag_ids, tag_counts = np.unique(ev_tag, return_counts=True)
    top = tag_ids[np.lexsort((tag_ids, -tag_counts))][:N_TOPICS]
    tag_rank = np.full(len(ev_tag), -1, dtype=np.int64)
    if len(top):
        order = np.argsort(top)
        pos = np.minimum(np.searchsorted(top, ev_tag, sorter=order), len(top) - 1)
        hit = top[order][pos] == ev_tag
        tag_rank[hit] = order[pos[hit]]
    name_idx = pc.index_in(pa.array(top, I64), value_set=tags["tagID"].combine_chunks())
    topic_names = [
        n if n is not None else f"tag{t}"
        for n, t in zip(pc.take(tags["tagValue"], name_idx).to_pylist(), top.tolist(), strict=True)
    ]

    # One engagement per (user, artist, date); value = play count.
    events = pa.table({"user_id": ev_user, "post_id": ev_artist, "created_at": ev_time})
    uniq = events.group_by(["user_id", "post_id", "created_at"], use_threads=False).aggregate([])
    n_collapsed = events.num_rows - uniq.num_rows
    play_pairs = (
        plays.group_by(["userID", "artistID"], use_threads=False)
        .aggregate([("weight", "max")])
        .rename_columns(["user_id", "post_id", "weight"])
    )
    joined = uniq.join(play_pairs, keys=["user_id", "post_id"], join_type="left outer")
    value = pc.fill_null(joined["weight"], 1.0).to_numpy()
    n_no_play = int(joined["weight"].null_count)
    eng, n_dup = dedupe_engagements(
        engagements_table(
            column(joined, "user_id"), column(joined, "post_id"), "like", column(joined, "created_at"), value
        )
    )
    eng_user, eng_post, eng_time = column(eng, "user_id"), column(eng, "post_id"), column(eng, "created_at")
    start = int(eng_time.min()) if len(eng_time) else 0
    notes.append(
        f"{plural(n_collapsed, 'tag event')} collapsed: one like per (user, artist, date), "
        f"{plural(eng.num_rows, 'like')} at 00:00 UTC of the tag date (month resolution in practice)"
    )
    notes.append(f"{plural(n_no_play, 'like')} without a play count get value 1.0")

    # Play-count pairs never tagged have no date: not imported as events.
    pair_user, pair_artist = column(play_pairs, "user_id"), column(play_pairs, "post_id")
    width = int(max(pair_artist.max(initial=0), eng_post.max(initial=0))) + 1
    tagged_keys = np.unique(eng_user * width + eng_post)
    n_untagged = int((~np.isin(pair_user * width + pair_artist, tagged_keys)).sum())
    notes.append(
        f"{plural(n_untagged, 'play-count pair')} (of {len(pair_user):,}) with no tag event have no date "
        "and are not imported as events"
    )
    if n_dup:
        notes.append(f"{plural(n_dup, 'exact duplicate engagement')} dropped")

    # Follows.
    follows, n_self, n_fdup = dedupe_follows(
        column(friends, "userID"), column(friends, "friendID"), created_at=start
    )
    notes.append(
        f"friends → follows as listed: {plural(n_self, 'self-follow')} and {plural(n_fdup, 'duplicate')} "
        "dropped; created at the dataset start (friendships carry no time)"
    )

    # Users: listeners and one catalog account per artist.
    listeners = np.unique(
        np.concatenate([pair_user, column(friends, "userID"), column(friends, "friendID"), column(tagged, "userID")])
    )
    offset = catalog_offset(int(listeners.max(initial=0)))
    # A listener exists from their first event: a like, or a friendship (dated at the dataset start).
    f_src, f_dst = column(follows, "src_id"), column(follows, "dst_id")
    listener_created = first_times(
        listeners,
        np.concatenate([eng_user, f_src, f_dst]),
        np.concatenate([eng_time, np.full(len(f_src) + len(f_dst), start, dtype=np.int64)]),
        default=start,
    )
    known_artist_ids = column(artists_src, "id")
    artist_ids = np.unique(np.concatenate([known_artist_ids, pair_artist, eng_post]))
    n_unlisted = int((~np.isin(artist_ids, known_artist_ids)).sum())
    if n_unlisted:
        notes.append(
            f"{plural(n_unlisted, 'artist')} referenced but missing from artists.dat kept as 'artist<id>'"
        )
    post_created = first_times(artist_ids, eng_post, eng_time, default=start)
    name_idx = pc.index_in(pa.array(artist_ids, I64), value_set=artists_src["id"].combine_chunks())
    artist_names = pc.take(artists_src["name"].combine_chunks(), name_idx)
    artist_names = pc.if_else(pc.is_valid(artist_names), artist_names, handles("artist", artist_ids))
    users = pa.concat_tables(
        [
            users_table(listeners, handles("user", listeners), "person", listener_created),
            users_table(artist_ids + offset, artist_names, "catalog", post_created),
        ]
    )
    notes.append(f"artist accounts: user_id = artist_id + {offset:,} (kind catalog); post_id = artist_id")

    # Artist topics: most frequent top-30 tag on the artist (ties: the more frequent tag overall).
    topic = np.full(len(artist_ids), -1, dtype=np.int64)
    in_top = tag_rank >= 0
    if in_top.any():
        a, r = ev_artist[in_top], tag_rank[in_top]
        pairs, counts = np.unique(np.stack([a, r], axis=1), axis=0, return_counts=True)
        best = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))  # by artist, count desc, rank asc
        pairs = pairs[best]
        first = np.unique(pairs[:, 0], return_index=True)[1]
        topic[np.searchsorted(artist_ids, pairs[first, 0])] = pairs[first, 1]
    posts = original_posts(artist_ids, artist_ids + offset, post_created, topic)
    notes.append(topic_names_note(topic_names))

    manifest = Manifest(
        name="lastfm-hetrec2011-2k",
        source=NAME,
        generator=f"foryou.import.{NAME} {VERSION}",
        split=split_by_quantiles(eng_time),
        positives_only=True,
        notes=notes,
        config={"topics": topic_names, "catalog_offset": offset},
    )
    tables = {
        "users": users,
        "posts": posts,
        "follows": follows,
        "engagements": eng,
        "impressions": empty_table("impressions"),
    }
    return Dataset.build(tables, manifest)
