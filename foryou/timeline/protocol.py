"""`Engine`: what a caller of the For You engine relies on — the in-process `RecommendationEngine`
and the simulation's HTTP client (`foryou.simulation.http_backend.HttpEngine`) both satisfy it, so a
simulation, an evaluation or a notebook can be handed either."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from foryou.timeline.page import PageBatch, TimelineResponse


class Engine(Protocol):
    def recommend(self, user_id: int, n: int | None = None, context: dict[str, Any] | None = None,
                  explain: bool = False, trace: bool = False, now: int | None = None,
                  overrides: dict[str, Any] | None = None,
                  exclude: Iterable[int] | None = None) -> TimelineResponse:
        """One page for one user; `exclude`: post ids already served to them (the next page of a scroll)."""
        ...

    def recommend_many(self, user_ids: Sequence[int] | np.ndarray, n: int | None = None, now: int | None = None,
                       overrides: dict[str, Any] | None = None,
                       exclude: Sequence[Iterable[int] | None] | None = None) -> PageBatch:
        """Pages of many users at one instant, as users × n columns."""
        ...

    def record_interaction(self, user_id: int, post_id: int, kind: str, t: int | None = None,
                           **details: Any) -> None: ...

    def record_interactions(self, user_ids: Sequence[int] | np.ndarray, post_ids: Sequence[int] | np.ndarray,
                            kinds: Sequence[str], times: Sequence[int] | np.ndarray) -> None: ...

    def relate(self, user_id: int, target_id: int, action: str, t: int | None = None) -> None: ...

    def add_post(self, post_id: int, author_id: int, t: int | None = None, kind: str = "original",
                 parent_id: int | None = None, topic: int = -1, has_media: bool = False, has_link: bool = False,
                 length: int = 0, labels: dict[str, bool] | None = None) -> int: ...

    def model_versions(self) -> dict[str, str]: ...

    def close(self) -> None: ...


if TYPE_CHECKING:  # the in-process engine satisfies the protocol (checked by mypy)
    from foryou.timeline.engine import RecommendationEngine

    def _in_process(engine: RecommendationEngine) -> Engine:
        return engine
