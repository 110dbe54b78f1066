"""The serving index (DESIGN §6): immutable numpy structures built once from a History.

- users: sorted ids ↔ rows; the follow graph as CSR over rows;
- posts: columns by row, plus a per-author time-sorted store for in-network retrieval;
- engagement counters per post (and the time of each, for velocities and trending windows);
- the recent user→post engagement graph that UTEG walks (last `uteg_window_s`);
- related posts: item-to-item co-engagement neighbours (foryou.graph.related);
- per-user seen posts (impressions ∪ the user's own engagements: positives-only data logs no
  impressions) and negative signals (blocked / muted / not-interested authors).

Everything is built from a `History`, so an index for time t never contains an event at or after t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foryou.data.lookup import row_of, rows_of
from foryou.data.snapshot import Arrays, nest, unnest
from foryou.data.split import FollowGraph, History, follow_graph
from foryou.graph.related import RelatedPosts
from foryou.vocab import DAY, ENGAGEMENT_KINDS, HOUR, NEGATIVE, POSITIVE, POST_KINDS, SAFETY_LABELS

KIND_CODE = {k: i for i, k in enumerate(ENGAGEMENT_KINDS)}
_BIG = np.int64(1 << 40)
# Columns by post row: the real-time overlay extends each when a post is created after the build.
POST_COLUMNS: tuple[str, ...] = ("post_id", "author_row", "created_at", "kind", "parent_row", "topic", "has_media",
                                 "has_link", "length", *SAFETY_LABELS, "impressions_count", "counts_24h")
# Every other array of the index (what a snapshot stores besides the CSRs, counts and scalars).
_ARRAYS: tuple[str, ...] = ("by_author", "author_keys", "by_time", "live_keys", "live_rows", "positive_time",
                            "positive_post", "engaged_time", "engaged_post", "fatigue_user_times",
                            "author_followers", "author_positive", "author_impressions", "user_topic")
_CSRS: tuple[str, ...] = ("uteg", "blocked_authors", "fatigue_authors", "seen")


@dataclass(frozen=True)
class CSR:
    """Rows → sorted runs of values (and optional parallel arrays)."""

    indptr: np.ndarray
    values: np.ndarray

    @classmethod
    def build(cls, rows: np.ndarray, values: np.ndarray, n_rows: int, unique: bool = False) -> CSR:
        # One int64 sort of row·2⁴⁰ + value is several times faster than lexsort.
        keys = np.sort(rows.astype(np.int64) * _BIG + values)
        if unique and len(keys):
            keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
            rows = keys // _BIG
        indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=n_rows))].astype(np.int64)
        return cls(indptr, keys % _BIG)

    def row(self, r: int) -> np.ndarray:
        return self.values[self.indptr[r]:self.indptr[r + 1]]

    def to_arrays(self) -> Arrays:
        return {"indptr": self.indptr, "values": self.values}

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> CSR:
        return cls(arrays["indptr"], arrays["values"])

    def rows(self, rs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values, owning position in `rs`) for many rows at once, vectorised."""
        starts, ends = self.indptr[rs], self.indptr[rs + 1]
        counts = ends - starts
        owner = np.repeat(np.arange(len(rs)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return self.values[np.repeat(starts, counts) + offsets], owner


class ServingIndex:
    # post columns read as they are (flags and lengths by post row)
    has_media: np.ndarray
    has_link: np.ndarray
    length: np.ndarray
    is_nsfw: np.ndarray
    is_toxic: np.ndarray
    is_spam: np.ndarray
    is_misinfo: np.ndarray

    def __init__(self, h: History, uteg_window_s: int = 48 * HOUR):
        self.as_of = h.as_of
        self.follows = follow_graph(h)
        self.user_ids = self.follows.user_ids
        n_users = len(self.user_ids)

        p = h.posts.sort_by("post_id")
        self.post_id = p["post_id"].to_numpy()
        self.author_row = rows_of(self.user_ids, p["author_id"].to_numpy(), "user")
        self.created_at = p["created_at"].to_numpy()
        kind = p["kind"].to_numpy(zero_copy_only=False)
        self.kind = np.select([kind == k for k in POST_KINDS], np.arange(len(POST_KINDS)), 0).astype(np.int8)
        parent = p["parent_id"].fill_null(-1).to_numpy()
        self.parent_row = np.full(len(parent), -1, dtype=np.int64)
        self.parent_row[parent >= 0] = self.post_rows(parent[parent >= 0])
        self.topic = p["topic"].to_numpy().astype(np.int16)
        for name in ("has_media", "has_link", "length", "is_nsfw", "is_toxic", "is_spam", "is_misinfo"):
            setattr(self, name, p[name].to_numpy(zero_copy_only=False))
        # Per-author time-sorted store: keys author·2⁴⁰ + created_at, sorted.
        self.by_author = np.lexsort((self.created_at, self.author_row))
        self.author_keys = self.author_row[self.by_author].astype(np.int64) * _BIG + self.created_at[self.by_author]
        self.by_time = np.argsort(self.created_at, kind="stable")
        # Posts added after the build by the real-time overlay (same key scheme, kept sorted; small).
        self.live_keys = np.empty(0, np.int64)
        self.live_rows = np.empty(0, np.int64)

        e = h.engagements
        e_user = rows_of(self.user_ids, e["user_id"].to_numpy(), "user")
        e_post = self.post_rows(e["post_id"].to_numpy())
        e_kind = pc.index_in(e["kind"], value_set=pa.array(ENGAGEMENT_KINDS)).to_numpy(zero_copy_only=False)
        e_time = e["created_at"].to_numpy()
        n_posts = len(self.post_id)
        self.counts = {k: np.bincount(e_post[e_kind == KIND_CODE[k]], minlength=n_posts).astype(np.int32)
                       for k in ENGAGEMENT_KINDS}
        day = e_time >= self.as_of - DAY
        positive = np.isin(e_kind, [KIND_CODE[k] for k in POSITIVE])
        self.counts_24h = np.bincount(e_post[positive & day], minlength=n_posts).astype(np.int32)
        # Positive engagements by time, for trending counts over a configurable window (`positives_since`).
        self.positive_time, self.positive_post = _by_time(e_time, e_post, positive)
        self._since: dict[str, tuple[tuple[int, int], np.ndarray]] = {}
        self._positives_total: np.ndarray | None = None
        recent = positive & (e_time >= self.as_of - uteg_window_s)  # UTEG: user row → recent positive posts
        self.uteg = CSR.build(e_user[recent], e_post[recent], n_users)
        self.related = _related_posts(e_user, e_post, e_kind, e_time, self.as_of - uteg_window_s, n_users, n_posts)
        # Negative signals by author.
        neg_author = self.author_row[e_post]
        hard = np.isin(e_kind, [KIND_CODE["block"], KIND_CODE["mute"]])
        self.blocked_authors = CSR.build(e_user[hard], neg_author[hard], n_users)
        soft = e_kind == KIND_CODE["not_interested"]
        order = np.lexsort((e_time[soft], neg_author[soft], e_user[soft]))
        indptr = np.r_[0, np.cumsum(np.bincount(e_user[soft], minlength=n_users))].astype(np.int64)
        self.fatigue_authors = CSR(indptr, neg_author[soft][order])
        self.fatigue_user_times = e_time[soft][order]

        i = h.impressions
        i_post = self.post_rows(i["post_id"].to_numpy())
        # Seen = impressions ∪ the user's own engagements (the same on logged worlds; on positives-only
        # data, which has no impressions, this keeps posts a user already engaged with off their page).
        i_user = rows_of(self.user_ids, i["user_id"].to_numpy(), "user")
        self.seen = CSR.build(np.r_[i_user, e_user], np.r_[i_post, e_post], n_users, unique=True)
        self.impressions_count = np.bincount(i_post, minlength=n_posts).astype(np.int32)
        # Every non-negative engagement by time (a rating of any value, a tag), for trending on data without
        # impressions (`timeline.sources.trending_counts = engaged`); a logged feed counts positives only.
        engaged = ~np.isin(e_kind, [KIND_CODE[k] for k in NEGATIVE]) & (len(i_post) == 0)
        self.engaged_time, self.engaged_post = _by_time(e_time, e_post, engaged)
        self.author_followers = self.follows.in_degree()
        # Author reputation: positive engagements and impressions summed over the author's posts.
        pos_per_post = np.sum([self.counts[k] for k in POSITIVE], axis=0, dtype=np.float64)
        self.author_positive = np.bincount(self.author_row, weights=pos_per_post, minlength=n_users)
        self.author_impressions = np.bincount(self.author_row, weights=self.impressions_count, minlength=n_users)
        # Each user's topic profile: positive engagements per topic (dense users × topics).
        self.n_topics = int(max(self.topic.max(initial=-1) + 1, 1))
        e_topic = self.topic[e_post].astype(np.int64)
        ok = positive & (e_topic >= 0)
        self.user_topic = np.bincount(e_user[ok] * self.n_topics + e_topic[ok], minlength=n_users * self.n_topics
                                      ).reshape(n_users, self.n_topics).astype(np.float32)
        # Base rates per head (per impression when impressions exist, else per engagement).
        denom = max(int(self.impressions_count.sum()), 1) if len(i_post) else max(len(e_post), 1)
        self.base_rate = {k: float(self.counts[k].sum()) / denom for k in ENGAGEMENT_KINDS}

    # -- snapshot ---------------------------------------------------------------------------------

    def to_arrays(self) -> Arrays:
        """Every built structure as named arrays (and a few JSON scalars), for `foryou.data.snapshot`."""
        out: Arrays = {name: getattr(self, name) for name in (*POST_COLUMNS, *_ARRAYS)}
        for name in _CSRS:
            out |= nest(name, getattr(self, name).to_arrays())
        out |= nest("follows", self.follows.to_arrays()) | nest("counts", self.counts)
        out |= nest("related", self.related.to_arrays())
        return out | {"as_of": int(self.as_of), "n_topics": self.n_topics, "base_rate": self.base_rate}

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> ServingIndex:
        index = cls.__new__(cls)
        for name in (*POST_COLUMNS, *_ARRAYS):
            setattr(index, name, arrays[name])
        for name in _CSRS:
            setattr(index, name, CSR.from_arrays(unnest(arrays, name)))
        index.follows = FollowGraph.from_arrays(unnest(arrays, "follows"))
        index.related = RelatedPosts.from_arrays(unnest(arrays, "related"))
        index.user_ids = index.follows.user_ids
        index.counts = {k: arrays[f"counts.{k}"] for k in ENGAGEMENT_KINDS}
        index.as_of, index.n_topics = int(arrays["as_of"]), int(arrays["n_topics"])
        index.base_rate = {k: float(v) for k, v in arrays["base_rate"].items()}
        index._since, index._positives_total = {}, None
        return index

    # -- lookups ----------------------------------------------------------------------------------

    @property
    def has_impressions(self) -> bool:
        """Whether the data logs impressions (positives-only data: ratings, tags, likes do not)."""
        if not hasattr(self, "_has_impressions"):
            self._has_impressions = bool(self.impressions_count.any())
        return self._has_impressions

    def positives_total(self, rows: np.ndarray) -> np.ndarray:
        """Positive engagements per post row before the build (posts created since count 0)."""
        if self._positives_total is None:
            self._positives_total = np.sum([self.counts[k] for k in POSITIVE], axis=0).astype(np.int32)
        total = self._positives_total
        rows = np.asarray(rows)
        return np.where(rows < len(total), total[np.minimum(rows, len(total) - 1)], 0)

    def positives_since(self, since: int, counted: str = "positive") -> np.ndarray:
        """Positive engagements per post row at or after `since` (before the build; live posts count 0);
        `counted="engaged"`: every non-negative one (data without impressions; else positives). Cached for the
        last `since` of each: trending asks with the same window on every request."""
        n = len(self.post_id)
        times, posts = ((self.engaged_time, self.engaged_post) if counted == "engaged" and len(self.engaged_time)
                        else (self.positive_time, self.positive_post))
        cached = self._since.get(counted)
        if cached is None or cached[0] != (since, n):
            lo = int(np.searchsorted(times, since))
            cached = self._since[counted] = ((since, n), np.bincount(posts[lo:], minlength=n).astype(np.int32))
        return cached[1]

    def user_row(self, user_id: int) -> int | None:
        return row_of(self.user_ids, user_id)

    def post_rows(self, post_ids: np.ndarray) -> np.ndarray:
        return rows_of(self.post_id, post_ids, "post")

    def following_rows(self, user_row: int) -> np.ndarray:
        a = self.follows.adjacency
        return a.indices[a.indptr[user_row]:a.indptr[user_row + 1]]

    def recent_posts_by(self, author_rows: np.ndarray, since: int, until: int) -> np.ndarray:
        """Rows of posts by these authors created in [since, until), vectorised over authors
        (posts added live after the build included)."""
        a = author_rows.astype(np.int64) * _BIG
        rows = _runs(self.author_keys, self.by_author, a + since, a + until)
        if len(self.live_rows):
            rows = np.r_[rows, _runs(self.live_keys, self.live_rows, a + since, a + until)]
        return rows

    def recent_posts(self, since: int, until: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.created_at[self.by_time], [since, until])
        rows = self.by_time[lo:hi]
        if len(self.live_rows):
            c = self.created_at[self.live_rows]
            rows = np.r_[rows, self.live_rows[(c >= since) & (c < until)]]
        return rows

    def add_live_post(self, row: int) -> None:
        """Make a post appended after the build (its columns already extended) retrievable."""
        key = int(self.author_row[row]) * int(_BIG) + int(self.created_at[row])
        at = int(np.searchsorted(self.live_keys, key, side="right"))
        self.live_keys = np.insert(self.live_keys, at, key)
        self.live_rows = np.insert(self.live_rows, at, row)


def _by_time(time: np.ndarray, post: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(times, post rows) of the kept events, oldest first."""
    order = np.argsort(time[keep], kind="stable")
    return time[keep][order], post[keep][order]


def _related_posts(user: np.ndarray, post: np.ndarray, kind: np.ndarray, time: np.ndarray, since: int,
                   n_users: int, n_posts: int) -> RelatedPosts:
    """Co-engagement over every non-negative engagement (a rating, a tag, a like) since `since`: the UTEG
    window (GraphJet keeps a recent window: a feed's last days, a catalog's whole derived span)."""
    engaged = ~np.isin(kind, [KIND_CODE[k] for k in NEGATIVE]) & (time >= since)
    return RelatedPosts.build(user[engaged], post[engaged], time[engaged], n_users, n_posts)


def _runs(keys: np.ndarray, rows: np.ndarray, lo_keys: np.ndarray, hi_keys: np.ndarray) -> np.ndarray:
    """rows[i] for every i with lo_keys[j] ≤ keys[i] < hi_keys[j] for some j (keys sorted)."""
    lo = np.searchsorted(keys, lo_keys)
    hi = np.searchsorted(keys, hi_keys)
    counts = hi - lo
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows[np.repeat(lo, counts) + offsets]

