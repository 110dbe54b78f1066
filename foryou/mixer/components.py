"""Component kinds of the mixer framework (after X's product-mixer).

Every component is a small object with one method and a stable `name` that keys timings, traces
and configs. `name` defaults to the class name; set it on the class, or on an instance when one
class is configured several ways. The framework knows nothing about posts or users: a query is
any object with a mutable `features` dict, and candidates are a `CandidateBatch`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from foryou.mixer.batch import CandidateBatch

if TYPE_CHECKING:
    from foryou.mixer.pipeline import PipelineResult


class HasFeatures(Protocol):
    """What the framework needs of a query: a mutable feature dict."""

    features: dict[str, Any]


@dataclass
class Query:
    """Generic request: `features` are filled by query hydrators, `params` are request options.

    Products subclass it to add typed fields (user id, page size, ...).
    """

    features: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


class Component:
    """Base of all kinds: gives each subclass a default `name` (its class name) and a `kind`."""

    name: str = "Component"
    kind: ClassVar[str] = "component"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name}>"


class Gate(Component, ABC):
    """Decides whether a pipeline runs at all for this query."""

    kind = "gate"

    @abstractmethod
    def should_run(self, query: HasFeatures) -> bool: ...


class QueryHydrator(Component, ABC):
    """Fetches per-request features once (follows, user vector, seen set, ...)."""

    kind = "query_hydrator"

    @abstractmethod
    def hydrate(self, query: HasFeatures) -> dict[str, Any]:
        """Features to merge into `query.features`."""


class CandidateSource(Component, ABC):
    """Produces candidates; wrapped by a CandidatePipeline, which fails open around it."""

    kind = "source"

    @abstractmethod
    def fetch(self, query: HasFeatures) -> CandidateBatch: ...


class FeatureHydrator(Component, ABC):
    """Adds per-candidate feature columns."""

    kind = "feature_hydrator"

    @abstractmethod
    def hydrate(self, query: HasFeatures, batch: CandidateBatch) -> dict[str, np.ndarray]:
        """New columns, each the batch's length and order."""


class Filter(Component, ABC):
    """Removes candidates; the filter's name is the recorded reason for each removal."""

    kind = "filter"

    @abstractmethod
    def keep(self, query: HasFeatures, batch: CandidateBatch) -> np.ndarray:
        """Bool keep-mask of the batch's length."""


class Scorer(Component, ABC):
    """Writes score columns (model predictions, utilities, rescoring factors)."""

    kind = "scorer"

    @abstractmethod
    def score(self, query: HasFeatures, batch: CandidateBatch) -> dict[str, np.ndarray]:
        """Score columns, each the batch's length and order."""


class Selector(Component, ABC):
    """Chooses and orders a subset (top-k, diversity, network balance, ...)."""

    kind = "selector"

    @abstractmethod
    def select(self, query: HasFeatures, batch: CandidateBatch) -> np.ndarray:
        """Integer indices into the batch of the chosen candidates, in output order."""


class Decorator(Component, ABC):
    """Adds presentation columns to the selected page (social proof, explanations)."""

    kind = "decorator"

    @abstractmethod
    def decorate(self, query: HasFeatures, batch: CandidateBatch) -> dict[str, np.ndarray]: ...


class SideEffect(Component, ABC):
    """Runs after the response is built, off the request path; must not affect the response."""

    kind = "side_effect"

    @abstractmethod
    def apply(self, query: HasFeatures, result: PipelineResult) -> None: ...
