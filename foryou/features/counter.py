"""A point-in-time event counter: how many events of a key happened strictly before t, for any
batch of (key, t) at once, with a small append-only overlay for live events."""

from __future__ import annotations

import heapq

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
    live events included: a query at one instant after the build — every served request, the service's
    clock only moves on — is then one `take`, less the few live events at or after that instant. With a
    `window` (seconds), the count in the window before such an instant is kept up to date too.
    """

    def __init__(self, keys: np.ndarray, times: np.ndarray, size: int | None = None, window: int = 0):
        self.origin = int(np.min(times)) if len(times) else 0
        self.t_max = int(np.max(times)) if len(times) else -1
        self.uniq, self.packed = self._pack(np.asarray(keys, np.int64), np.asarray(times, np.int64))
        # Totals per key: a query after the last event (every served request) is one lookup.
        ids = (self.packed >> _SHIFT).astype(np.int64)
        self.totals = np.bincount(ids, minlength=len(self.uniq)).astype(np.float64)
        self.live_keys: list[int] = []
        self.live_times: list[int] = []
        self._dense(size, window)
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._folded = 0  # live events already in a sorted run
        self._tail: tuple[np.ndarray, np.ndarray] | None = None

    def _dense(self, size: int | None, window: int) -> None:
        """Every key's total (base + live) in a dense array; the live events at or after the latest instant
        asked (`_mark`), which that total must not count; the window's sliding cut where asked for."""
        self.size, self.window = size, window
        self._mark = max([self.t_max, *self.live_times]) + 1
        self._late: list[tuple[int, int]] = []  # (time, key) of live events at ≥ _mark
        self.dense: np.ndarray | None = None
        self._cut: SlidingCut | None = None
        if size is not None and (len(self.uniq) == 0 or (self.uniq[0] >= 0 and self.uniq[-1] < size)):
            self.dense = np.zeros(size, np.float64)
            self.dense[self.uniq] = self.totals
            np.add.at(self.dense, np.asarray(self.live_keys, np.int64), 1.0)
            self._cut = SlidingCut(self) if window > 0 else None

    def to_arrays(self) -> Arrays:
        """The packed events and the live ones (`foryou.data.snapshot`); sorted runs are rebuilt on demand."""
        return {"origin": self.origin, "t_max": self.t_max, "uniq": self.uniq, "packed": self.packed,
                "totals": self.totals, "live_keys": np.array(self.live_keys, dtype=np.int64),
                "live_times": np.array(self.live_times, dtype=np.int64), "size": -1 if self.size is None else self.size,
                "window": self.window}

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> EventCounter:
        counter = cls.__new__(cls)
        counter.origin, counter.t_max = int(arrays["origin"]), int(arrays["t_max"])
        counter.uniq, counter.packed, counter.totals = arrays["uniq"], arrays["packed"], arrays["totals"]
        counter.live_keys, counter.live_times = arrays["live_keys"].tolist(), arrays["live_times"].tolist()
        size = int(arrays.get("size", -1))  # snapshots written before the dense totals: none
        counter._dense(None if size < 0 else size, int(arrays.get("window", 0)))
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
        key, t = int(key), int(t)
        self.live_keys.append(key)
        self.live_times.append(t)
        self._tail = None
        if self.dense is not None:
            if 0 <= key < len(self.dense):
                self.dense[key] += 1.0
                if t >= self._mark:
                    self._late.append((t, key))
                if self._cut is not None:
                    self._cut.add(key, t)
            else:  # a key outside the space it was built for: the searches answer from now on
                self.dense, self._cut = None, None

    def count_at(self, keys: np.ndarray, t: int) -> np.ndarray | None:
        """Counts before one instant t without a search where the dense totals answer: t after the build
        and not before an instant already asked (the served clock); else None."""
        if self.dense is None or not self._in_space(keys):
            return None
        if t > self.t_max and t >= self._mark:
            if t > self._mark:  # the clock moved on: live events before it are all in the totals
                self._mark = t
                self._late = [e for e in self._late if e[0] >= t]
            out = self.dense[keys]
            if self._late:
                late, n = np.unique(np.array([k for _, k in self._late], np.int64), return_counts=True)
                hit, pos = member(late, keys)
                out[hit] -= n[pos[hit]]
            return out
        return None

    def count_in_window(self, keys: np.ndarray, t: int) -> np.ndarray | None:
        """Events in [t − window, t) for one served instant t without a search (see `count_at`), else None.
        Only served instants move the cut: it never runs ahead of a later request's window."""
        now = self.count_at(keys, t)
        if now is None or self._cut is None:
            return None
        before = self._cut.count(keys, t - self.window)
        return None if before is None else now - before

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
        if isinstance(t, int) and (fast := self.count_at(keys, t)) is not None:
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


class SlidingCut:
    """Counts per key before a cut that only moves forward — a served request's t − 24 h — kept up to date:
    the base events, sorted by time once, are walked as the cut passes them, and live events wait in a
    heap until it does. A cut before the current one is not answered (the searches are)."""

    def __init__(self, counter: EventCounter):
        self.counter = counter
        self._times: np.ndarray | None = None  # sorted by time on first use: what serving alone needs
        self.cut, self.walked = -(1 << 62), 0
        self._pending: list[tuple[int, int]] = []
        assert counter.dense is not None
        self.before = np.zeros(len(counter.dense), np.float64)
        for key, t in zip(counter.live_keys, counter.live_times, strict=True):
            self.add(key, t)

    def add(self, key: int, t: int) -> None:
        if t < self.cut:
            self.before[key] += 1.0
        else:
            heapq.heappush(self._pending, (t, key))

    def count(self, keys: np.ndarray, cut: int) -> np.ndarray | None:
        if cut < self.cut:
            return None
        c = self.counter
        if self._times is None:
            times = (c.packed & ((1 << int(_SHIFT)) - 1)) + c.origin
            order = np.argsort(times, kind="stable")
            self._times, self._keys = times[order], c.uniq[(c.packed >> _SHIFT)[order]]
        end = int(np.searchsorted(self._times, cut, side="left"))
        if end - self.walked > len(self.before) // 8:  # a long walk (the first): one pass over the key space
            self.before += np.bincount(self._keys[self.walked:end], minlength=len(self.before))
        elif end > self.walked:
            np.add.at(self.before, self._keys[self.walked:end], 1.0)
        self.walked = end
        while self._pending and self._pending[0][0] < cut:
            self.before[heapq.heappop(self._pending)[1]] += 1.0
        self.cut = cut
        return self.before[keys]
