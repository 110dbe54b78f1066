"""Our system under evaluation: the For You page each evaluated user is served at the split instant,
by an engine built from `history(dataset, as_of)` with the registry's promoted models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from foryou.eval.protocols import EvalSplit
from foryou.mixer import CandidateBatch, ProductPipeline, RunContext
from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.query import TimelineQuery
from foryou.vocab import RANKER_HEADS


@dataclass
class Pages:
    """Served pages as users × page-size columns (−1 / "" / NaN in empty slots)."""

    post_id: np.ndarray
    score: np.ndarray
    source: np.ndarray  # object: candidate source of each slot
    in_network: np.ndarray
    predictions: dict[str, np.ndarray]  # head → users × n predicted probabilities
    errors: list[str]


def serve_pages(engine: RecommendationEngine, split: EvalSplit, n: int,
                progress: Callable[[float], None] | None = None) -> Pages:
    u = len(split.users)
    post = np.full((u, n), -1, dtype=np.int64)
    score = np.full((u, n), np.nan)
    source = np.full((u, n), "", dtype=object)
    in_net = np.zeros((u, n), dtype=bool)
    preds = {h: np.full((u, n), np.nan) for h in RANKER_HEADS}
    errors: set[str] = set()
    for i, user in enumerate(split.users.tolist()):
        page = engine.recommend(user, n=n, now=split.as_of)
        errors.update(page.errors)
        for j, item in enumerate(page.items[:n]):
            post[i, j], score[i, j], source[i, j], in_net[i, j] = item.post_id, item.score, item.source, item.in_network
            for h in RANKER_HEADS:
                preds[h][i, j] = item.predictions[h]
        if progress is not None and i % 20 == 0:
            progress((i + 1) / u)
    if progress is not None:
        progress(1.0)
    return Pages(post, score, source, in_net, preds, sorted(errors))


@dataclass
class Retrieved:
    """What retrieval produced per user, as users × width post ids (−1 = empty): each candidate source
    after its own light-ranker cut, their deduplicated union, and that union after the pre-ranking filters."""

    sources: dict[str, np.ndarray]
    merged: np.ndarray
    filtered: np.ndarray


def retrieve(engine: RecommendationEngine, split: EvalSplit, n: int,
             progress: Callable[[float], None] | None = None) -> Retrieved:
    """Run the engine's query hydrators, candidate pipelines, dedup and filters (no ranking) per user."""
    p = engine.pipeline
    names = [cp.name for cp in p.candidate_pipelines]
    per: dict[str, list[np.ndarray]] = {name: [] for name in names}
    merged: list[np.ndarray] = []
    filtered: list[np.ndarray] = []
    for i, user in enumerate(split.users.tolist()):
        row = engine.state.index.user_row(int(user))
        query = TimelineQuery(user_id=int(user), user_row=row, now=int(split.as_of), n=n)
        for h in p.query_hydrators:
            query.features.update(h.hydrate(query))
        ctx = RunContext()
        parts = [cp.run(query, ctx) for cp in p.candidate_pipelines]
        for name, b in zip(names, parts, strict=True):
            per[name].append(_ids(b))
        batch = CandidateBatch.concat(parts)
        if len(batch):
            _, first = np.unique(batch["post_id"], return_index=True)
            batch = batch.take(np.sort(first))
        merged.append(_ids(batch))
        for f in p.filters:
            if len(batch):
                batch = batch.filter(f.keep(query, batch))
        filtered.append(_ids(batch))
        if progress is not None and i % 20 == 0:
            progress((i + 1) / len(split.users))
    if progress is not None:
        progress(1.0)
    return Retrieved({name: _pad(v) for name, v in per.items()}, _pad(merged), _pad(filtered))


def _ids(batch: CandidateBatch) -> np.ndarray:
    return np.asarray(batch["post_id"], dtype=np.int64) if len(batch) else np.empty(0, np.int64)


def _pad(lists: list[np.ndarray]) -> np.ndarray:
    out = np.full((len(lists), max((len(v) for v in lists), default=0)), -1, dtype=np.int64)
    for i, v in enumerate(lists):
        out[i, :len(v)] = v
    return out


def candidate_pipeline(engine: RecommendationEngine) -> ProductPipeline:
    """The engine's own pipeline up to (not including) selection: every candidate that survived
    retrieval, the light rankers' cuts, filters, scoring and post filters — what a page is chosen from."""
    p = engine.pipeline
    return ProductPipeline("for_you_candidates", gates=p.gates, query_hydrators=p.query_hydrators,
                           candidate_pipelines=p.candidate_pipelines, dedup_column=p.dedup_column,
                           filters=p.filters, scoring_pipelines=p.scoring_pipelines, post_filters=p.post_filters)


def candidates_of(engine: RecommendationEngine, pipeline: ProductPipeline, user_id: int, now: int,
                  n: int) -> tuple[np.ndarray, np.ndarray]:
    """(post ids, predicted utility Σ wᵢ·p̂ᵢ) of the user's candidates before selection (same query as
    `engine.recommend`)."""
    row = engine.state.index.user_row(int(user_id))
    query = TimelineQuery(user_id=int(user_id), user_row=row, now=int(now), n=n)
    batch = pipeline.run(query).batch
    if not len(batch):
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return np.asarray(batch["post_id"], dtype=np.int64), np.asarray(batch["utility"], dtype=np.float32)
