"""Pipelines as data: lists of components run in a fixed order, each step timed and (opt-in) traced.

Order of a product pipeline: gates → query hydrators → candidate pipelines (each fails open) →
concat → dedup → filters → scoring pipelines → post-filters → selectors (chained) →
post-selection filters → decorators → side effects (asynchronous, never fail or delay the response).

`run_many` serves many queries in one pass: each query is gated, hydrated and retrieved on its
own, then every later step runs once over all the queries' candidates concatenated (`Segments`
say which rows are whose), so a component that vectorises across queries pays its fixed costs once.
`run(query)` is `run_many([query])`. `until` stops after a stage (see STAGES) and `observe` sees
each stage's output — evaluation measures the real funnel with them instead of re-running it.

Timings are keyed "<kind>:<component name>" at product level and "<pipeline>/<kind>:<name>" inside a
candidate or scoring pipeline (so two pipelines may reuse a component), plus "total". A key that
repeats accumulates. A step shared by N queries records 1/N of its time in each query's timings.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Generic, TypeVar

import numpy as np

from foryou.mixer.batch import CandidateBatch
from foryou.mixer.candidate import CandidatePipeline, gates_open
from foryou.mixer.components import (
    Component,
    Decorator,
    FeatureHydrator,
    Filter,
    Gate,
    HasFeatures,
    QueryHydrator,
    Scorer,
    Selector,
    SideEffect,
)
from foryou.mixer.result import BatchResult, PipelineResult, RunContext
from foryou.mixer.schema import check_order
from foryou.mixer.segments import Segments
from foryou.mixer.steps import SharedRun
from foryou.mixer.trace import Trace

log = logging.getLogger("foryou.mixer")

Q = TypeVar("Q", bound=HasFeatures)

# Stages `until` may name, in run order ("candidate_pipelines" = their outputs concatenated, before dedup).
STAGES = ("candidate_pipelines", "dedup", "filters", "scoring_pipelines", "post_filters", "selectors",
          "post_selection_filters", "decorators")

StageObserver = Callable[[str, CandidateBatch, Segments], None]
"""Called with (stage, its output over all queries, their segments); per candidate pipeline as
"candidate_pipeline:<name>", per scoring pipeline as "scoring_pipeline:<name>", then each STAGES name."""


@dataclass(eq=False)
class ScoringPipeline(Generic[Q]):
    """Feature hydrators, then scorers, then filters, on the merged candidate batch."""

    name: str
    hydrators: Sequence[FeatureHydrator[Q]] = ()
    scorers: Sequence[Scorer[Q]] = ()
    filters: Sequence[Filter[Q]] = ()

    @property
    def components(self) -> tuple[Component, ...]:
        return (*self.hydrators, *self.scorers, *self.filters)

    def run_many(self, run: SharedRun[Q]) -> None:
        t_start, before = perf_counter(), run.segments
        for h in self.hydrators:
            run.columns(h, self.name)
        for s in self.scorers:
            run.columns(s, self.name)
        for f in self.filters:
            run.filter(f, self.name)
        run.record(self.name, "scoring_pipeline", None, before, t_start)


class ProductPipeline(Generic[Q]):
    """A whole product (e.g. the For You timeline) assembled from components and sub-pipelines.

    `dedup_column` (none by default: the product names its id column) keeps the first candidate of
    each value; `id_column` (default: `dedup_column`) names the column whose values traces list for
    removed candidates. The order is checked when the pipeline is built (`foryou.mixer.schema`).
    Side effects run on a pipeline-owned single-worker thread pool (created on first use), so they
    never delay or fail `run`; their exceptions are logged on "foryou.mixer". Call `flush` to wait
    for them (tests, shutdown) and `close` to stop the worker.
    """

    def __init__(
        self,
        name: str,
        gates: Sequence[Gate[Q]] = (),
        query_hydrators: Sequence[QueryHydrator[Q]] = (),
        candidate_pipelines: Sequence[CandidatePipeline[Q]] = (),
        dedup_column: str | None = None,
        filters: Sequence[Filter[Q]] = (),
        scoring_pipelines: Sequence[ScoringPipeline[Q]] = (),
        post_filters: Sequence[Filter[Q]] = (),
        selectors: Sequence[Selector[Q]] = (),
        post_selection_filters: Sequence[Filter[Q]] = (),
        decorators: Sequence[Decorator[Q]] = (),
        side_effects: Sequence[SideEffect[Q]] = (),
        id_column: str | None = None,
    ) -> None:
        self.name = name
        self.gates = tuple(gates)
        self.query_hydrators = tuple(query_hydrators)
        self.candidate_pipelines = tuple(candidate_pipelines)
        self.dedup_column = dedup_column
        self.filters = tuple(filters)
        self.scoring_pipelines = tuple(scoring_pipelines)
        self.post_filters = tuple(post_filters)
        self.selectors = tuple(selectors)
        self.post_selection_filters = tuple(post_selection_filters)
        self.decorators = tuple(decorators)
        self.side_effects = tuple(side_effects)
        self.id_column = id_column if id_column is not None else dedup_column
        self._executor: cf.ThreadPoolExecutor | None = None
        self._pending: set[cf.Future[None]] = set()
        self._lock = threading.Lock()
        check_order(self)

    def __repr__(self) -> str:
        return f"ProductPipeline({self.name!r}, {len(self.candidate_pipelines)} candidate pipelines)"

    def ranking_components(self) -> Iterator[Component]:
        """Every component after retrieval and dedup, in run order."""
        yield from self.filters
        for sp in self.scoring_pipelines:
            yield from sp.components
        yield from (*self.post_filters, *self.selectors, *self.post_selection_filters, *self.decorators)

    # -- request path -----------------------------------------------------------------------------
    def run(self, query: Q, trace: bool = False, until: str | None = None,
            observe: StageObserver | None = None) -> PipelineResult:
        """Serve one request. Only candidate pipelines fail open; other components' errors raise."""
        return self.run_many([query], trace, until, observe).results[0]

    def run_many(self, queries: Sequence[Q], trace: bool = False, until: str | None = None,
                 observe: StageObserver | None = None) -> BatchResult:
        """Serve many requests: retrieval per query, every later step once over all of them."""
        if until is not None and until not in STAGES:
            raise ValueError(f"unknown stage {until!r}; one of {', '.join(STAGES)}")
        stop = STAGES.index(until) if until is not None else len(STAGES)
        t_start = perf_counter()
        ctxs = [RunContext(trace=Trace(self.name) if trace else None, id_column=self.id_column) for _ in queries]
        skipped = [self._hydrate(q, ctx) for q, ctx in zip(queries, ctxs, strict=True)]
        live = [i for i, closed in enumerate(skipped) if closed is None]
        run = SharedRun([queries[i] for i in live], [ctxs[i] for i in live], CandidateBatch.empty(),
                        Segments.of_lengths(np.zeros(len(live), np.int64)))
        self._candidates(run, stop, observe)
        last = self._rank(run, stop, observe)
        for ctx in ctxs:  # a batch's wall time, shared equally
            ctx.timings["total"] = (perf_counter() - t_start) * 1000.0 / len(ctxs)
        if len(live) < len(queries):  # gate-closed queries own no rows
            lengths = np.zeros(len(queries), np.int64)
            lengths[live] = run.segments.lengths
            segments = Segments.of_lengths(lengths)
        else:
            segments = run.segments
        results = [PipelineResult(segments.slice(run.batch, i), ctx.timings, ctx.errors, ctx.trace, q, self.name,
                                  skipped=skipped[i], counts=ctx.counts)
                   for i, (q, ctx) in enumerate(zip(queries, ctxs, strict=True))]
        if self.side_effects and until is None:
            for q, res in zip(queries, results, strict=True):
                if res.skipped is None:
                    self._submit_side_effects(q, res)
        return BatchResult(run.batch, segments, results, last)

    def _hydrate(self, query: Q, ctx: RunContext) -> str | None:
        """Gates and query hydrators for one query; the closing gate's key, or None."""
        closed = gates_open(self.gates, query, ctx, None)
        if closed is not None:
            return f"gate:{closed.name}"
        for h in self.query_hydrators:
            t0 = perf_counter()
            query.features.update(h.hydrate(query))
            ctx.record(h.name, "query_hydrator", None, 0, 0, t0)
        return None

    def _candidates(self, run: SharedRun[Q], stop: int, observe: StageObserver | None) -> None:
        """Every candidate pipeline over all queries; their candidates merged query by query (each
        query's in pipeline order), then deduplicated per query."""
        outs = [cp.run_many(run.queries, run.ctxs) for cp in self.candidate_pipelines]
        if observe is not None:
            for cp, (b, seg) in zip(self.candidate_pipelines, outs, strict=True):
                observe(f"candidate_pipeline:{cp.name}", b, seg)
        t0 = perf_counter()
        if outs:
            owner = np.concatenate([seg.ids for _, seg in outs])
            merged = CandidateBatch.concat([b for b, _ in outs])
            if len(run.queries) > 1:  # pipeline by pipeline → query by query (a stable sort keeps the order)
                merged = merged.take(np.argsort(owner, kind="stable"))
            run.batch, run.segments = merged, Segments.of_lengths(np.bincount(owner, minlength=len(run.queries)))
        if observe is not None:
            observe("candidate_pipelines", run.batch, run.segments)
        col, before = self.dedup_column, run.segments
        if stop == 0 or col is None or not len(run.batch) or col not in run.batch:
            return
        first = _first_per_query(run.batch[col], before)
        if len(first) < len(run.batch):
            run.batch, run.segments = run.batch.take(first), before.after_take(first)
        run.record(col, "dedup", None, before, t0, reason="dedup")

    def _rank(self, run: SharedRun[Q], stop: int, observe: StageObserver | None) -> str:
        """Every stage after dedup (which ran per query), once over all queries, up to STAGES[stop];
        returns the last stage run."""
        last = STAGES[0]
        for stage in STAGES[1:stop + 1]:
            if stage == "scoring_pipelines":
                for sp in self.scoring_pipelines:
                    sp.run_many(run)
                    if observe is not None:
                        observe(f"scoring_pipeline:{sp.name}", run.batch, run.segments)
            elif stage == "selectors":
                for s in self.selectors:
                    run.select(s, None)
            elif stage == "decorators":
                for d in self.decorators:
                    run.columns(d, None)
            elif stage != "dedup":
                for f in getattr(self, stage):  # filters, post_filters, post_selection_filters
                    run.filter(f, None)
            last = stage
            if observe is not None:
                observe(stage, run.batch, run.segments)
        return last

    # -- side effects -----------------------------------------------------------------------------
    def _submit_side_effects(self, query: Q, result: PipelineResult) -> None:
        with self._lock:
            if self._executor is None:
                self._executor = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mixer-{self.name}")
            for se in self.side_effects:
                fut = self._executor.submit(_safe_apply, se, query, result)
                self._pending.add(fut)
                fut.add_done_callback(self._pending.discard)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for pending side effects; True if all finished within `timeout` seconds."""
        with self._lock:
            pending = list(self._pending)
        if not pending:
            return True
        _, not_done = cf.wait(pending, timeout=timeout)
        return not not_done

    def close(self) -> None:
        """Finish pending side effects and stop the worker (a later run starts a new one)."""
        with self._lock:
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=True)

    def __enter__(self) -> ProductPipeline[Q]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _safe_apply(se: SideEffect[Q], query: Q, result: PipelineResult) -> None:
    """Run one side effect, logging (never raising) its failure."""
    t0 = perf_counter()
    try:
        se.apply(query, result)
    except Exception:
        log.exception("side effect %s failed (pipeline %s)", se.name, result.pipeline)
    else:
        log.debug("side effect %s took %.3f ms", se.name, (perf_counter() - t0) * 1000.0)


def _first_per_query(values: np.ndarray, segments: Segments) -> np.ndarray:
    """Sorted row indices of the first occurrence of each value within each query."""
    if len(segments) == 1:
        _, first = np.unique(values, return_index=True)
    elif values.dtype.kind in "iu":  # one np.unique over (query, value) keys
        lo = int(values.min())
        _, first = np.unique(segments.ids * (int(values.max()) - lo + 1) + (values - lo), return_index=True)
    else:
        first = np.concatenate([np.unique(values[a:b], return_index=True)[1] + a for _, a, b in segments.bounds()])
    first.sort()
    return first

