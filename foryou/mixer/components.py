"""Component kinds of the mixer framework (after X's product-mixer).

Every component is a small object with one method and a stable `name` that keys timings, traces
and configs. `name` defaults to the class name; set it on the class, or on an instance when one
class is configured several ways. The framework knows nothing about posts or users: a query is
any object with a mutable `features` dict, and candidates are a `CandidateBatch`.

Components declare what they read and write — candidate columns (`reads`, `writes`) and query
features (`needs`, `provides`) — so a pipeline checks its order when it is built (see
`foryou.mixer.schema`). The per-candidate kinds also take many queries at once (`*_many`, over a
batch split into `Segments`); the default runs the one-query method on each query's rows, and a
component overrides it where one vectorised pass over every query's candidates is cheaper.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

from foryou.mixer.batch import CandidateBatch
from foryou.mixer.segments import Segments

if TYPE_CHECKING:
    from foryou.mixer.result import PipelineResult


class HasFeatures(Protocol):
    """What the framework needs of a query: a mutable feature dict."""

    features: dict[str, Any]


Q = TypeVar("Q", bound=HasFeatures, contravariant=True)
Columns = dict[str, np.ndarray]


@dataclass
class Query:
    """Generic request: `features` are filled by query hydrators, `params` are request options.

    Products subclass it to add typed fields (user id, page size, ...).
    """

    features: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


class Component:
    """Base of all kinds: a default `name` (the class name), a `kind`, and the declarations."""

    name: str = "Component"
    kind: ClassVar[str] = "component"
    reads: tuple[str, ...] = ()  # candidate columns this component reads
    writes: tuple[str, ...] = ()  # candidate columns it adds or replaces
    needs: tuple[str, ...] = ()  # query features it reads
    provides: tuple[str, ...] = ()  # query features it adds (query hydrators)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name}>"


def per_query_columns(
    one: Callable[[Any, CandidateBatch], Columns], queries: Sequence[Any], batch: CandidateBatch, segments: Segments
) -> Columns:
    """Columns of a one-query method, run on each query's rows and stacked back in row order."""
    if len(segments) == 1:
        return one(queries[0], batch)
    parts = [CandidateBatch(one(queries[i], batch.rows(lo, hi)), length=hi - lo) for i, lo, hi in segments.bounds()]
    return dict(CandidateBatch.concat(parts).columns) if parts else {}


class Gate(Component, ABC, Generic[Q]):
    """Decides whether a pipeline runs at all for this query."""

    kind = "gate"

    @abstractmethod
    def should_run(self, query: Q) -> bool: ...


class QueryHydrator(Component, ABC, Generic[Q]):
    """Fetches per-request features once (follows, user vector, seen set, ...)."""

    kind = "query_hydrator"

    @abstractmethod
    def hydrate(self, query: Q) -> dict[str, Any]:
        """Features to merge into `query.features`."""


class CandidateSource(Component, ABC, Generic[Q]):
    """Produces candidates; wrapped by a CandidatePipeline, which fails open around it."""

    kind = "source"

    @abstractmethod
    def fetch(self, query: Q) -> CandidateBatch: ...


class FeatureHydrator(Component, ABC, Generic[Q]):
    """Adds per-candidate feature columns."""

    kind = "feature_hydrator"

    @abstractmethod
    def hydrate(self, query: Q, batch: CandidateBatch) -> Columns:
        """New columns, each the batch's length and order."""

    def hydrate_many(self, queries: Sequence[Q], batch: CandidateBatch, segments: Segments) -> Columns:
        return per_query_columns(self.hydrate, queries, batch, segments)


class Filter(Component, ABC, Generic[Q]):
    """Removes candidates; the filter's name is the recorded reason for each removal."""

    kind = "filter"

    @abstractmethod
    def keep(self, query: Q, batch: CandidateBatch) -> np.ndarray:
        """Bool keep-mask of the batch's length."""

    def keep_many(self, queries: Sequence[Q], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        if len(segments) == 1:
            return self.keep(queries[0], batch)
        mask = np.ones(len(batch), dtype=bool)
        for i, lo, hi in segments.bounds():
            mask[lo:hi] = self.keep(queries[i], batch.rows(lo, hi))
        return mask


class Scorer(Component, ABC, Generic[Q]):
    """Writes score columns (model predictions, utilities, rescoring factors)."""

    kind = "scorer"

    @abstractmethod
    def score(self, query: Q, batch: CandidateBatch) -> Columns:
        """Score columns, each the batch's length and order."""

    def score_many(self, queries: Sequence[Q], batch: CandidateBatch, segments: Segments) -> Columns:
        return per_query_columns(self.score, queries, batch, segments)


class Selector(Component, ABC, Generic[Q]):
    """Chooses and orders a subset (top-k, diversity, network balance, ...)."""

    kind = "selector"

    @abstractmethod
    def select(self, query: Q, batch: CandidateBatch) -> np.ndarray:
        """Integer indices into the batch of the chosen candidates, in output order."""

    def select_many(self, queries: Sequence[Q], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        """Indices into the whole batch, each query's choice in its own order, queries in order."""
        if len(segments) == 1:
            return np.asarray(self.select(queries[0], batch), dtype=np.int64)
        parts = [np.asarray(self.select(queries[i], batch.rows(lo, hi)), dtype=np.int64) + lo
                 for i, lo, hi in segments.bounds()]
        return np.concatenate(parts) if parts else np.empty(0, np.int64)


class Decorator(Component, ABC, Generic[Q]):
    """Adds presentation columns to the selected page (social proof, explanations)."""

    kind = "decorator"

    @abstractmethod
    def decorate(self, query: Q, batch: CandidateBatch) -> Columns: ...

    def decorate_many(self, queries: Sequence[Q], batch: CandidateBatch, segments: Segments) -> Columns:
        return per_query_columns(self.decorate, queries, batch, segments)


class SideEffect(Component, ABC, Generic[Q]):
    """Runs after the response is built, off the request path; must not affect the response."""

    kind = "side_effect"

    @abstractmethod
    def apply(self, query: Q, result: PipelineResult) -> None: ...
