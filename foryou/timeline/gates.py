"""Gates: whether the For You pipeline runs for this request at all. (Rate limiting is the HTTP
edge's job: the service limits clients before a request reaches the engine.)"""

from __future__ import annotations

from foryou.mixer import Gate
from foryou.timeline.query import TimelineQuery


class UserKnownGate(Gate[TimelineQuery]):
    name = "user_known"

    def should_run(self, query: TimelineQuery) -> bool:
        return query.user_row >= 0
