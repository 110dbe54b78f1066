"""A candidate pipeline: one source with its own gates, filters, light scorers and selector."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Generic, TypeVar

import numpy as np

from foryou.mixer.batch import CandidateBatch
from foryou.mixer.components import CandidateSource, Component, Filter, Gate, HasFeatures, Scorer, Selector
from foryou.mixer.result import RunContext
from foryou.mixer.segments import Segments
from foryou.mixer.steps import SharedRun

log = logging.getLogger("foryou.mixer")

SOURCE_COLUMN = "source"
SOURCE_DTYPE = object  # object strings concatenate across pipelines without width promotion

Q = TypeVar("Q", bound=HasFeatures)


def gates_open(gates: Sequence[Gate[Q]], query: Q, ctx: RunContext, pipeline: str | None) -> Gate[Q] | None:
    """Run gates in order; return the first one that says no (None if all pass)."""
    for g in gates:
        t0 = perf_counter()
        ok = bool(g.should_run(query))
        ctx.record(g.name, "gate", pipeline, 0, 0, t0, reason=None if ok else "closed")
        if not ok:
            return g
    return None


@dataclass(eq=False)
class CandidatePipeline(Generic[Q]):
    """One source with its own gates, filters, light scorers and selector.

    Every candidate is tagged with the pipeline name in column "source" (object dtype). With
    `fail_open` (the default) any exception inside is recorded and an empty batch is returned, so
    the page is served without this source.
    """

    name: str
    source: CandidateSource[Q]
    filters: Sequence[Filter[Q]] = ()
    scorers: Sequence[Scorer[Q]] = ()
    selector: Selector[Q] | None = None
    gates: Sequence[Gate[Q]] = ()
    fail_open: bool = True

    @property
    def components(self) -> tuple[Component, ...]:
        """Everything after the source, in run order."""
        return (*self.filters, *self.scorers, *((self.selector,) if self.selector is not None else ()))

    def run(self, query: Q, ctx: RunContext) -> CandidateBatch:
        return self.run_many([query], [ctx])[0]

    def run_many(self, queries: Sequence[Q], ctxs: Sequence[RunContext]) -> tuple[CandidateBatch, Segments]:
        """Gates and the source per query (a failing fetch fails open for that query alone), then the
        filters, light scorers and selector once over every query's candidates (a failure there fails
        open for all of them). Returns the candidates and their segments (query i's rows)."""
        t_start = perf_counter()
        fetched = [self._gate_and_fetch(q, ctx) for q, ctx in zip(queries, ctxs, strict=True)]
        run = SharedRun(queries, ctxs, CandidateBatch.concat(fetched), Segments.of_lengths([len(b) for b in fetched]))
        current: Component | None = None
        try:
            for f in self.filters:
                current = f
                run.filter(f, self.name)
            for s in self.scorers:
                current = s
                run.columns(s, self.name)
            if self.selector is not None:
                current = self.selector
                run.select(self.selector, self.name)
        except Exception as exc:
            if not self.fail_open or current is None:
                raise
            for i, ctx in enumerate(ctxs):
                if run.segments.counts[i]:
                    self._failed(ctx, current, exc)
            run.batch, run.segments = CandidateBatch.empty(), Segments.of_lengths(np.zeros(len(queries), np.int64))
        ms, counts = (perf_counter() - t_start) * 1000.0 / max(len(queries), 1), run.segments.counts
        for i, ctx in enumerate(ctxs):
            ctx.record_ms(self.name, "candidate_pipeline", None, 0, counts[i], ms)
        return run.batch, run.segments

    def _gate_and_fetch(self, query: Q, ctx: RunContext) -> CandidateBatch:
        current: Component | None = None
        try:
            if gates_open(self.gates, query, ctx, self.name) is not None:
                return CandidateBatch.empty()
            current = self.source
            t0 = perf_counter()
            batch = self.source.fetch(query)
            if not isinstance(batch, CandidateBatch):
                raise TypeError(f"fetch returned {type(batch).__name__}, expected CandidateBatch")
        except Exception as exc:
            if not self.fail_open:
                raise
            self._failed(ctx, current, exc)
            return CandidateBatch.empty()
        tag = np.array([self.name], dtype=SOURCE_DTYPE).repeat(len(batch))
        batch = batch.with_columns(**{SOURCE_COLUMN: tag})
        ctx.record(self.source.name, "source", self.name, 0, len(batch), t0)
        return batch

    def _failed(self, ctx: RunContext, comp: Component | None, exc: Exception) -> None:
        """Record a failure of this pipeline for one query; the page is served without it."""
        kind, name = (comp.kind, comp.name) if comp is not None else ("gate", "?")
        where = f"{kind} {name}" if comp is not None else "gate"
        msg = f"candidate_pipeline:{self.name}: {where} failed: {type(exc).__name__}: {exc}"
        log.warning(msg)
        ctx.errors.append(msg)
        ctx.record(name, kind, self.name, 0, 0, perf_counter(), error=f"{type(exc).__name__}: {exc}")
