"""Side effects: run after the response on the mixer's worker thread, never blocking it."""

from __future__ import annotations

from collections import deque

from foryou.mixer import PipelineResult, SideEffect
from foryou.timeline.query import TimelineQuery


class ServedLogSideEffect(SideEffect):
    """Keeps the last `maxlen` served (user, post, position, time, source, score) rows for training
    and analysis (persisted by the service's event store once it exists)."""

    name = "served_log"

    def __init__(self, maxlen: int = 100_000):
        self.rows: deque[tuple] = deque(maxlen=maxlen)

    def apply(self, query: TimelineQuery, result: PipelineResult) -> None:
        b = result.batch
        for pos, (post, source, score) in enumerate(zip(b["post_id"].tolist(), b["source"].tolist(),
                                                        b["score"].tolist(), strict=True)):
            self.rows.append((query.user_id, post, pos, query.now, source, score))
