"""The small mutable real-time overlay on top of the immutable ServingIndex (DESIGN §6).

Recorded interactions land here and change the very next request without a rebuild: seen sets,
engagement counters, UTEG edges, blocks/mutes, feedback fatigue, follows and unfollows, and posts
created after the build. Counters are copies of the index's arrays (updated in place, O(1) per
event); per-user sets stay small. New posts are appended as new rows: every post-indexed column
becomes a view of a larger buffer (`ColumnGrower`), so an append is amortised O(1).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from foryou.graph.index import KIND_CODE, POST_COLUMNS, ServingIndex
from foryou.vocab import POSITIVE, SAFETY_LABELS


class ColumnGrower:
    """Appends to arrays that readers fetch by attribute or dict key: each column is replaced by a
    view `buffer[:n]` of a buffer with spare room (×1.25 + 4096), so appends copy rarely."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[int, str], np.ndarray] = {}

    def append(self, owner: Any, name: str, value: Any) -> None:
        is_dict = isinstance(owner, dict)
        current = owner[name] if is_dict else getattr(owner, name)
        n = len(current)
        key = (id(owner), name)
        buf = self._buffers.get(key)
        if buf is None or current.base is not buf or len(buf) < n + 1:
            buf = np.empty((int(n * 1.25) + 4096, *current.shape[1:]), dtype=current.dtype)
            buf[:n] = current
            self._buffers[key] = buf
        buf[n] = value
        if is_dict:
            owner[name] = buf[:n + 1]
        else:
            setattr(owner, name, buf[:n + 1])


class RealtimeOverlay:
    def __init__(self, index: ServingIndex):
        self.index = index
        self.counts = {k: v.copy() for k, v in index.counts.items()}
        self.counts_24h = index.counts_24h.copy()
        self.impressions_count = index.impressions_count.copy()
        self.user_topic = index.user_topic.copy()
        self._seen: dict[int, set[int]] = defaultdict(set)
        self._uteg: dict[int, list[int]] = defaultdict(list)
        self._blocked: dict[int, set[int]] = defaultdict(set)
        self._unblocked: dict[int, set[int]] = defaultdict(set)
        self._fatigue: dict[int, dict[int, int]] = defaultdict(dict)
        self._followed: dict[int, set[int]] = defaultdict(set)
        self._unfollowed: dict[int, set[int]] = defaultdict(set)
        self.grower = ColumnGrower()
        self.new_posts = 0  # posts appended since the build (rows len(base)…)
        self.events = 0

    # -- reads (index ∪ overlay) ------------------------------------------------------------------

    def seen_rows(self, user_row: int) -> np.ndarray:
        base = self.index.seen.row(user_row)
        extra = self._seen.get(user_row)
        return np.union1d(base, np.fromiter(extra, np.int64)) if extra else base

    def uteg_rows(self, user_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(post rows, owner position in user_rows) of the users' recent positive engagements."""
        posts, owner = self.index.uteg.rows(user_rows)
        extra = [(p, i) for i, u in enumerate(user_rows.tolist()) for p in self._uteg.get(u, ())]
        if extra:
            ep, eo = np.array(extra, dtype=np.int64).T
            posts, owner = np.r_[posts, ep], np.r_[owner, eo]
        return posts, owner

    def blocked_authors(self, user_row: int) -> np.ndarray:
        base = self.index.blocked_authors.row(user_row)
        extra, undone = self._blocked.get(user_row), self._unblocked.get(user_row)
        out = np.union1d(base, np.fromiter(extra, np.int64)) if extra else base
        return np.setdiff1d(out, np.fromiter(undone, np.int64)) if undone else out

    def following_rows(self, user_row: int) -> np.ndarray:
        """The accounts the user follows now: the index's follow graph ± live follows and unfollows."""
        base = self.index.following_rows(user_row)
        added, removed = self._followed.get(user_row), self._unfollowed.get(user_row)
        if added:
            base = np.union1d(base, np.fromiter(added, np.int64))
        if removed:
            base = np.setdiff1d(base, np.fromiter(removed, np.int64))
        return base

    def unfollowed(self, user_row: int) -> np.ndarray:
        removed = self._unfollowed.get(user_row)
        return np.fromiter(removed, np.int64) if removed else np.empty(0, np.int64)

    def fatigue(self, user_row: int) -> tuple[np.ndarray, np.ndarray]:
        """(author rows, last 'not interested' time) for the user."""
        idx = self.index
        lo, hi = idx.fatigue_authors.indptr[user_row], idx.fatigue_authors.indptr[user_row + 1]
        authors = idx.fatigue_authors.values[lo:hi]
        times = idx.fatigue_user_times[lo:hi]
        extra = self._fatigue.get(user_row)
        if extra:
            authors = np.r_[authors, np.fromiter(extra.keys(), np.int64)]
            times = np.r_[times, np.fromiter(extra.values(), np.int64)]
        return authors, times

    # -- writes -------------------------------------------------------------------------------------

    def record(self, user_row: int, post_row: int, kind: str, t: int) -> None:
        if kind not in KIND_CODE and kind != "impression":
            raise ValueError(f"unknown interaction kind {kind!r}")
        self.events += 1
        self._seen[user_row].add(post_row)
        if kind == "impression":
            self.impressions_count[post_row] += 1
            return
        self.counts[kind][post_row] += 1
        author = int(self.index.author_row[post_row])
        if kind in POSITIVE:
            self.counts_24h[post_row] += 1
            self._uteg[user_row].append(post_row)
            topic = int(self.index.topic[post_row])
            if topic >= 0:
                self.user_topic[user_row, topic] += 1
        elif kind in ("block", "mute"):
            self._unblocked[user_row].discard(author)
            self._blocked[user_row].add(author)
        elif kind == "not_interested":
            self._fatigue[user_row][author] = t
        elif kind == "follow_author":
            self._unfollowed[user_row].discard(author)
            self._followed[user_row].add(author)

    def follow(self, user_row: int, target_row: int) -> None:
        self.events += 1
        self._unfollowed[user_row].discard(target_row)
        self._followed[user_row].add(target_row)

    def unfollow(self, user_row: int, target_row: int) -> None:
        self.events += 1
        self._followed[user_row].discard(target_row)
        self._unfollowed[user_row].add(target_row)

    def block(self, user_row: int, author_row: int) -> None:
        """Block or mute: the author's posts leave the user's timeline (both act the same here)."""
        self.events += 1
        self._unblocked[user_row].discard(author_row)
        self._blocked[user_row].add(author_row)

    def unblock(self, user_row: int, author_row: int) -> None:
        self.events += 1
        self._blocked[user_row].discard(author_row)
        self._unblocked[user_row].add(author_row)

    def add_post(self, post_id: int, author_row: int, created_at: int, kind: int = 0, parent_row: int = -1,
                 topic: int = -1, has_media: bool = False, has_link: bool = False, length: int = 0,
                 labels: dict[str, bool] | None = None) -> int:
        """Append a post created after the build; returns its row. Post ids must arrive in
        increasing order (rows stay sorted by id, so id → row lookups keep working)."""
        idx = self.index
        if len(idx.post_id) and post_id <= int(idx.post_id[-1]):
            raise ValueError(f"post id {post_id} is not above the last post id {int(idx.post_id[-1])}")
        labels = labels or {}
        values = {"post_id": post_id, "author_row": author_row, "created_at": created_at, "kind": kind,
                  "parent_row": parent_row, "topic": topic, "has_media": has_media, "has_link": has_link,
                  "length": length, "impressions_count": 0, "counts_24h": 0,
                  **{lb: bool(labels.get(lb, False)) for lb in SAFETY_LABELS}}
        g = self.grower
        for name in POST_COLUMNS:
            g.append(idx, name, values[name])
        for k in idx.counts:
            g.append(idx.counts, k, 0)
            g.append(self.counts, k, 0)
        g.append(self, "counts_24h", 0)
        g.append(self, "impressions_count", 0)
        row = len(idx.post_id) - 1
        idx.add_live_post(row)
        self.new_posts += 1
        self.events += 1
        return row
