"""Pipelines as data: lists of components run in a fixed order, each step timed and (opt-in) traced.

Order of a product pipeline: gates → query hydrators → candidate pipelines (each fails open) →
concat → dedup → filters → scoring pipelines → post-filters → selectors (chained) → decorators →
side effects (asynchronous, never fail or delay the response).

Timings are keyed "<kind>:<component name>" at product level and "<pipeline>/<kind>:<name>" inside a
candidate or scoring pipeline (so two pipelines may reuse a component), plus "total". A key that
repeats accumulates. Steps on an empty batch are recorded but the component is not called, so
components never have to handle a column-less batch.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import numpy as np

from foryou.mixer.batch import CandidateBatch
from foryou.mixer.components import (
    CandidateSource,
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
from foryou.mixer.trace import MAX_REMOVED_IDS, Trace, TraceStep

log = logging.getLogger("foryou.mixer")

SOURCE_COLUMN = "source"
SOURCE_DTYPE = object  # object strings concatenate across pipelines without width promotion


@dataclass
class PipelineResult:
    """What a product pipeline returns. `skipped` names the gate that closed the request, if any."""

    batch: CandidateBatch
    timings_ms: dict[str, float]
    errors: list[str]
    trace: Trace | None
    query: Any
    pipeline: str = ""
    skipped: str | None = None
    counts: dict[str, int] = field(default_factory=dict)  # candidates out of each step, by timing key


@dataclass
class RunContext:
    """Per-request bookkeeping shared by nested pipelines (framework-internal)."""

    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    trace: Trace | None = None
    id_column: str | None = None

    def record(
        self,
        comp: Component | str,
        kind: str,
        pipeline: str | None,
        n_in: int,
        n_out: int,
        t0: float,
        removed_ids: list[Any] | None = None,
        reason: str | None = None,
        error: str | None = None,
    ) -> None:
        dt = (perf_counter() - t0) * 1000.0
        name = comp if isinstance(comp, str) else comp.name
        key = f"{kind}:{name}" if pipeline is None else f"{pipeline}/{kind}:{name}"
        timings = self.timings
        timings[key] = timings.get(key, 0.0) + dt
        self.counts[key] = n_out
        if self.trace is not None:
            self.trace.add(TraceStep(kind, name, n_in, n_out, dt, pipeline, removed_ids or [], reason, error))


# -- step helpers (shared by all pipeline kinds) -------------------------------------------------
def _apply_filter(
    f: Filter, query: HasFeatures, batch: CandidateBatch, ctx: RunContext, pl: str | None
) -> CandidateBatch:
    t0 = perf_counter()
    n = len(batch)
    if n == 0:
        ctx.record(f, "filter", pl, 0, 0, t0)
        return batch
    mask = f.keep(query, batch)
    out = batch.filter(mask)
    removed = None
    if ctx.trace is not None and len(out) < n and ctx.id_column is not None and ctx.id_column in batch:
        removed = batch[ctx.id_column][~np.asarray(mask)][:MAX_REMOVED_IDS].tolist()
    ctx.record(f, "filter", pl, n, len(out), t0, removed, reason=f.name if len(out) < n else None)
    return out


def _apply_columns(
    comp: FeatureHydrator | Scorer | Decorator,
    query: HasFeatures,
    batch: CandidateBatch,
    ctx: RunContext,
    pl: str | None,
) -> CandidateBatch:
    t0 = perf_counter()
    n = len(batch)
    if n:
        if isinstance(comp, Scorer):
            cols = comp.score(query, batch)
        elif isinstance(comp, Decorator):
            cols = comp.decorate(query, batch)
        else:
            cols = comp.hydrate(query, batch)
        batch = batch.with_columns(**cols)
    ctx.record(comp, comp.kind, pl, n, n, t0)
    return batch


def _apply_selector(
    s: Selector, query: HasFeatures, batch: CandidateBatch, ctx: RunContext, pl: str | None
) -> CandidateBatch:
    t0 = perf_counter()
    n = len(batch)
    if n:
        batch = batch.take(s.select(query, batch))
    ctx.record(s, "selector", pl, n, len(batch), t0)
    return batch


def _gates_open(gates: Sequence[Gate], query: HasFeatures, ctx: RunContext, pl: str | None) -> Gate | None:
    """Run gates in order; return the first one that says no (None if all pass)."""
    for g in gates:
        t0 = perf_counter()
        ok = bool(g.should_run(query))
        ctx.record(g, "gate", pl, 0, 0, t0, reason=None if ok else "closed")
        if not ok:
            return g
    return None


# -- pipelines -----------------------------------------------------------------------------------
@dataclass(eq=False)
class CandidatePipeline:
    """One source with its own gates, filters, light scorers and selector.

    Every candidate is tagged with the pipeline name in column "source" (object dtype). With
    `fail_open` (the default) any exception inside is recorded and an empty batch is returned, so
    the page is served without this source.
    """

    name: str
    source: CandidateSource
    filters: Sequence[Filter] = ()
    scorers: Sequence[Scorer] = ()
    selector: Selector | None = None
    gates: Sequence[Gate] = ()
    fail_open: bool = True

    def run(self, query: HasFeatures, ctx: RunContext) -> CandidateBatch:
        t_start = perf_counter()
        current: Component | None = None
        batch = CandidateBatch.empty()
        try:
            closed = _gates_open(self.gates, query, ctx, self.name)
            if closed is None:
                current = self.source
                t0 = perf_counter()
                batch = self.source.fetch(query)
                if not isinstance(batch, CandidateBatch):
                    raise TypeError(f"fetch returned {type(batch).__name__}, expected CandidateBatch")
                tag = np.array([self.name], dtype=SOURCE_DTYPE).repeat(len(batch))
                batch = batch.with_columns(**{SOURCE_COLUMN: tag})
                ctx.record(self.source, "source", self.name, 0, len(batch), t0)
                for f in self.filters:
                    current = f
                    batch = _apply_filter(f, query, batch, ctx, self.name)
                for s in self.scorers:
                    current = s
                    batch = _apply_columns(s, query, batch, ctx, self.name)
                if self.selector is not None:
                    current = self.selector
                    batch = _apply_selector(self.selector, query, batch, ctx, self.name)
        except Exception as exc:
            if not self.fail_open:
                raise
            where = f"{current.kind} {current.name}" if current is not None else "gate"
            msg = f"candidate_pipeline:{self.name}: {where} failed: {type(exc).__name__}: {exc}"
            log.warning(msg)
            ctx.errors.append(msg)
            ctx.record(
                current.name if current else "?",
                current.kind if current else "gate",
                self.name,
                0,
                0,
                perf_counter(),
                error=f"{type(exc).__name__}: {exc}",
            )
            batch = CandidateBatch.empty()
        ctx.record(self.name, "candidate_pipeline", None, 0, len(batch), t_start)
        return batch


@dataclass(eq=False)
class ScoringPipeline:
    """Feature hydrators, then scorers, then filters, on the merged candidate batch."""

    name: str
    hydrators: Sequence[FeatureHydrator] = ()
    scorers: Sequence[Scorer] = ()
    filters: Sequence[Filter] = ()

    def run(self, query: HasFeatures, batch: CandidateBatch, ctx: RunContext) -> CandidateBatch:
        t_start = perf_counter()
        n_in = len(batch)
        for h in self.hydrators:
            batch = _apply_columns(h, query, batch, ctx, self.name)
        for s in self.scorers:
            batch = _apply_columns(s, query, batch, ctx, self.name)
        for f in self.filters:
            batch = _apply_filter(f, query, batch, ctx, self.name)
        ctx.record(self.name, "scoring_pipeline", None, n_in, len(batch), t_start)
        return batch


class ProductPipeline:
    """A whole product (e.g. the For You timeline) assembled from components and sub-pipelines.

    `id_column` (default: `dedup_column`) names the column whose values traces list for removed
    candidates. Side effects run on a pipeline-owned single-worker thread pool (created on first use), so they
    never delay or fail `run`; their exceptions are logged on "foryou.mixer". Call `flush` to wait
    for them (tests, shutdown) and `close` to stop the worker.
    """

    def __init__(
        self,
        name: str,
        gates: Sequence[Gate] = (),
        query_hydrators: Sequence[QueryHydrator] = (),
        candidate_pipelines: Sequence[CandidatePipeline] = (),
        dedup_column: str | None = "post_id",
        filters: Sequence[Filter] = (),
        scoring_pipelines: Sequence[ScoringPipeline] = (),
        post_filters: Sequence[Filter] = (),
        selectors: Sequence[Selector] = (),
        decorators: Sequence[Decorator] = (),
        side_effects: Sequence[SideEffect] = (),
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
        self.decorators = tuple(decorators)
        self.side_effects = tuple(side_effects)
        self.id_column = id_column if id_column is not None else dedup_column
        self._executor: cf.ThreadPoolExecutor | None = None
        self._pending: set[cf.Future[None]] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ProductPipeline({self.name!r}, {len(self.candidate_pipelines)} candidate pipelines)"

    # -- request path -----------------------------------------------------------------------------
    def run(self, query: HasFeatures, trace: bool = False) -> PipelineResult:
        """Serve one request. Only candidate pipelines fail open; other components' errors raise."""
        t_start = perf_counter()
        ctx = RunContext(trace=Trace(self.name) if trace else None, id_column=self.id_column)

        closed = _gates_open(self.gates, query, ctx, None)
        if closed is not None:
            ctx.timings["total"] = (perf_counter() - t_start) * 1000.0
            return PipelineResult(
                CandidateBatch.empty(),
                ctx.timings,
                ctx.errors,
                ctx.trace,
                query,
                self.name,
                skipped=f"gate:{closed.name}",
                counts=ctx.counts,
            )

        for h in self.query_hydrators:
            t0 = perf_counter()
            query.features.update(h.hydrate(query))
            ctx.record(h, "query_hydrator", None, 0, 0, t0)

        parts = [cp.run(query, ctx) for cp in self.candidate_pipelines]

        t0 = perf_counter()
        batch = CandidateBatch.concat(parts)
        n_merged = len(batch)
        col = self.dedup_column
        if col is not None and n_merged and col in batch:
            _, first = np.unique(batch[col], return_index=True)
            if len(first) < n_merged:
                first.sort()
                batch = batch.take(first)
            ctx.record(col, "dedup", None, n_merged, len(batch), t0, reason="dedup" if len(batch) < n_merged else None)

        for f in self.filters:
            batch = _apply_filter(f, query, batch, ctx, None)
        for sp in self.scoring_pipelines:
            batch = sp.run(query, batch, ctx)
        for f in self.post_filters:
            batch = _apply_filter(f, query, batch, ctx, None)
        for s in self.selectors:
            batch = _apply_selector(s, query, batch, ctx, None)
        for d in self.decorators:
            batch = _apply_columns(d, query, batch, ctx, None)

        ctx.timings["total"] = (perf_counter() - t_start) * 1000.0
        result = PipelineResult(batch, ctx.timings, ctx.errors, ctx.trace, query, self.name, counts=ctx.counts)
        if self.side_effects:
            self._submit_side_effects(query, result)
        return result

    # -- side effects -----------------------------------------------------------------------------
    def _submit_side_effects(self, query: HasFeatures, result: PipelineResult) -> None:
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

    def __enter__(self) -> ProductPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _safe_apply(se: SideEffect, query: HasFeatures, result: PipelineResult) -> None:
    """Run one side effect, logging (never raising) its failure."""
    t0 = perf_counter()
    try:
        se.apply(query, result)
    except Exception:
        log.exception("side effect %s failed (pipeline %s)", se.name, result.pipeline)
    else:
        log.debug("side effect %s took %.3f ms", se.name, (perf_counter() - t0) * 1000.0)
