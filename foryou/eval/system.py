"""Our system under evaluation: the For You page each evaluated user is served at the split instant,
by an engine built from `history(dataset, as_of)` with the registry's promoted models — and the
funnel behind it, measured by running the engine's own pipeline up to a stage (never a copy of it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from foryou.eval.protocols import EvalSplit
from foryou.mixer import CandidateBatch, Segments
from foryou.timeline import columns as c
from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.page import PageBatch
from foryou.vocab import RANKER_HEADS

Progress = Callable[[float], None]
USERS_PER_CALL = 200  # users per engine call: progress moves, and the funnel's batches stay small


@dataclass
class Pages:
    """Served pages as users × page-size columns (−1 / "" / NaN in empty slots)."""

    post_id: np.ndarray
    score: np.ndarray
    source: np.ndarray  # object: candidate source of each slot
    in_network: np.ndarray
    predictions: dict[str, np.ndarray]  # head → users × n predicted probabilities
    errors: list[str]


def serve_pages(engine: RecommendationEngine, split: EvalSplit, n: int, progress: Progress | None = None) -> Pages:
    """Every evaluated user's page, served in batches (`recommend_many`)."""
    parts = []
    users = split.users
    for lo in range(0, len(users), USERS_PER_CALL):
        parts.append(engine.recommend_many(users[lo:lo + USERS_PER_CALL], n=n, now=int(split.as_of)))
        if progress is not None:
            progress(min(lo + USERS_PER_CALL, len(users)) / max(len(users), 1))
    if progress is not None:
        progress(1.0)
    pages = PageBatch.concat(parts, n)
    return Pages(pages.post_id, pages.score.astype(np.float64), pages.source, pages.in_network,
                 {h: pages.predictions[h].astype(np.float64) for h in RANKER_HEADS},
                 sorted({e for errs in pages.errors for e in errs}))


@dataclass
class Retrieved:
    """What retrieval produced per user, as users × width post ids (−1 = empty): each candidate source
    after its own light-ranker cut, their deduplicated union, and that union after the pre-ranking filters."""

    sources: dict[str, np.ndarray]
    merged: np.ndarray
    filtered: np.ndarray


def retrieve(engine: RecommendationEngine, split: EvalSplit, n: int, progress: Progress | None = None) -> Retrieved:
    """The engine's pipeline up to its pre-ranking filters, per stage: each source, the merged set, the
    filtered set (the heavy ranker's input)."""
    stages: dict[str, list[np.ndarray]] = {}
    names = [f"candidate_pipeline:{cp.name}" for cp in engine.pipeline.candidate_pipelines]

    def observe(stage: str, batch: CandidateBatch, segments: Segments) -> None:
        if stage in names or stage in ("dedup", "filters"):
            stages.setdefault(stage, []).append(_grid(batch, segments))

    users = split.users
    for lo in range(0, len(users), USERS_PER_CALL):
        engine.funnel(users[lo:lo + USERS_PER_CALL], until="filters", observe=observe, n=n, now=int(split.as_of))
        if progress is not None:
            progress(min(lo + USERS_PER_CALL, len(users)) / max(len(users), 1))
    if progress is not None:
        progress(1.0)
    joined = {stage: _stack(grids) for stage, grids in stages.items()}
    empty = np.full((len(users), 0), -1, np.int64)
    return Retrieved({name.split(":", 1)[1]: joined.get(name, empty) for name in names},
                     joined.get("dedup", empty), joined.get("filters", empty))


def _grid(batch: CandidateBatch, segments: Segments) -> np.ndarray:
    """Each query's post ids as one row, −1-padded to the longest."""
    out = np.full((len(segments), int(segments.lengths.max(initial=0))), -1, np.int64)
    if len(batch):
        slot = np.arange(len(batch)) - np.repeat(segments.offsets[:-1], segments.lengths)
        out[segments.ids, slot] = batch[c.POST_ID]
    return out


def _stack(grids: list[np.ndarray]) -> np.ndarray:
    width = max(g.shape[1] for g in grids)
    return np.concatenate([np.pad(g, ((0, 0), (0, width - g.shape[1])), constant_values=-1) for g in grids])


def candidates(engine: RecommendationEngine, users: np.ndarray, now: int,
               n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(post ids, predicted utility Σ wᵢ·p̂ᵢ) of each user's candidates before selection, in one pass of the
    funnel: every candidate that survived retrieval, the light rankers' cuts, filters, scoring and post
    filters — what a page is chosen from."""
    out = engine.funnel(users, until="post_filters", n=n, now=int(now))
    b, seg = out.batch, out.segments
    if not len(b):
        return [(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in range(len(users))]
    ids, utility = np.asarray(b[c.POST_ID], np.int64), np.asarray(b[c.UTILITY], np.float32)
    return [(ids[lo:hi], utility[lo:hi]) for lo, hi in zip(seg.offsets[:-1].tolist(), seg.offsets[1:].tolist(),
                                                          strict=True)]
