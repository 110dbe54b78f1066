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
  from `user_artists` (1.0 when absent). Rows before 2005 (bogus years 1956/1957/1979) or with an invalid
  date are bad rows: counted and shown with their line numbers in the notes (as `import interactions`
  does), never imported.
- Play-count pairs with no tag event carry no date and are not imported as events (counted in notes).

Positives only; no impressions. The dataset start is the first engagement time.
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
    dedupe_follows,
    engagements_from,
    handles,
    names_or_handles,
    plural,
    read_delimited,
    require_dir,
    require_file,
    start_time,
    topic_names_note,
    with_unlisted,
)
from foryou.data.importers.events import MAX_EXAMPLES, BadRow, BadRows
from foryou.data.importers.flat import Flat, build_flat
from foryou.data.lookup import member, rows_of

NAME = "lastfm"
VERSION = "0.1.0"
WHAT = "Last.fm HetRec 2011"
MIN_YEAR = 2005
N_TOPICS = 30

I64 = pa.int64()
# file → its columns (every file is tab-separated with a header)
FILES: dict[str, dict[str, pa.DataType | None]] = {
    "artists.dat": {"id": I64, "name": pa.string()},
    "user_artists.dat": {"userID": I64, "artistID": I64, "weight": pa.float64()},
    "user_friends.dat": {"userID": I64, "friendID": I64},
    "user_taggedartists.dat": {"userID": I64, "artistID": I64, "tagID": I64, "day": I64, "month": I64, "year": I64},
    "tags.dat": {"tagID": I64, "tagValue": pa.string()},
}
LATIN1 = {"tags.dat"}
TAGGED = "user_taggedartists.dat"


def import_lastfm(src: Path) -> Dataset:
    """Import HetRec 2011 Last.fm 2k from `src` (see the module docstring for the mapping)."""
    src = require_dir(src, WHAT)
    raw = {
        name: read_delimited(
            require_file(src, name, WHAT), cols, "\t", header=True, encoding="latin-1" if name in LATIN1 else "utf8"
        )
        for name, cols in FILES.items()
    }
    plays, friends = raw["user_artists.dat"], raw["user_friends.dat"]
    notes: list[str] = []
    tagged, ev_time, dropped = _dated_tag_events(raw[TAGGED], notes)
    ev_artist = column(tagged, "artistID")
    tag_rank, topic_names = _top_tags(column(tagged, "tagID"), raw["tags.dat"])
    eng, play_pairs = _likes(column(tagged, "userID"), ev_artist, ev_time, plays, dropped, notes)
    start = start_time(eng)

    follows, n_self, n_fdup = dedupe_follows(
        column(friends, "userID"), column(friends, "friendID"), created_at=start
    )
    notes.append(
        f"friends → follows as listed: {plural(n_self, 'self-follow')} and {plural(n_fdup, 'duplicate')} "
        "dropped; created at the dataset start (friendships carry no time)"
    )

    # Listeners exist from their first event: a like, or a friendship (dated at the dataset start).
    pair_user, pair_artist = column(play_pairs, "user_id"), column(play_pairs, "post_id")
    listeners = np.unique(
        np.concatenate([pair_user, column(friends, "userID"), column(friends, "friendID"), column(tagged, "userID")])
    )
    befriended = np.isin(listeners, np.concatenate([column(follows, "src_id"), column(follows, "dst_id")]))
    users = pa.table({"user": listeners, "handle": handles("user", listeners),
                      "created_at": pa.array(np.where(befriended, start, -1), pa.int64(), mask=~befriended)})
    # One catalog account and post per artist (the generic path: items without an author).
    artists = raw["artists.dat"]
    artist_ids, n_unlisted = with_unlisted(column(artists, "id"), pair_artist, column(eng, "post_id"))
    if n_unlisted:
        notes.append(
            f"{plural(n_unlisted, 'artist')} referenced but missing from artists.dat kept as 'artist<id>'"
        )
    names = names_or_handles(artist_ids, artists["id"], artists["name"], "artist")
    items = pa.table({"item": artist_ids, "name": names,
                      "topic": _artist_topics(artist_ids, ev_artist, tag_rank)})
    offset = catalog_offset(int(listeners.max(initial=0)))
    notes.append(f"artist accounts: user_id = artist_id + {offset:,} (kind catalog); post_id = artist_id")
    notes.append(topic_names_note(topic_names))
    events = pa.table({"user": eng["user_id"], "item": eng["post_id"], "kind": eng["kind"],
                       "time": eng["created_at"], "value": eng["value"]})
    social = pa.table({"src": friends["userID"], "dst": friends["friendID"]})
    return build_flat(Flat(events, items, social, users, notes), source=NAME, version=VERSION,
                      name="lastfm-hetrec2011-2k", config={"topics": topic_names})


def _dates_to_unix(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """00:00 UTC of each (year, month, day) as Unix seconds (vectorised)."""
    months = ((year - 1970) * 12 + (month - 1)).astype("datetime64[M]")
    days = months.astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")
    return days.astype("datetime64[s]").astype(np.int64)


def _dated_tag_events(tagged: pa.Table, notes: list[str]) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The tag events with a valid date from MIN_YEAR on, and each one's time; the bad rows (bogus dates)
    are counted and shown with their line numbers, like the generic importer's, and their (user, artist)
    pairs returned so play counts are not blamed on a missing tag event."""
    year, month, day = column(tagged, "year"), column(tagged, "month"), column(tagged, "day")
    ok = (year >= MIN_YEAR) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)
    bad_at = np.flatnonzero(~ok)
    if len(bad_at):
        examples = tuple(BadRow(int(i) + 2, "date before 2005 or invalid", f"{day[i]}/{month[i]}/{year[i]}")
                         for i in bad_at[:MAX_EXAMPLES])  # line 1 is the header; one line per row
        years = sorted(set(year[bad_at].tolist()))
        notes.append(f"{TAGGED}: {BadRows(len(bad_at), examples)} skipped: a tag event dated before {MIN_YEAR} "
                     f"(bogus years {', '.join(map(str, years))}) or on an invalid date")
    else:
        notes.append(f"{TAGGED}: 0 bad rows (every tag event is dated {MIN_YEAR} or later)")
    dropped = np.stack([column(tagged, "userID")[bad_at], column(tagged, "artistID")[bad_at]], axis=1)
    return tagged.filter(pa.array(ok)), _dates_to_unix(year[ok], month[ok], day[ok]), dropped


def _top_tags(ev_tag: np.ndarray, tags: pa.Table) -> tuple[np.ndarray, list[str]]:
    """The N_TOPICS most frequent tags overall (ties: lower tag id): each event's tag rank among them
    (-1 outside) and their names."""
    tag_ids, tag_counts = np.unique(ev_tag, return_counts=True)
    top = tag_ids[np.lexsort((tag_ids, -tag_counts))][:N_TOPICS]
    tag_rank = np.full(len(ev_tag), -1, dtype=np.int64)
    order = np.argsort(top)
    hit, pos = member(top[order], ev_tag)
    tag_rank[hit] = order[pos[hit]]
    name_idx = pc.index_in(pa.array(top, I64), value_set=tags["tagID"].combine_chunks())
    topic_names = [
        n if n is not None else f"tag{t}"
        for n, t in zip(pc.take(tags["tagValue"], name_idx).to_pylist(), top.tolist(), strict=True)
    ]
    return tag_rank, topic_names


def _likes(
    ev_user: np.ndarray, ev_artist: np.ndarray, ev_time: np.ndarray, plays: pa.Table, dropped: np.ndarray,
    notes: list[str],
) -> tuple[pa.Table, pa.Table]:
    """One like per (user, artist, date), value = the play count (1 without one): (the engagements,
    the play-count pairs as user_id, post_id, weight)."""
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
    eng, n_dup = engagements_from(
        column(joined, "user_id"), column(joined, "post_id"), "like", column(joined, "created_at"), value
    )
    notes.append(
        f"{plural(n_collapsed, 'tag event')} collapsed: one like per (user, artist, date), "
        f"{plural(eng.num_rows, 'like')} at 00:00 UTC of the tag date (month resolution in practice)"
    )
    notes.append(f"{plural(n_no_play, 'like')} without a play count get value 1.0")
    # Play-count pairs never tagged have no date: not imported as events.
    pair_user, pair_artist = column(play_pairs, "user_id"), column(play_pairs, "post_id")
    eng_user, eng_post = column(eng, "user_id"), column(eng, "post_id")
    width = int(max(pair_artist.max(initial=0), eng_post.max(initial=0), dropped[:, 1].max(initial=0))) + 1
    tagged_keys = np.unique(eng_user * width + eng_post)
    pair_keys = pair_user * width + pair_artist
    untagged = ~np.isin(pair_keys, tagged_keys)
    only_bad = int((untagged & np.isin(pair_keys, dropped[:, 0] * width + dropped[:, 1])).sum())
    notes.append(
        f"{plural(int(untagged.sum()), 'play-count pair')} (of {len(pair_user):,}) with no dated tag event "
        f"have no date and are not imported as events ({only_bad:,} of them were tagged only on bad rows, "
        f"see {TAGGED})"
    )
    if n_dup:
        notes.append(f"{plural(n_dup, 'exact duplicate engagement')} dropped")
    return eng, play_pairs


def _artist_topics(artist_ids: np.ndarray, ev_artist: np.ndarray, tag_rank: np.ndarray) -> np.ndarray:
    """Per artist the most frequent top tag on it (ties: the more frequent tag overall), else -1."""
    topic = np.full(len(artist_ids), -1, dtype=np.int64)
    in_top = tag_rank >= 0
    if in_top.any():
        a, r = ev_artist[in_top], tag_rank[in_top]
        pairs, counts = np.unique(np.stack([a, r], axis=1), axis=0, return_counts=True)
        best = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))  # by artist, count desc, rank asc
        pairs = pairs[best]
        first = np.unique(pairs[:, 0], return_index=True)[1]
        topic[rows_of(artist_ids, pairs[first, 0], "artist")] = pairs[first, 1]
    return topic
