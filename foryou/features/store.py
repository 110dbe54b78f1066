"""The feature store: every ranking feature declared once, computed by one function for training
rows (each at its own impression time) and for served candidates (at request time).

Both paths read the same point-in-time `EventCounter`s, built from a `History`: a count is always
"events of this key strictly before t". Training rows at time t and a candidate served at time t
from an index built at t therefore get identical features — no training/serving skew (tested).
Live events recorded after the build are added to the counters' small overlay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foryou.data.lookup import member, rows_of
from foryou.data.snapshot import Arrays, nest, unnest
from foryou.data.split import History, _require_history
from foryou.features.counter import EventCounter
from foryou.features.sequences import EngagementSequences
from foryou.vocab import DAY, ENGAGEMENT_KINDS, HOUR, NEGATIVE, POSITIVE, SAFETY_LABELS

PRIOR_IMPRESSIONS = 20.0


@dataclass(frozen=True)
class Feature:
    name: str
    group: str  # user | post | author | user_author | context
    doc: str


FEATURES: tuple[Feature, ...] = (
    Feature("age_log_h", "post", "log1p(hours since the post was created)"),
    Feature("post_positive_log", "post", "log1p(likes + reposts + replies before t)"),
    Feature("post_impressions_log", "post", "log1p(impressions before t)"),
    Feature("post_rate", "post", "positives per impression, smoothed toward the base rate"),
    Feature("post_positive_24h_log", "post", "log1p(positives in the 24 h before t): velocity"),
    Feature("post_negative_rate", "post", "negative feedback per impression, smoothed"),
    Feature("has_media", "post", "image or video"),
    Feature("has_link", "post", "external link"),
    Feature("length_log", "post", "log1p(text length)"),
    Feature("is_reply", "post", "a reply"),
    Feature("is_repost", "post", "a repost"),
    Feature("is_nsfw", "post", "safety label"),
    Feature("is_toxic", "post", "safety label"),
    Feature("is_spam", "post", "safety label"),
    Feature("is_misinfo", "post", "safety label"),
    Feature("author_rate", "author", "positives per impression over the author's posts, smoothed"),
    Feature("author_impressions_log", "author", "log1p(impressions of the author's posts)"),
    Feature("author_negative_rate", "author", "negative feedback per impression on the author, smoothed"),
    Feature("author_followers_log", "author", "log1p(followers before t)"),
    Feature("user_topic_share", "user", "share of the viewer's positives on this post's topic (smoothed)"),
    Feature("user_positive_log", "user", "log1p(viewer's positives before t)"),
    Feature("user_impressions_log", "user", "log1p(viewer's impressions before t)"),
    Feature("user_negative_rate", "user", "viewer's negative feedback per impression, smoothed"),
    Feature("user_media_share", "user", "share of the viewer's positives on posts with media (smoothed)"),
    Feature("user_unsafe_negative_log", "user", "log1p(viewer's negative feedback on posts with a safety label)"),
    Feature("user_topic_rate", "user", "viewer's positives per impression on this post's topic, smoothed"),
    Feature("user_topic_impression_share", "user",
            "share of the viewer's impressions on this post's topic (smoothed): what past pages believed"),
    Feature("user_author_positive_log", "user_author", "log1p(viewer's positives on this author)"),
    Feature("user_author_impressions_log", "user_author", "log1p(viewer's impressions of this author)"),
    Feature("user_author_rate", "user_author", "viewer's positives per impression of this author, smoothed"),
    Feature("user_author_negative", "user_author", "viewer's negative feedback on this author (count)"),
    Feature("in_network", "user_author", "the viewer follows the author"),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
# Schema of the model inputs: a model trained on another feature list or definition is rejected at
# load time. Bump FEATURE_VERSION whenever a feature's computation changes.
FEATURE_VERSION = 5
FEATURE_SCHEMA = hashlib.sha256(f"{FEATURE_VERSION}|{'|'.join(FEATURE_NAMES)}".encode()).hexdigest()[:16]


_COLUMNS = ("user_ids", "post_id", "author_row", "created_at", "content_row", "topic")  # by row, as built


class FeatureStore:
    """Point-in-time counters over a History plus static post columns; `compute` is the one definition."""

    def __init__(self, h: History):
        h = _require_history(h)
        self.as_of = h.as_of
        self.user_ids = np.sort(h.users["user_id"].to_numpy())
        self.n_users = len(self.user_ids)
        self._post_columns(h.posts.sort_by("post_id"))
        self.counters = self._counters(h)
        self.sequences = self._sequences(h)

    def _post_columns(self, p: pa.Table) -> None:
        self.post_id = p["post_id"].to_numpy()
        self.author_row = rows_of(self.user_ids, p["author_id"].to_numpy(), "user")
        self.created_at = p["created_at"].to_numpy()
        kind = p["kind"].to_numpy(zero_copy_only=False)
        # A repost shows its source post. As X's home-mixer hydrates a retweet's source tweet, every
        # post and author feature of a repost (counters, content columns, topic, the author) is its
        # source's; only its age, its is_repost flag and in_network (the viewer follows the reposter)
        # are its own. Engagements on a repost count for the source.
        parent = pc.fill_null(p["parent_id"], -1).to_numpy()
        found, src = member(self.post_id, parent)
        is_source = (kind == "repost") & (parent >= 0) & found
        self.content_row = np.where(is_source, src, np.arange(len(self.post_id)))
        c_row = self.content_row
        self.topic = p["topic"].to_numpy().astype(np.int64)[c_row]
        self.n_topics = int(max(self.topic.max(initial=-1) + 1, 1))
        self.static = {
            "has_media": p["has_media"].to_numpy(zero_copy_only=False).astype(np.float32)[c_row],
            "has_link": p["has_link"].to_numpy(zero_copy_only=False).astype(np.float32)[c_row],
            "length_log": np.log1p(p["length"].to_numpy()).astype(np.float32)[c_row],
            "is_reply": (kind == "reply").astype(np.float32)[c_row],
            "is_repost": (kind == "repost").astype(np.float32),
            **{lb: p[lb].to_numpy(zero_copy_only=False).astype(np.float32)[c_row] for lb in SAFETY_LABELS},
        }

    def _counters(self, h: History) -> dict[str, EventCounter]:
        """Every point-in-time counter `compute` reads, over the History's events."""
        n_users = self.n_users
        e = h.engagements
        e_user = rows_of(self.user_ids, e["user_id"].to_numpy(), "user")
        e_post = self.content_row[rows_of(self.post_id, e["post_id"].to_numpy(), "post")]
        e_time = e["created_at"].to_numpy()
        code = pc.index_in(e["kind"], value_set=pa.array(ENGAGEMENT_KINDS)).to_numpy(zero_copy_only=False)
        pos = np.isin(code, [ENGAGEMENT_KINDS.index(k) for k in POSITIVE])
        neg = np.isin(code, [ENGAGEMENT_KINDS.index(k) for k in NEGATIVE])
        e_author = self.author_row[e_post]
        media = self.static["has_media"][e_post] > 0
        unsafe = np.zeros(len(e_post), dtype=bool)
        for lb in SAFETY_LABELS:
            unsafe |= self.static[lb][e_post] > 0
        i = h.impressions
        i_user = rows_of(self.user_ids, i["user_id"].to_numpy(), "user")
        i_post = self.content_row[rows_of(self.post_id, i["post_id"].to_numpy(), "post")]
        i_time = i["created_at"].to_numpy()
        f = h.follows
        f_src = rows_of(self.user_ids, f["src_id"].to_numpy(), "user")
        f_dst = rows_of(self.user_ids, f["dst_id"].to_numpy(), "user")
        none = np.zeros(0, np.int64)

        n_posts = len(self.post_id)
        c = EventCounter
        return {
            "post_pos": c(e_post[pos], e_time[pos], n_posts, window=DAY),  # and the 24 h velocity
            "post_neg": c(e_post[neg], e_time[neg], n_posts),
            "post_imp": c(i_post, i_time, n_posts),
            "author_pos": c(e_author[pos], e_time[pos], n_users),
            "author_neg": c(e_author[neg], e_time[neg], n_users),
            "author_imp": c(self.author_row[i_post], i_time, n_users),
            "user_pos": c(e_user[pos], e_time[pos], n_users),
            "user_neg": c(e_user[neg], e_time[neg], n_users),
            "user_imp": c(i_user, i_time, n_users),
            "user_topic_imp": c(i_user * self.n_topics + np.maximum(self.topic[i_post], 0), i_time),
            "user_author_imp": c(i_user * n_users + self.author_row[i_post], i_time),
            "user_pos_media": c(e_user[pos & media], e_time[pos & media], n_users),
            "user_neg_unsafe": c(e_user[neg & unsafe], e_time[neg & unsafe], n_users),
            "user_topic": c(e_user[pos] * self.n_topics + np.maximum(self.topic[e_post[pos]], 0), e_time[pos]),
            "user_author_pos": c(e_user[pos] * n_users + e_author[pos], e_time[pos]),
            "user_author_neg": c(e_user[neg] * n_users + e_author[neg], e_time[neg]),
            "follow": c(f_src * n_users + f_dst, f["created_at"].to_numpy()),
            "followers": c(f_dst, f["created_at"].to_numpy(), n_users),
            # A History holds the edges that exist; unfollows arrive live (and cancel a follow).
            "unfollow": c(none, none),
            "unfollowers": c(none, none, n_users),
            # Global rates for smoothing, point-in-time too (a build-time constant would be skew).
            "global_pos": c(np.zeros(int(pos.sum()), np.int64), e_time[pos], 1),
            "global_neg": c(np.zeros(int(neg.sum()), np.int64), e_time[neg], 1),
            "global_imp": c(np.zeros(len(i_time), np.int64), i_time, 1),
        }

    def _sequences(self, h: History) -> EngagementSequences:
        """Every user's engagements in order (Phoenix's history), on what each post shows."""
        e = h.engagements
        code = pc.index_in(e["kind"], value_set=pa.array(ENGAGEMENT_KINDS)).to_numpy(zero_copy_only=False)
        return EngagementSequences(rows_of(self.user_ids, e["user_id"].to_numpy(), "user"),
                                   self.content_row[rows_of(self.post_id, e["post_id"].to_numpy(), "post")], code,
                                   e["created_at"].to_numpy(), e["value"].to_numpy(), self.n_users)

    # -- snapshot ---------------------------------------------------------------------------------

    def to_arrays(self) -> Arrays:
        """Post columns, every counter and the engagement sequences as named arrays (`foryou.data.snapshot`)."""
        out: Arrays = {"as_of": int(self.as_of), "n_users": self.n_users, "n_topics": self.n_topics,
                       "counters": list(self.counters)}
        out |= {name: getattr(self, name) for name in _COLUMNS} | nest("static", self.static)
        for name, counter in self.counters.items():
            out |= nest(f"counter.{name}", counter.to_arrays())
        return out | nest("sequences", self.sequences.to_arrays())

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> FeatureStore:
        store = cls.__new__(cls)
        store.as_of, store.n_users, store.n_topics = (int(arrays[k]) for k in ("as_of", "n_users", "n_topics"))
        for name in _COLUMNS:
            setattr(store, name, arrays[name])
        store.static = unnest(arrays, "static")
        store.counters = {name: EventCounter.from_arrays(unnest(arrays, f"counter.{name}"))
                          for name in arrays["counters"]}
        store.sequences = EngagementSequences.from_arrays(unnest(arrays, "sequences"))
        return store

    # -- live events ------------------------------------------------------------------------------

    def record(self, user_row: int, post_row: int, kind: str, t: int) -> None:
        """Feed one live event (served engines call this for every recorded interaction)."""
        post_row = int(self.content_row[post_row])
        c, author = self.counters, int(self.author_row[post_row])
        if kind in ENGAGEMENT_KINDS:
            self.sequences.record(user_row, post_row, kind, t)
        if kind == "impression":
            c["global_imp"].add(0, t)
            c["user_topic_imp"].add(user_row * self.n_topics + max(int(self.topic[post_row]), 0), t)
            c["user_author_imp"].add(user_row * self.n_users + author, t)
            c["post_imp"].add(post_row, t)
            c["author_imp"].add(author, t)
            c["user_imp"].add(user_row, t)
        elif kind in POSITIVE:
            if self.static["has_media"][post_row] > 0:
                c["user_pos_media"].add(user_row, t)
            c["global_pos"].add(0, t)
            c["post_pos"].add(post_row, t)
            c["author_pos"].add(author, t)
            c["user_pos"].add(user_row, t)
            c["user_topic"].add(user_row * self.n_topics + max(int(self.topic[post_row]), 0), t)
            c["user_author_pos"].add(user_row * self.n_users + author, t)
        elif kind in NEGATIVE:
            if any(self.static[lb][post_row] > 0 for lb in SAFETY_LABELS):
                c["user_neg_unsafe"].add(user_row, t)
            c["global_neg"].add(0, t)
            c["post_neg"].add(post_row, t)
            c["author_neg"].add(author, t)
            c["user_neg"].add(user_row, t)
            c["user_author_neg"].add(user_row * self.n_users + author, t)
        elif kind == "follow_author":
            self.relate(user_row, author, "follow", t)

    def relate(self, user_row: int, target_row: int, action: str, t: int) -> None:
        """A live follow or unfollow: `in_network` and `author_followers_log` see it from t on. A follow of
        someone already followed (or an unfollow of someone not followed) changes nothing: counted twice,
        it would leave `in_network` on after the one unfollow that ends it."""
        c, key = self.counters, user_row * self.n_users + target_row
        keys, at = np.array([key]), np.array([t + 1])
        following = int(c["follow"].count_before(keys, at)[0]) > int(c["unfollow"].count_before(keys, at)[0])
        if action == "follow" and not following:
            c["follow"].add(key, t)
            c["followers"].add(target_row, t)
        elif action == "unfollow" and following:
            c["unfollow"].add(key, t)
            c["unfollowers"].add(target_row, t)

    def content_author(self, post_rows: np.ndarray) -> np.ndarray:
        """Author rows of what these posts show: a repost's source author, otherwise the post's own."""
        return self.author_row[self.content_row[post_rows]]

    def base_rates(self, t: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """Positives and negative feedback per impression before t (defaults until 1,000 impressions); one
        instant (an int) answers one rate."""
        zero = np.zeros(1 if isinstance(t, int) else len(t), np.int64)
        imp = self.counters["global_imp"].count_before(zero, t)
        enough = imp >= 1000
        r0 = np.where(enough, self.counters["global_pos"].count_before(zero, t) / np.maximum(imp, 1), 0.05)
        n0 = np.where(enough, self.counters["global_neg"].count_before(zero, t) / np.maximum(imp, 1), 0.01)
        return np.clip(r0, 1e-4, 0.5), np.clip(n0, 1e-5, 0.5)

    # -- the one definition -----------------------------------------------------------------------

    def compute(self, user_rows: np.ndarray, post_rows: np.ndarray, t: np.ndarray | int,
                names: tuple[str, ...] = FEATURE_NAMES) -> np.ndarray:
        """Feature matrix (rows × len(names), float32) for (user, post, time) triples; only the
        counters the requested features need are read (the heuristic ranker asks for a few)."""
        u = np.asarray(user_rows, dtype=np.int64)
        p = np.asarray(post_rows, dtype=np.int64)
        t = np.broadcast_to(np.asarray(t, dtype=np.int64), p.shape)
        c, k = self.counters, PRIOR_IMPRESSIONS
        own, own_author = p, self.author_row[p]  # age, and in_network: whoever posted (or reposted) it
        p = self.content_row[p]  # every other post and author feature: what the post shows
        a = self.author_row[p]
        topic = np.maximum(self.topic[p], 0)
        memo: dict[str, np.ndarray] = {}
        # A served request asks at one instant for one viewer: most keys repeat (the viewer, its topics, the
        # candidates' authors), so each distinct key is counted once — sorted, which also keeps the binary
        # searches in cache; each key kind is made distinct once for all its counters. Training rows (many
        # instants) are counted as they come.
        one_instant = len(t) > 0 and (t.strides == (0,) or bool((t == t[0]).all()))
        distinct: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # keys held: ids stay unique

        def count(counter: str, keys: np.ndarray, at: np.ndarray) -> np.ndarray:
            if one_instant and (totals := c[counter].count_at(keys, int(at[0]))) is not None:
                return totals  # a served request: one take, nothing to search
            if one_instant:
                if id(keys) not in distinct:
                    distinct[id(keys)] = (keys, *np.unique(keys, return_inverse=True))
                _, uniq, where = distinct[id(keys)]
                return c[counter].count_before(uniq, int(at[0]))[where]
            return c[counter].count_before(keys, at)

        def n(counter: str, keys: np.ndarray, at: np.ndarray = t) -> np.ndarray:
            """count_before, memoised per (counter, key kind) within this call."""
            key = f"{counter}:{id(keys)}:{id(at)}"
            if key not in memo:
                memo[key] = count(counter, keys, at)
            return memo[key]

        def velocity() -> np.ndarray:  # positives in the 24 h before t; a served request's kept up to date
            fast = c["post_pos"].count_in_window(p, int(t[0])) if one_instant and c["post_pos"].window == DAY else None
            return n("post_pos", p) - count("post_pos", p, t - DAY) if fast is None else fast

        def rates() -> tuple[np.ndarray, np.ndarray]:
            if "rates" not in memo:
                memo["r0"], memo["n0"] = (np.broadcast_to(r, t.shape) for r in self.base_rates(int(t[0]))) \
                    if one_instant else self.base_rates(t)
                memo["rates"] = memo["r0"]
            return memo["r0"], memo["n0"]

        ut, ua, u_own = u * self.n_topics + topic, u * self.n_users + a, u * self.n_users + own_author
        defs: dict[str, Callable[[], np.ndarray]] = {
            "age_log_h": lambda: np.log1p(np.maximum(t - self.created_at[own], 0) / HOUR),
            "post_positive_log": lambda: np.log1p(n("post_pos", p)),
            "post_impressions_log": lambda: np.log1p(n("post_imp", p)),
            "post_rate": lambda: (n("post_pos", p) + k * rates()[0]) / (n("post_imp", p) + k),
            "post_positive_24h_log": lambda: np.log1p(velocity()),
            "post_negative_rate": lambda: (n("post_neg", p) + k * rates()[1]) / (n("post_imp", p) + k),
            **{name: partial(col.__getitem__, own) for name, col in self.static.items()},  # already the source's
            "author_rate": lambda: (n("author_pos", a) + k * rates()[0]) / (n("author_imp", a) + k),
            "author_impressions_log": lambda: np.log1p(n("author_imp", a)),
            "author_negative_rate": lambda: (n("author_neg", a) + k * rates()[1]) / (n("author_imp", a) + k),
            "author_followers_log": lambda: np.log1p(np.maximum(n("followers", a) - n("unfollowers", a), 0)),
            "user_topic_share": lambda: (n("user_topic", ut) + 1.0 / self.n_topics) / (n("user_pos", u) + 1.0),
            "user_positive_log": lambda: np.log1p(n("user_pos", u)),
            "user_impressions_log": lambda: np.log1p(n("user_imp", u)),
            "user_negative_rate": lambda: (n("user_neg", u) + k * rates()[1]) / (n("user_imp", u) + k),
            "user_media_share": lambda: (n("user_pos_media", u) + 0.4) / (n("user_pos", u) + 1.0),
            "user_unsafe_negative_log": lambda: np.log1p(n("user_neg_unsafe", u)),
            "user_topic_rate": lambda: (n("user_topic", ut) + 5 * rates()[0]) / (n("user_topic_imp", ut) + 5),
            "user_topic_impression_share": lambda: (n("user_topic_imp", ut) + 1.0) / (n("user_imp", u) + self.n_topics),
            "user_author_positive_log": lambda: np.log1p(n("user_author_pos", ua)),
            "user_author_impressions_log": lambda: np.log1p(n("user_author_imp", ua)),
            "user_author_rate": lambda: (n("user_author_pos", ua) + 5 * rates()[0]) / (n("user_author_imp", ua) + 5),
            "user_author_negative": lambda: n("user_author_neg", ua),
            "in_network": lambda: (count("follow", u_own, t + 1) > count("unfollow", u_own, t + 1)).astype(np.float64),
        }
        return np.stack([defs[name]() for name in names], axis=1).astype(np.float32)
