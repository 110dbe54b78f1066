"""Each user's engagement history as a sequence, point in time: what Phoenix reads (foryou.models.phoenix).

One item per (user, post, instant): the post (what it shows: a repost's source, as every other feature),
the engagement kinds done on it at that instant as a bit mask (a like and a dwell logged together are
one item with two actions), the dwell seconds, and the time. `window(users, times, h)` gives, for any
batch of (user, t), the last `h` items strictly before t — right-aligned, padding (post −1) on the left —
so a training row at t and a request served at t read the same history, and a later event never
changes an earlier row (tested). Live events recorded after the build go to a small per-user overlay.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from foryou.data.snapshot import Arrays
from foryou.vocab import ENGAGEMENT_KINDS

N_ACTIONS = len(ENGAGEMENT_KINDS)
_BITS = np.int64(1) << np.arange(N_ACTIONS, dtype=np.int64)
_SHIFT = np.int64(34)  # user row in the high bits, seconds since the origin in the low 34 (as EventCounter)


class EngagementSequences:
    """Items sorted by (user, time): post row, action bits, dwell, time; plus live items per user."""

    def __init__(self, user_row: np.ndarray, post_row: np.ndarray, kind: np.ndarray, time: np.ndarray,
                 value: np.ndarray, n_users: int):
        """One engagement per entry (`kind`: index into ENGAGEMENT_KINDS); entries of one (user, post, time)
        merge into one item."""
        u, p, t = (np.asarray(a, np.int64) for a in (user_row, post_row, time))
        k = np.asarray(kind, np.int64)
        self.origin = int(t.min()) if len(t) else 0
        order = np.lexsort((p, t, u))
        u, p, t, k = u[order], p[order], t[order], k[order]
        dwell = np.where(k == ENGAGEMENT_KINDS.index("dwell"), np.asarray(value, np.float32)[order], 0.0)
        first = np.r_[True, (u[1:] != u[:-1]) | (t[1:] != t[:-1]) | (p[1:] != p[:-1])] if len(u) else np.zeros(0, bool)
        item = np.cumsum(first) - 1
        starts = np.flatnonzero(first)
        self.user = u[starts]
        self.post = p[starts]
        self.time = t[starts]
        self.actions = np.bitwise_or.reduceat(_BITS[k], starts) if len(starts) else np.zeros(0, np.int64)
        self.dwell = np.bincount(item, weights=dwell, minlength=len(starts)).astype(np.float32)
        self.n_users = n_users
        self._pack()
        self.live: dict[int, list[tuple[int, int, int]]] = defaultdict(list)  # user → (post, action bits, time)

    def _pack(self) -> None:
        self.packed = (self.user << _SHIFT) | np.clip(self.time - self.origin, 0, (1 << 34) - 1)

    # -- snapshot ---------------------------------------------------------------------------------

    def to_arrays(self) -> Arrays:
        live = [(u, p, a, t) for u, items in self.live.items() for p, a, t in items]
        return {"origin": self.origin, "n_users": self.n_users, "user": self.user, "post": self.post,
                "time": self.time, "actions": self.actions, "dwell": self.dwell,
                "live": np.array(live, np.int64).reshape(-1, 4)}

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> EngagementSequences:
        seq = cls.__new__(cls)
        seq.origin, seq.n_users = int(arrays["origin"]), int(arrays["n_users"])
        for name in ("user", "post", "time", "actions", "dwell"):
            setattr(seq, name, arrays[name])
        seq._pack()
        seq.live = defaultdict(list)
        for u, p, a, t in np.asarray(arrays["live"]).tolist():
            seq.live[u].append((p, a, t))
        return seq

    # -- live events ------------------------------------------------------------------------------

    def record(self, user_row: int, post_row: int, kind: str, t: int) -> None:
        """A live engagement: the user's next window sees it (from t + 1 on)."""
        items = self.live[user_row]
        bit = 1 << ENGAGEMENT_KINDS.index(kind)
        if items and items[-1][0] == post_row and items[-1][2] == t:  # another action of the same instant
            items[-1] = (post_row, items[-1][1] | bit, t)
        else:
            items.append((post_row, bit, t))

    # -- reads ------------------------------------------------------------------------------------

    def window(self, user_rows: np.ndarray, times: np.ndarray | int, h: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(post rows, action bits, dwell, time), each (n, h): each (user, t)'s last h items strictly before t,
        oldest first and right-aligned; padding has post −1 (and zeros)."""
        u = np.asarray(user_rows, np.int64)
        t = np.broadcast_to(np.asarray(times, np.int64), u.shape)
        rel = np.clip(t - self.origin, 0, (1 << 34) - 1)
        lo = np.searchsorted(self.packed, u << _SHIFT, side="left")
        hi = np.searchsorted(self.packed, (u << _SHIFT) | rel, side="left")  # items strictly before t
        idx = hi[:, None] - h + np.arange(h)[None, :]
        ok = (idx >= lo[:, None]) & (len(self.post) > 0)
        idx = np.where(ok, idx, 0) if len(self.post) else np.zeros_like(idx)

        def take(column: np.ndarray, pad: float) -> np.ndarray:
            return np.where(ok, column[idx], pad) if len(column) else np.full(idx.shape, pad, column.dtype)

        post, actions, time = take(self.post, -1), take(self.actions, 0), take(self.time, 0)
        dwell = take(self.dwell, 0).astype(np.float32)
        if self.live:  # a served request asks for a few viewers: look each up, never scan every live user
            for i, user in enumerate(u.tolist()):
                if user in self.live:
                    self._merge_live(i, user, int(t[i]), post, actions, dwell, time)
        return post, actions, dwell, time

    def _merge_live(self, i: int, user: int, t: int, post: np.ndarray, actions: np.ndarray, dwell: np.ndarray,
                    time: np.ndarray) -> None:
        """Row i of a window with the user's live items before t appended (newest last), still h long."""
        items = [item for item in self.live[user] if item[2] < t]
        if not items:
            return
        h = post.shape[1]
        extra = np.array(items[-h:], np.int64)
        n = len(extra)
        for arr, new in ((post, extra[:, 0]), (actions, extra[:, 1]), (dwell, np.zeros(n)), (time, extra[:, 2])):
            arr[i] = np.r_[arr[i][n:], new.astype(arr.dtype)]


def action_matrix(bits: np.ndarray) -> np.ndarray:
    """Action bit masks (any shape) → multi-hot float32 (..., N_ACTIONS)."""
    return ((np.asarray(bits, np.int64)[..., None] & _BITS) > 0).astype(np.float32)
