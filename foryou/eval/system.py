"""Our system under evaluation: the For You page each evaluated user is served at the split instant,
by an engine built from `history(dataset, as_of)` with the registry's promoted models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from foryou.eval.protocols import EvalSplit
from foryou.mixer import ProductPipeline
from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.query import TimelineQuery
from foryou.timeline.scorers import HEADS


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
    preds = {h: np.full((u, n), np.nan) for h in HEADS}
    errors: set[str] = set()
    for i, user in enumerate(split.users.tolist()):
        page = engine.recommend(user, n=n, now=split.as_of)
        errors.update(page.errors)
        for j, item in enumerate(page.items[:n]):
            post[i, j], score[i, j], source[i, j], in_net[i, j] = item.post_id, item.score, item.source, item.in_network
            for h in HEADS:
                preds[h][i, j] = item.predictions[h]
        if progress is not None and i % 20 == 0:
            progress((i + 1) / u)
    if progress is not None:
        progress(1.0)
    return Pages(post, score, source, in_net, preds, sorted(errors))


def candidate_pipeline(engine: RecommendationEngine) -> ProductPipeline:
    """The engine's own pipeline up to (not including) selection: every candidate that survived
    retrieval, the light rankers' cuts, filters, scoring and post filters — what a page is chosen from."""
    p = engine.pipeline
    return ProductPipeline("for_you_candidates", gates=p.gates, query_hydrators=p.query_hydrators,
                           candidate_pipelines=p.candidate_pipelines, dedup_column=p.dedup_column,
                           filters=p.filters, scoring_pipelines=p.scoring_pipelines, post_filters=p.post_filters)


def candidates_of(engine: RecommendationEngine, pipeline: ProductPipeline, user_id: int, now: int,
                  n: int) -> np.ndarray:
    """Post ids of the user's candidates before selection (same query as `engine.recommend`)."""
    row = engine.state.index.user_row(int(user_id))
    query = TimelineQuery(user_id=int(user_id), user_row=row, now=int(now), n=n)
    batch = pipeline.run(query).batch
    return np.asarray(batch["post_id"], dtype=np.int64) if len(batch) else np.empty(0, np.int64)
