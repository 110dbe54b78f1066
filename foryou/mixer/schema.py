"""Declared columns and query features, and the build-time check of a pipeline's order.

A product declares every candidate column and query feature once (`Column`, `Feature`: a name
that is a plain `str`, so it keys batches and feature dicts as before, plus its dtype, meaning and
producer). Components list what they read and write; `check_order` walks a product pipeline in run
order and fails, naming the component and the key, when something is read before anything writes
it — when the pipeline is built, not when a request finds the KeyError.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from foryou.mixer.components import Component

if TYPE_CHECKING:
    from foryou.mixer.pipeline import ProductPipeline


class Column(str):
    """A candidate column: its name, numpy dtype, meaning, and the component that writes it."""

    dtype: np.dtype[Any]
    doc: str
    producer: str

    def __new__(cls, name: str, dtype: Any, doc: str = "", producer: str = "") -> Column:
        col = super().__new__(cls, name)
        col.dtype, col.doc, col.producer = np.dtype(dtype), doc, producer
        return col

    def __reduce__(self) -> tuple[type[Column], tuple[str, str, str, str]]:  # copies and pickles keep the dtype
        return Column, (str(self), self.dtype.str, self.doc, self.producer)


class Feature(str):
    """A query feature (filled by a query hydrator): its name, meaning and producer."""

    doc: str
    producer: str

    def __new__(cls, name: str, doc: str = "", producer: str = "") -> Feature:
        feat = super().__new__(cls, name)
        feat.doc, feat.producer = doc, producer
        return feat

    def __reduce__(self) -> tuple[type[Feature], tuple[str, str, str]]:
        return Feature, (str(self), self.doc, self.producer)


class PipelineOrderError(ValueError):
    """A component reads a column or query feature that no earlier component provides."""


def dtype_mismatches(columns: Iterable[Column], batch_columns: dict[str, np.ndarray]) -> list[str]:
    """Declared columns present in a batch with another dtype (for tests and debugging)."""
    return [f"{c}: declared {c.dtype}, found {batch_columns[c].dtype}" for c in columns
            if c in batch_columns and batch_columns[c].dtype != c.dtype]


class _Undeclared(set[str]):
    """What an undeclared producer (no `writes` / `provides`) makes available: possibly anything,
    so reads after it are not checked. Declarations are opt-in per component."""

    def __contains__(self, key: object) -> bool:
        return True

    def __or__(self, other: object) -> _Undeclared:  # type: ignore[override]  # anything | more = anything
        return self


class _Walk:
    """Available columns and features while walking a pipeline in run order."""

    def __init__(self, pipeline: str, order: Sequence[Component]) -> None:
        self.pipeline = pipeline
        self.order = order
        self.features: set[str] = set()
        self.problems: list[str] = []

    def check(self, comp: Component, columns: set[str], where: str = "") -> None:
        at = f"{where}/" if where else ""
        for key, have, what, attr in ((comp.needs, self.features, "query feature", "provides"),
                                      (comp.reads, columns, "column", "writes")):
            for name in key:
                if name not in have:
                    later = [c for c in self.order[self.order.index(comp) + 1:] if name in getattr(c, attr)]
                    hint = (f"written only later, by {later[0].kind} {later[0].name}" if later
                            else "nothing in the pipeline writes it")
                    self.problems.append(f"{self.pipeline}: {at}{comp.kind} {comp.name} reads {what} {name!r} "
                                         f"before it exists ({hint})")
        if comp.kind == "query_hydrator" and not comp.provides:
            self.features = _Undeclared()
        self.features |= set(comp.provides)


def check_order(p: ProductPipeline[Any]) -> None:
    """Raise PipelineOrderError listing every read that no earlier step satisfies."""
    from foryou.mixer.candidate import SOURCE_COLUMN

    flat = [*p.gates, *p.query_hydrators]
    for cp in p.candidate_pipelines:
        flat += [*cp.gates, cp.source, *cp.components]
    flat += list(p.ranking_components())
    walk = _Walk(p.name, flat)
    for comp in (*p.gates, *p.query_hydrators):
        walk.check(comp, set())
    outputs = []
    for cp in p.candidate_pipelines:
        cols: set[str] = {SOURCE_COLUMN} if cp.source.writes else _Undeclared()
        for comp in (*cp.gates, cp.source, *cp.components):
            walk.check(comp, cols, cp.name)
            cols |= set(comp.writes)
        outputs.append(cols)
    declared = [c for c in outputs if not isinstance(c, _Undeclared)]
    columns: set[str] = set.intersection(*declared) if declared else (_Undeclared() if outputs else set())
    if p.dedup_column is not None and outputs and p.dedup_column not in columns:
        walk.problems.append(f"{p.name}: dedup column {p.dedup_column!r} is not written by every candidate pipeline")
    for comp in p.ranking_components():
        walk.check(comp, columns)
        columns |= set(comp.writes)
    if walk.problems:
        raise PipelineOrderError("pipeline order: " + "; ".join(walk.problems))
