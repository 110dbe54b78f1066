"""The small mutable real-time overlay on top of the immutable ServingIndex (DESIGN §6).

Recorded interactions land here and change the very next request without a rebuild: seen sets,
engagement counters, UTEG edges, blocks/mutes and feedback fatigue. Counters are copies of the
index's arrays (updated in place, O(1) per event); per-user sets stay small.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from foryou.graph.index import KIND_CODE, POSITIVE, ServingIndex


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
        self._fatigue: dict[int, dict[int, int]] = defaultdict(dict)
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
        extra = self._blocked.get(user_row)
        return np.union1d(base, np.fromiter(extra, np.int64)) if extra else base

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
            self._blocked[user_row].add(author)
        elif kind == "not_interested":
            self._fatigue[user_row][author] = t
