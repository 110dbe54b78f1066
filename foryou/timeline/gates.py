"""Gates: whether the For You pipeline runs for this request at all."""

from __future__ import annotations

import time
from collections import defaultdict, deque

from foryou.mixer import Gate
from foryou.timeline.query import TimelineQuery


class UserKnownGate(Gate):
    name = "user_known"

    def should_run(self, query: TimelineQuery) -> bool:
        return query.user_row >= 0


class RateLimitGate(Gate):
    """At most `per_minute` requests per user in any sliding minute (wall clock)."""

    name = "rate_limit"

    def __init__(self, per_minute: int = 600):
        self.per_minute = per_minute
        self._recent: dict[int, deque[float]] = defaultdict(deque)

    def should_run(self, query: TimelineQuery) -> bool:
        now = time.monotonic()
        q = self._recent[query.user_row]
        while q and now - q[0] > 60:
            q.popleft()
        if len(q) >= self.per_minute:
            return False
        q.append(now)
        return True
