"""The scored-candidate cache: per user, the ranked candidates of the last full pipeline run.

X's home mixer keeps a user's scored candidates for 3 minutes and serves the next pages from them
without re-running retrieval and ranking. Here an entry holds the top `cache_depth` ranked items;
a request is served from it when enough items remain after removing those its cursor already
served. An entry dies after the TTL, on any write of the user's own (engagement, follow, block,
mute ...), or when a followed account posts something new (so it is a candidate at once), and is
not used for a request served under other experiment arms than the ones it was ranked under.
"""

from __future__ import annotations

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


class ScoredCandidateCache:
    def __init__(self, ttl_s: float, max_users: int):
        self.ttl_s = ttl_s
        self.max_users = max_users
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def get(self, user_id: int) -> CacheEntry | None:
        if not self.enabled:
            return None
        with self._lock:
            e = self._entries.get(user_id)
            if e is None:
                return None
            if e.expires <= time.monotonic():
                del self._entries[user_id]
                return None
            self._entries.move_to_end(user_id)
            return e

    def put(self, user_id: int, items: list[Any], complete: bool, response: Any, new_posts_seen: int,
            variant: str = "") -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[user_id] = CacheEntry(items, complete, response, time.monotonic() + self.ttl_s,
                                                new_posts_seen, variant)
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
