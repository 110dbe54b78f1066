"""What every For You component reads: the serving index, the real-time overlay, graph models, config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from foryou.config import ForYouConfig
from foryou.graph.index import ServingIndex
from foryou.graph.overlay import RealtimeOverlay


@dataclass
class TimelineState:
    index: ServingIndex
    overlay: RealtimeOverlay
    config: ForYouConfig
    realgraph: Any = None  # foryou.graph.realgraph.RealGraph, when built
    simclusters: Any = None  # foryou.embeddings.simclusters.SimClusters, when built
    features: Any = None  # foryou.features.FeatureStore: the trained models' point-in-time features
    models: dict[str, Any] = field(default_factory=dict)  # trained models by name (issue 4)

    def post_ids(self, rows: np.ndarray) -> np.ndarray:
        return self.index.post_id[rows]


class UsesState:
    """Mixin for For You components that read the shared state (index, overlay, models, config)."""

    def __init__(self, state: TimelineState):
        self.state = state
