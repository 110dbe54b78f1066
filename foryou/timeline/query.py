"""The For You request as the mixer sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from foryou.config import MixingConfig
from foryou.mixer import Query

PAGE_SIZE: int = MixingConfig().page_size  # a bare query's page size: the config default


@dataclass
class TimelineQuery(Query):
    """One request: who, when, how many; `features` is filled by the query hydrators."""

    user_id: int = 0
    user_row: int = -1
    now: int = 0
    n: int = PAGE_SIZE
    explain: bool = False
    served: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # post rows of earlier pages
    features: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
