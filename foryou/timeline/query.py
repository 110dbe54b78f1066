"""The For You request as the mixer sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from foryou.mixer import Query


@dataclass
class TimelineQuery(Query):
    """One request: who, when, how many; `features` is filled by the query hydrators."""

    user_id: int = 0
    user_row: int = -1
    now: int = 0
    n: int = 35
    explain: bool = False
    served: frozenset[int] = frozenset()  # post rows already served on earlier pages (cursor)
    features: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
