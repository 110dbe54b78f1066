"""The steps a product pipeline runs over many queries' candidates at once (`Segments`).

Each step calls a component once for the whole batch (its `*_many` method), then records the step
in every query's `RunContext`: that query's candidates in and out, and an equal share of the
step's time (the time of a step shared by N queries, amortised). A step on an empty batch is
recorded but the component is not called, so components never handle a column-less batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Generic, TypeVar

import numpy as np

from foryou.mixer.batch import CandidateBatch
from foryou.mixer.components import Decorator, FeatureHydrator, Filter, HasFeatures, Scorer, Selector
from foryou.mixer.result import RunContext
from foryou.mixer.segments import Segments
from foryou.mixer.trace import MAX_REMOVED_IDS

Q = TypeVar("Q", bound=HasFeatures)


@dataclass
class SharedRun(Generic[Q]):
    """The queries of one run past retrieval, their contexts and their candidates."""

    queries: Sequence[Q]
    ctxs: Sequence[RunContext]
    batch: CandidateBatch
    segments: Segments

    def record(self, name: str, kind: str, pipeline: str | None, before: Segments, t0: float,
               removed: list[list[Any]] | None = None, reason: str | None = None) -> None:
        ms = (perf_counter() - t0) * 1000.0 / max(len(self.ctxs), 1)
        if len(self.ctxs) == 1:  # one request (the common case): no per-query lists
            a, b = before.rows, self.segments.rows
            self.ctxs[0].record_ms(name, kind, pipeline, a, b, ms, removed[0] if removed and b < a else None,
                                   reason if b < a else None)
            return
        n_in, n_out = before.counts, self.segments.counts
        for i, ctx in enumerate(self.ctxs):
            cut = n_out[i] < n_in[i]
            ctx.record_ms(name, kind, pipeline, n_in[i], n_out[i], ms, removed[i] if removed and cut else None,
                          reason if cut else None)

    def filter(self, f: Filter[Q], pipeline: str | None) -> None:
        t0, before, batch = perf_counter(), self.segments, self.batch
        removed = None
        if len(batch):
            mask = np.asarray(f.keep_many(self.queries, batch, before))
            self.batch, self.segments = batch.filter(mask), before.after_mask(mask)
            traced = self.ctxs and self.ctxs[0].trace is not None and self.ctxs[0].id_column is not None
            if traced and len(self.batch) < len(batch) and self.ctxs[0].id_column in batch:
                removed = _removed_ids(batch[str(self.ctxs[0].id_column)], mask, before)
        self.record(f.name, "filter", pipeline, before, t0, removed, reason=f.name)

    def columns(self, comp: FeatureHydrator[Q] | Scorer[Q] | Decorator[Q], pipeline: str | None) -> None:
        t0, batch = perf_counter(), self.batch
        if len(batch):
            if isinstance(comp, Scorer):
                cols = comp.score_many(self.queries, batch, self.segments)
            elif isinstance(comp, Decorator):
                cols = comp.decorate_many(self.queries, batch, self.segments)
            else:
                cols = comp.hydrate_many(self.queries, batch, self.segments)
            self.batch = batch.with_columns(**cols)
        self.record(comp.name, comp.kind, pipeline, self.segments, t0)

    def select(self, s: Selector[Q], pipeline: str | None) -> None:
        t0, before = perf_counter(), self.segments
        if len(self.batch):
            idx = np.asarray(s.select_many(self.queries, self.batch, before), dtype=np.int64)
            self.batch, self.segments = self.batch.take(idx), before.after_take(idx)
        self.record(s.name, "selector", pipeline, before, t0)


def _removed_ids(ids: np.ndarray, mask: np.ndarray, segments: Segments) -> list[list[Any]]:
    """The first MAX_REMOVED_IDS removed ids of each query (traces only)."""
    out: list[list[Any]] = [[] for _ in range(len(segments))]
    for i, lo, hi in segments.bounds():
        out[i] = ids[lo:hi][~mask[lo:hi]][:MAX_REMOVED_IDS].tolist()
    return out
