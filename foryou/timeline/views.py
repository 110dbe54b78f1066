"""What callers outside the timeline read of the engine's state — id checks, a post's counters, a
user's profile numbers — as engine methods, so the HTTP service and the CLI never reach into
`engine.state` (the index, the overlay, the feature store are the engine's own business)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from foryou.data.ids import ExternalId, IdMap
from foryou.data.lookup import member, row_of
from foryou.timeline.state import TimelineState
from foryou.vocab import POSITIVE, POST_KINDS, SAFETY_LABELS


class UnknownUser(KeyError):
    def __str__(self) -> str:
        return f"unknown user {self.args[0]}"


class UnknownPost(KeyError):
    def __str__(self) -> str:
        return f"unknown post {self.args[0]}"


class EngineViews:
    """Read-only views of the serving state (mixed into RecommendationEngine)."""

    state: TimelineState
    _lock: threading.RLock
    ids: IdMap  # external ids ↔ internal ids (identity for datasets with int ids)

    # -- ids --------------------------------------------------------------------------------------
    @property
    def user_ids(self) -> np.ndarray:
        """Every known user id, sorted (row order)."""
        return self.state.index.user_ids

    @property
    def author_followers(self) -> np.ndarray:
        """Followers per user row at the index build (the exposure monitor's author weights)."""
        return self.state.index.author_followers

    @property
    def n_posts(self) -> int:
        """Posts the engine serves, live ones included."""
        return len(self.state.index.post_id)

    @property
    def last_post_id(self) -> int:
        """The newest post id (0 when there is none): new posts must get larger ids."""
        ids = self.state.index.post_id
        return int(ids[-1]) if len(ids) else 0

    @property
    def new_posts(self) -> int:
        """Posts added live since the index build (a counter that only grows)."""
        return int(self.state.overlay.new_posts)

    def post_id_at(self, row: int) -> int:
        """The internal id of the post at a row (what `add_post` returns)."""
        return int(self.state.index.post_id[row])

    def user_id_of(self, user_id: ExternalId) -> int:
        """The internal id of a user id (an int, or the platform's own id); UnknownUser."""
        u = self.ids.users.one(user_id)
        if u is None:
            raise UnknownUser(user_id)
        return u

    def post_id_of(self, post_id: ExternalId) -> int:
        p = self.ids.posts.one(post_id)
        if p is None:
            raise UnknownPost(post_id)
        return p

    def user_row(self, user_id: ExternalId) -> int:
        u = row_of(self.state.index.user_ids, self.user_id_of(user_id))
        if u is None:
            raise UnknownUser(user_id)
        return u

    def post_row(self, post_id: ExternalId) -> int:
        p = row_of(self.state.index.post_id, self.post_id_of(post_id))
        if p is None:
            raise UnknownPost(post_id)
        return p

    def user_exists(self, user_id: ExternalId) -> bool:
        u = self.ids.users.one(user_id)
        return u is not None and row_of(self.state.index.user_ids, u) is not None

    def post_exists(self, post_id: ExternalId) -> bool:
        p = self.ids.posts.one(post_id)
        return p is not None and row_of(self.state.index.post_id, p) is not None

    def known(self, user_ids: Sequence[ExternalId] | np.ndarray, post_ids: Sequence[ExternalId] | np.ndarray
              ) -> np.ndarray:
        """Bool per (user, post) pair: both exist (a batch of engagements checked in one pass)."""
        idx = self.state.index
        (uf, u), (pf, p) = self.ids.users.internal(user_ids), self.ids.posts.internal(post_ids)
        users, _ = member(idx.user_ids, u)
        posts, _ = member(idx.post_id, p)
        return np.asarray(users & posts & uf & pf)

    # -- per-user and per-post numbers --------------------------------------------------------------
    def followee_posted_since(self, user_id: ExternalId, new_posts_seen: int) -> bool:
        """Has an account the user follows posted since `new_posts` was `new_posts_seen`?"""
        ov, idx = self.state.overlay, self.state.index
        if ov.new_posts <= new_posts_seen:
            return False
        total = len(idx.post_id)
        rows = np.arange(total - ov.new_posts + new_posts_seen, total)
        return bool(np.isin(idx.author_row[rows], ov.following_rows(self.user_row(user_id))).any())

    def post_stats(self, post_ids: Sequence[ExternalId] | np.ndarray) -> dict[str, np.ndarray]:
        """Live counters of these posts: one array per engagement kind, plus impressions,
        positives_24h and positives (Σ of the positive kinds). Raises UnknownPost."""
        rows = np.array([self.post_row(p) for p in (post_ids.tolist() if isinstance(post_ids, np.ndarray)
                                                   else post_ids)], np.int64)
        ov = self.state.overlay
        with self._lock:
            out = {k: np.asarray(v[rows], np.int64) for k, v in ov.counts.items()}
            out["impressions"] = np.asarray(ov.impressions_count[rows], np.int64)
            out["positives_24h"] = np.asarray(ov.counts_24h[rows], np.int64)
        out["positives"] = sum((out[k] for k in POSITIVE), np.zeros(len(rows), np.int64))
        return out

    def post_view(self, post_id: ExternalId) -> dict[str, Any]:
        """A post as the HTTP API shows it (JSON-ready): its columns, labels and live counters."""
        p = self.post_row(post_id)
        idx = self.state.index
        parent = int(idx.parent_row[p])
        counters = {k: int(v[0]) for k, v in self.post_stats([post_id]).items()}
        posts, users = self.ids.posts, self.ids.users
        return {"post_id": posts.show(int(idx.post_id[p])),
                "author_id": users.show(int(idx.user_ids[idx.author_row[p]])),
                "created_at": int(idx.created_at[p]), "kind": POST_KINDS[int(idx.kind[p])],
                "parent_id": posts.show(int(idx.post_id[parent])) if parent >= 0 else None,
                "topic": int(idx.topic[p]),
                "has_media": bool(idx.has_media[p]), "has_link": bool(idx.has_link[p]), "length": int(idx.length[p]),
                "labels": {lb: bool(getattr(idx, lb)[p]) for lb in SAFETY_LABELS}, "counters": counters}

    def user_view(self, user_id: ExternalId) -> dict[str, Any]:
        """A user as the HTTP API shows it (JSON-ready): follows, followers now, posts, blocked or muted."""
        row = self.user_row(user_id)
        idx, ov = self.state.index, self.state.overlay
        # Followers as of now: the dataset's follows plus live follows minus live unfollows.
        c, at, rows = self.state.store.counters, np.array([2**62]), np.array([row])
        with self._lock:
            followers = int(c["followers"].count_before(rows, at)[0] - c["unfollowers"].count_before(rows, at)[0])
            following, blocked = len(ov.following_rows(row)), len(ov.blocked_authors(row))
        return {"user_id": self.ids.users.show(int(idx.user_ids[row])), "following": following,
                "followers": max(followers, 0),
                "posts": int(np.count_nonzero(idx.author_row == row)), "blocked_or_muted": blocked}
