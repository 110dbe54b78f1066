"""Baselines tuned on a validation split, then refitted for the test.

For each baseline with a grid: fit on the validation split's history (data before the validation start,
`protocols.validation_split`), score NDCG@10 on up to `VALID_USERS` validation users, keep the best grid
point (the first of equals, in grid order), refit with it on the test split's history and list. Every
grid point's validation score goes into the result (`baselines.<name>.tuning`).

The grids (small on purpose: `foryou eval` with every baseline stays within minutes on 2 cores):
- recent_popularity: window_days ∈ {1, 7, 30, 90, 365, all}
- als: factors ∈ {32, 128} × regularization ∈ {0.01, 1} × alpha ∈ {1, 10, 40}, 15 iterations
- bpr: factors ∈ {64, 128} × regularization ∈ {0.001, 0.01}, 30 epochs, learning rate 0.05 (MovieLens: 30 → 100
  epochs moved test NDCG@10 by < 0.01 at 4× the time)
- item_knn: neighbours ∈ {10, 50, 100, 200, 500}
- ease: λ ∈ {50, 200, 500, 1000, 3000} (top 8,000 items)
random, all-time popularity and reverse-chron have no hyperparameters.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from foryou.eval import metrics as M
from foryou.eval.baselines import Catalog, Lists, build_catalog, make_baseline
from foryou.eval.protocols import EvalSplit
from foryou.logs import Progress, Timer

log = logging.getLogger("foryou.eval")
VALID_USERS = 1000  # validation users sampled (seeded) per tuning run
TUNE_METRIC = "ndcg@10"


def _grid(**axes: list[Any]) -> list[dict[str, Any]]:
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


GRIDS: dict[str, list[dict[str, Any]]] = {
    "recent_popularity": _grid(window_days=[1, 7, 30, 90, 365, None]),
    "als": _grid(factors=[32, 128], regularization=[0.01, 1.0], alpha=[1.0, 10.0, 40.0], iterations=[15]),
    "bpr": _grid(factors=[64, 128], regularization=[0.001, 0.01], iterations=[30], learning_rate=[0.05]),
    "item_knn": _grid(neighbours=[10, 50, 100, 200, 500]),
    "ease": _grid(lam=[50.0, 200.0, 500.0, 1000.0, 3000.0]),
}


def validation_ndcg(name: str, params: dict[str, Any], valid: EvalSplit, catalog: Catalog, seed: int) -> float:
    """Mean NDCG@10 over the validation users of one baseline fitted on the validation history."""
    b = make_baseline(name, seed, **params)
    b.fit(valid, catalog)
    hits = M.hits_matrix(b.recommend(10).post_id, valid.truth_user, valid.truth_post)
    return float(M.ndcg_at_k(hits, valid.n_relevant, 10).mean()) if len(valid.users) else 0.0


def tune(name: str, valid: EvalSplit | None, catalog: Catalog | None, seed: int,
         grid: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The chosen hyperparameters of one baseline and every grid point's validation score."""
    grid = GRIDS.get(name, [{}]) if grid is None else grid
    if len(grid) < 2 or valid is None or catalog is None or len(valid.users) == 0:
        why = "no grid" if len(grid) < 2 else "not tuned (no validation users, or tuning off): the defaults"
        return {"chosen": {}, "validation": [], "note": why}
    points = []
    for params in grid:
        with Timer() as t:
            score = validation_ndcg(name, params, valid, catalog, seed)
        points.append({"params": params, TUNE_METRIC: round(score, 6), "seconds": round(t.seconds, 2)})
    best = max(range(len(points)), key=lambda i: (points[i][TUNE_METRIC], -i))
    log.info("tuned", extra={"baseline": name, "chosen": grid[best], "validation": points[best][TUNE_METRIC]})
    return {"chosen": grid[best], "validation": points, "metric": TUNE_METRIC,
            "validation_score": points[best][TUNE_METRIC]}


def tuned_lists(split: EvalSplit, valid: EvalSplit | None, catalog: Catalog, max_age_hours: float | None,
                baselines: tuple[str, ...], list_n: int, seed: int, progress: Progress,
                timings: dict[str, float], workers: int = 1) -> tuple[dict[str, Lists], dict[str, Any]]:
    """Each baseline tuned on `valid`, refitted on the split's history: its list per evaluated user and its
    tuning record. `workers` > 1: the baselines as Ray tasks in parallel (each seeded alone: the same lists)."""
    valid_catalog = build_catalog(valid, max_age_hours) if valid is not None and len(valid.users) else None
    if workers > 1 and len(baselines) > 1:
        done = _on_ray(baselines, (split, valid, catalog, valid_catalog, list_n, seed), progress, workers)
    else:
        done = {name: _one(name, split, valid, catalog, valid_catalog, list_n, seed,
                           _stage(progress, f"baseline {name}")) for name in baselines}
    lists, info = {}, {}
    for name in baselines:
        lists[name], tuning, timings[f"baseline {name}"] = done[name]
        info[name] = {"tuning": tuning}
    return lists, info


def _one(name: str, split: EvalSplit, valid: EvalSplit | None, catalog: Catalog, valid_catalog: Catalog | None,
         list_n: int, seed: int, stage: Callable[[float], None] | None = None) -> tuple[Lists, dict[str, Any], float]:
    """One baseline: tuned, refitted, listed; (lists, tuning record, seconds)."""
    stage = stage or (lambda frac: None)
    with Timer() as t:
        stage(0.0)
        tuning = tune(name, valid, valid_catalog, seed)
        b = make_baseline(name, seed, **tuning["chosen"])
        b.fit(split, catalog)
        lists = b.recommend(list_n, stage)
        stage(1.0)
    return lists, tuning, t.seconds


def _on_ray(baselines: tuple[str, ...], args: tuple[Any, ...], progress: Progress,
            workers: int) -> dict[str, tuple[Lists, dict[str, Any], float]]:
    """The baselines as Ray tasks (a local Ray cluster of `workers` CPUs unless one is running); the split and
    catalogs go to the object store once."""
    import os

    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"FORYOU_LOG": os.environ.get("FORYOU_LOG", "")}})
    try:
        refs = [ray.put(a) for a in args]
        task = ray.remote(num_cpus=1)(_one)
        pending = {task.remote(name, *refs): name for name in baselines}
        done: dict[str, tuple[Lists, dict[str, Any], float]] = {}
        progress("baselines (Ray tasks)", 0.0)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            done[pending.pop(ready[0])] = ray.get(ready[0])
            progress("baselines (Ray tasks)", len(done) / len(baselines))
        return done
    finally:
        if started:
            ray.shutdown()


def _stage(progress: Progress, stage: str) -> Callable[[float], None]:
    return lambda frac: progress(stage, frac)


def validation_summary(valid: EvalSplit | None) -> dict[str, Any]:
    if valid is None:
        return {}
    return {"protocol": valid.protocol, "as_of": valid.as_of, "users": len(valid.users),
            "relevant_pairs": len(valid.truth_post), "notes": valid.notes,
            "prior_positives_median": float(np.median(valid.prior_positives())) if len(valid.users) else 0.0}
