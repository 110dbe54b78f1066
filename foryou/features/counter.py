"""A point-in-time event counter: how many events of a key happened strictly before t, for any
batch of (key, t) at once, with a small append-only overlay for live events."""

from __future__ import annotations

import numpy as np

from foryou.data.lookup import member, searchsorted_many
from foryou.data.snapshot import Arrays

_SHIFT = np.int64(34)  # key ids in the high bits, seconds since the counter's origin in the low 34
LIVE_RUN = 512  # live events per sorted run


class EventCounter:
    """Counts of events per integer key strictly before any time t, vectorised over queries.

    Keys are mapped to dense ids so that (id, time) packs into one sorted int64; a query is two
    searchsorted calls. Live events recorded after the build go to a second, small packed array,
    rebuilt lazily when it has changed.

    A counter over a known key space `[0, size)` (post, author, user rows) also keeps every key's total,
    live events included: a query after the last event — every served request — is then one `take`.
    """

    def __init__(self, keys: np.ndarray, times: np.ndarray, size: int | None = None):
        self.origin = int(np.min(times)) if len(times) else 0
        self.t_max = int(np.max(times)) if len(times) else -1
        self.uniq, self.packed = self._pack(np.asarray(keys, np.int64), np.asarray(times, np.int64))
        # Totals per key: a query after the last event (every served request) is one lookup.
        ids = (self.packed >> _SHIFT).astype(np.int64)
        self.totals = np.bincount(ids, minlength=len(self.uniq)).astype(np.float64)
        self.live_keys: list[int] = []
        self.live_times: list[int] = []
        self._dense(size)
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._folded = 0  # live events already in a sorted run
        self._tail: tuple[np.ndarray, np.ndarray] | None = None

    def _dense(self, size: int | None) -> None:
        """Every key's total (base + live) in a dense array, and the time of the last event of all."""
        self.size = size
        self.t_last = max([self.t_max, *self.live_times])
        self.dense: np.ndarray | None = None
        if size is not None and (len(self.uniq) == 0 or (self.uniq[0] >= 0 and self.uniq[-1] < size)):
            self.dense = np.zeros(size, np.float64)
            self.dense[self.uniq] = self.totals
            np.add.at(self.dense, np.asarray(self.live_keys, np.int64), 1.0)

    def to_arrays(self) -> Arrays:
        """The packed events and the live ones (`foryou.data.snapshot`); sorted runs are rebuilt on demand."""
        return {"origin": self.origin, "t_max": self.t_max, "uniq": self.uniq, "packed": self.packed,
                "totals": self.totals, "live_keys": np.array(self.live_keys, dtype=np.int64),
                "live_times": np.array(self.live_times, dtype=np.int64), "size": -1 if self.size is None else self.size}

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> EventCounter:
        counter = cls.__new__(cls)
        counter.origin, counter.t_max = int(arrays["origin"]), int(arrays["t_max"])
        counter.uniq, counter.packed, counter.totals = arrays["uniq"], arrays["packed"], arrays["totals"]
        counter.live_keys, counter.live_times = arrays["live_keys"].tolist(), arrays["live_times"].tolist()
        size = int(arrays.get("size", -1))  # snapshots written before the dense totals: none
        counter._dense(None if size < 0 else size)
        counter._runs, counter._folded, counter._tail = [], 0, None
        return counter

    def _pack(self, keys: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        uniq, dense = np.unique(keys, return_inverse=True)
        rel = np.clip(times - self.origin, 0, (1 << 34) - 1)
        return uniq, np.sort((dense.astype(np.int64) << _SHIFT) | rel)

    @staticmethod
    def _count(uniq: np.ndarray, packed: np.ndarray, keys: np.ndarray, rel: np.ndarray,
               totals: np.ndarray | None = None, after_all: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros(len(keys), dtype=np.float64)
        if len(uniq):
            hit, pos = member(uniq, keys)
            if totals is not None and after_all is not None:
                fast = hit & after_all
                out[fast] = totals[pos[fast]]
                hit &= ~after_all
            base = pos[hit].astype(np.int64) << _SHIFT
            out[hit] = searchsorted_many(packed, base | rel[hit]) - searchsorted_many(packed, base)
        return out

    def add(self, key: int, t: int) -> None:
        self.live_keys.append(int(key))
        self.live_times.append(int(t))
        self._tail = None
        self.t_last = max(self.t_last, int(t))
        if self.dense is not None:
            if 0 <= key < len(self.dense):
                self.dense[key] += 1.0
            else:  # a key outside the space it was built for: the searches answer from now on
                self.dense = None

    def totals_at(self, keys: np.ndarray, t: int) -> np.ndarray | None:
        """Counts before t as one take when t is after every event and the keys are in the dense space,
        else None."""
        if self.dense is None or t <= self.t_last or not self._in_space(keys):
            return None
        return self.dense[keys]

    def _in_space(self, keys: np.ndarray) -> bool:
        return self.dense is not None and (len(keys) == 0 or (keys.min() >= 0 and keys.max() < len(self.dense)))

    def _live(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Live events as sorted runs: every LIVE_RUN events become a run, and a run is merged with
        the previous one while that is no longer (a binary counter, as in an LSM tree) — O(log n)
        runs and amortised O(log n) work per event, where re-sorting everything after each event
        made a long simulation or a busy server slower with every write. The unsorted tail
        (< LIVE_RUN events) is packed on demand."""
        while len(self.live_keys) - self._folded >= LIVE_RUN:
            end = self._folded + LIVE_RUN
            k = np.array(self.live_keys[self._folded:end], np.int64)
            t = np.array(self.live_times[self._folded:end], np.int64)
            self._folded = end
            while self._runs and len(self._runs[-1][0]) <= len(k):
                k0, t0, _, _ = self._runs.pop()
                k, t = np.r_[k0, k], np.r_[t0, t]
            self._runs.append((k, t, *self._pack(k, t)))
        if self._tail is None and self._folded < len(self.live_keys):
            self._tail = self._pack(np.array(self.live_keys[self._folded:], np.int64),
                                    np.array(self.live_times[self._folded:], np.int64))
        tail = [self._tail] if self._tail is not None and self._folded < len(self.live_keys) else []
        return [(u, p) for _, _, u, p in self._runs] + tail

    def count_before(self, keys: np.ndarray, t: np.ndarray | int) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64)
        if isinstance(t, int) and (fast := self.totals_at(keys, t)) is not None:
            return fast
        t = np.broadcast_to(np.asarray(t, dtype=np.int64), keys.shape)
        if self.dense is not None and len(keys) and self._in_space(keys):
            some = self.dense[keys] > 0  # a key with no event at all counts 0 at any t: nothing to search
            if not some.all():
                out = np.zeros(len(keys), np.float64)
                out[some] = self.count_before(keys[some], t[some])
                return out
        rel = np.clip(t - self.origin, 0, (1 << 34) - 1)
        out = self._count(self.uniq, self.packed, keys, rel, self.totals, t > self.t_max)
        if self.live_keys:
            for uniq, packed in self._live():
                out += self._count(uniq, packed, keys, rel)
        return out

    def count_between(self, keys: np.ndarray, t0: np.ndarray | int, t1: np.ndarray | int) -> np.ndarray:
        return self.count_before(keys, t1) - self.count_before(keys, t0)
