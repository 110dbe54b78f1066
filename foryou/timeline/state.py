"""What every For You component reads: the serving index, the real-time overlay, graph models,
the feature store, the trained models and the config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from foryou.config import EngagementWeights, ForYouConfig
from foryou.embeddings.simclusters import SimClusters
from foryou.features import FeatureStore
from foryou.graph.index import ServingIndex
from foryou.graph.overlay import RealtimeOverlay
from foryou.graph.realgraph import RealGraph
from foryou.mixer import CandidateBatch
from foryou.timeline.windows import head_weights

if TYPE_CHECKING:
    from foryou.timeline.query import TimelineQuery


class HeavyRankerModel(Protocol):
    """A trained heavy ranker: one probability per head for each candidate."""

    version: str

    def predict(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]: ...

    def predict_many(self, user_rows: np.ndarray, batch: CandidateBatch, now: int) -> dict[str, np.ndarray]:
        """Candidates of many viewers at once: `user_rows` is each candidate's viewer."""
        ...


class LightRankerModel(Protocol):
    """A trained light ranker: a score per candidate of one source."""

    version: str
    batches: int

    def score(self, query: TimelineQuery, rows: np.ndarray) -> np.ndarray: ...


class RetrieverModel(Protocol):
    """Embedding retrieval (two-tower vectors): the viewer's nearest recent posts."""

    version: str

    def retrieve(self, user_row: int, now: int, k: int = ...) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class TimelineState:
    index: ServingIndex
    overlay: RealtimeOverlay
    config: ForYouConfig
    realgraph: RealGraph | None = None
    simclusters: SimClusters | None = None
    features: FeatureStore | None = None  # the trained models' point-in-time features
    models: dict[str, object] = field(default_factory=dict)  # trained models by name (see loading.py)

    @property
    def store(self) -> FeatureStore:
        if self.features is None:
            raise RuntimeError("this timeline state has no feature store")
        return self.features

    def weights(self) -> EngagementWeights:
        """The heavy ranker's utility weights for this data (foryou.timeline.windows.head_weights)."""
        idx = self.index
        kinds = idx.__dict__.get("kinds_present")
        if kinds is None:  # once per index: which engagement kinds the data carries at all
            kinds = idx.__dict__.setdefault("kinds_present", tuple(k for k, n in idx.counts.items() if n.any()))
        return head_weights(self.config.weights, kinds, idx.has_impressions)

    def heavy_ranker(self) -> HeavyRankerModel | None:
        """The model in the heavy-ranker slot (`timeline.ranking.model`): auto = Phoenix where one is served (it
        was promoted by beating what served on validation), else MaskNet; None = the heuristic heads."""
        choice = self.config.timeline.ranking.model
        if choice != "masknet" and "phoenix" in self.models:
            return cast("HeavyRankerModel", self.models["phoenix"])
        return cast("HeavyRankerModel | None", self.models.get("heavy_ranker")) if choice != "phoenix" else None

    def light_ranker(self, side: str) -> LightRankerModel | None:
        return cast("LightRankerModel | None", self.models.get(f"light_ranker_{side}"))

    def retriever(self, slot: str = "two_tower") -> RetrieverModel | None:
        """An embedding retriever: the two-tower's vectors, or Phoenix's two-tower (`slot="phoenix_retrieval"`)."""
        return cast("RetrieverModel | None", self.models.get(slot))


class UsesState:
    """Mixin for For You components that read the shared state (index, overlay, models, config)."""

    def __init__(self, state: TimelineState):
        self.state = state
