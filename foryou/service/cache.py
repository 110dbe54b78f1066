"""The scored-candidate cache: per user, the ranked candidates of the last full pipeline run.

X's home mixer keeps a user's scored candidates for 3 minutes and serves the next pages from them
without re-running retrieval and ranking. Here an entry holds the top `cache_depth` ranked items;
a request is served from it when enough items remain after removing those its cursor already
served. An entry dies after the TTL, on any write of the user's own (engagement, follow, block,
mute ...), or when a followed account posts something new (so it is a candidate at once), and is
not used for a request served under other experiment arms than the ones it was ranked under.

An entry remembers the last event applied before its ranking (`seq`); one ranked before an event of its
user that was applied since is never served, even when it was stored after that event's invalidation
(a miss racing a write). With `--state redis://…` the entries live in Redis (`RedisCandidateCache`),
shared by every worker and replica: a user misses once per fleet, not once per process.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass
class CacheEntry:
    items: list[Any]  # TimelineItem, best first
    complete: bool  # the pipeline returned fewer than asked: nothing more to fetch
    response: Any  # the TimelineResponse it came from (timings, sources, models)
    expires: float
    new_posts_seen: int  # overlay.new_posts when built: later posts are checked against follows
    variant: str = ""  # the experiment arms it was ranked under ("" = none)
    seq: int = 0  # the last event applied when it was ranked


class _CandidateCache:
    """What both caches share: the TTL, and per user the seq of their last applied event (each process
    applies every event: a local map)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._user_seq: dict[int, int] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def applied(self, users: dict[int, int]) -> None:
        """Events were applied: user → seq of their last one. Their entries go."""
        self._user_seq.update(users)
        for user in users:
            self.invalidate(user)

    def _fresh(self, user_id: int, e: CacheEntry) -> bool:
        return e.seq >= self._user_seq.get(user_id, 0)

    def invalidate(self, user_id: int) -> None:
        raise NotImplementedError


class ScoredCandidateCache(_CandidateCache):
    """In this process (LRU over `max_users`)."""

    def __init__(self, ttl_s: float, max_users: int):
        super().__init__(ttl_s)
        self.max_users = max_users
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, user_id: int) -> CacheEntry | None:
        if not self.enabled:
            return None
        with self._lock:
            e = self._entries.get(user_id)
            if e is None:
                return None
            if e.expires <= time.monotonic() or not self._fresh(user_id, e):
                del self._entries[user_id]
                return None
            self._entries.move_to_end(user_id)
            return e

    def put(self, user_id: int, items: list[Any], complete: bool, response: Any, new_posts_seen: int,
            variant: str = "", seq: int = 0) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[user_id] = CacheEntry(items, complete, response, time.monotonic() + self.ttl_s,
                                                new_posts_seen, variant, seq)
            self._entries.move_to_end(user_id)
            while len(self._entries) > self.max_users:
                self._entries.popitem(last=False)

    def invalidate(self, user_id: int) -> None:
        with self._lock:
            self._entries.pop(user_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class RedisCandidateCache(_CandidateCache):
    """In Redis, shared by every worker and replica: one key per user, expiring after the TTL (Redis evicts
    them first under `maxmemory-policy volatile-lru`: the event log has no TTL). Entries are pickled: the
    Redis is the deployment's own, the one that holds its event log. A Redis error is a miss, never a
    failed request."""

    def __init__(self, client: Any, prefix: str, ttl_s: float):
        super().__init__(ttl_s)
        import redis

        self.r, self.prefix, self._errors = client, prefix + "cache:", redis.RedisError

    def get(self, user_id: int) -> CacheEntry | None:
        if not self.enabled:
            return None
        try:
            raw = self.r.get(self.prefix + str(user_id))
        except self._errors:
            return None
        e = None if raw is None else pickle.loads(raw)
        return e if e is not None and self._fresh(user_id, e) else None

    def put(self, user_id: int, items: list[Any], complete: bool, response: Any, new_posts_seen: int,
            variant: str = "", seq: int = 0) -> None:
        if not self.enabled:
            return
        entry = CacheEntry(items, complete, response, float("inf"), new_posts_seen, variant, seq)
        with contextlib.suppress(self._errors):
            self.r.set(self.prefix + str(user_id), pickle.dumps(entry, protocol=5), px=max(int(self.ttl_s * 1000), 1))

    def invalidate(self, user_id: int) -> None:
        with contextlib.suppress(self._errors):
            self.r.delete(self.prefix + str(user_id))

    def applied(self, users: dict[int, int]) -> None:
        self._user_seq.update(users)
        with contextlib.suppress(self._errors):  # one round trip for a batch's users
            if users:
                self.r.delete(*(self.prefix + str(u) for u in users))

    def clear(self) -> None:
        with contextlib.suppress(self._errors):
            for keys in _batched(self.r.scan_iter(match=self.prefix + "*", count=1000), 1000):
                self.r.unlink(*keys)

    def __len__(self) -> int:
        try:
            return sum(1 for _ in self.r.scan_iter(match=self.prefix + "*", count=1000))
        except self._errors:
            return 0


def _batched(it: Any, n: int) -> Any:
    batch: list[Any] = []
    for x in it:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch
