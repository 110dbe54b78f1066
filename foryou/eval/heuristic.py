"""The heuristic learned on the validation window, as `foryou train` learns a model (data without impressions).

Where no impression log exists, the untrained heavy ranker's interest logit (`positives_only`) sums what the
sources carry — recent popularity, co-engagement with the viewer's history, topic affinity, social proof,
SimClusters, RealGraph — and the trending count window decides what "recent" means. Which mix wins depends
on the data: what users engage with next is mostly new and popular on MovieLens, mostly what their history
predicts on Last.fm. So both are learned here, by the metric the promotion gate uses (validation page NDCG@10
through the real funnel, foryou.eval.promotion): the trending window over a small grid (and whether it counts
positives or every engagement — a MovieLens rating of 3 is engaged but not positive), then the weights by
coordinate ascent (each weight × 0, ¼, 4 or 16 in turn — a zero one 1/64, ¼, 1 or 4; a move is kept when it
beats the best so far (`wins`); passes repeat until none moves). Nothing is learned where fewer than
MIN_USERS_WITH_HITS validation users find anything on the best pages: with one lucky hit in 500 users (the
minirecsys data) any change "wins". A term that changes no page
(×0 scores the same: no follow graph, say) is left alone. The result is registered as a version of
LEARNED_HEURISTIC with every point measured, and promoted when it differs from the derived windows and
default weights — served by every engine of the dataset unless the config sets the field (`--set` wins).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from foryou.config import ForYouConfig
from foryou.data.dataset import Dataset
from foryou.data.state import models_dir, state_dir
from foryou.eval.promotion import (
    MIN_USERS_WITH_HITS,
    Progress,
    ValidationSplit,
    Verdict,
    page_ndcgs,
    served_at_validation,
    settle,
    validation_split,
)
from foryou.registry import ModelRegistry, RegistryError
from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.windows import LEARNED_HEURISTIC, WEIGHTS, resolve_for
from foryou.training.heavy_ranker import has_impressions
from foryou.training.pipeline import dataset_fingerprint
from foryou.vocab import HOUR

WINDOW_GRID = (24, 168, 720, 2160, 8760)  # hours: a day, a week, a month, a quarter, a year
STEPS = (0.0, 0.25, 4.0, 16.0)  # × the current weight
FROM_ZERO = (1 / 64, 0.25, 1.0, 4.0)  # a zero weight's trials: the smallest acts as a tie-break
TOLERANCE = 1e-3  # relative NDCG gain a move needs (not float noise)
MAX_PASSES = 3


def learn_if_unlearned(path: Path, config: ForYouConfig | None = None, state: Path | None = None,
                       progress: Progress | None = None) -> Verdict | None:
    """`tune_heuristic` unless the state directory's registry already holds a learned heuristic (promoted or
    not): `foryou eval` tunes its baselines on validation, and learns ours there too the first time, so a
    dataset evaluated without `foryou train` is compared on equal terms."""
    if LEARNED_HEURISTIC in ModelRegistry(models_dir(state_dir(path, state))).names():
        return None
    gating = (config or ForYouConfig()).training.promotion
    return tune_heuristic(path, config, state, min_gain=gating.min_gain, max_users=gating.max_users,
                          seed=gating.seed, progress=progress)


def _override(weights: dict[str, float], trending: tuple[float, str]) -> dict[str, Any]:
    window, counted = trending
    return {"timeline": {"sources": {"trending_count_hours": window, "trending_counts": counted},
                         "heuristics": {"heavy_ranker": {"positives_only": weights}}}}


def tune_heuristic(path: Path, config: ForYouConfig | None = None, state: Path | None = None,
                   force: bool | None = None, min_gain: float = 0.0, max_users: int = 500, seed: int = 0,
                   progress: Progress | None = None) -> Verdict | None:
    """Learn the trending window (and what it counts) and the positives-only weights on the validation window
    (module docstring); register and (unless `force=False`) promote the result. None where nothing is
    learned: impressions, every field set by the config, or no validation engagement."""
    path, config = Path(path), config or ForYouConfig()
    src = config.timeline.sources
    learn_window = src.windows != "fixed" and "trending_count_hours" not in src.model_fields_set
    learn_counted = "trending_counts" not in src.model_fields_set
    fixed = config.timeline.heuristics.heavy_ranker.positives_only.model_fields_set
    learn_weights = [k for k in WEIGHTS if k not in fixed]
    dataset = Dataset.load(path)
    if has_impressions(dataset) or not (learn_window or learn_counted or learn_weights):
        return None
    split = validation_split(dataset, max_users, seed)
    if len(split.users) == 0:
        return None
    resolved = resolve_for(path, config, state, learned=False)
    start_point = (float(resolved.timeline.sources.trending_count_hours), resolved.timeline.sources.trending_counts)
    defaults = resolved.timeline.heuristics.heavy_ranker.positives_only.model_dump()
    span = (split.as_of - int(dataset.manifest.time_range[0])) / HOUR
    windows = sorted({start_point[0], *(float(h) for h in WINDOW_GRID if h <= span)}) if learn_window \
        else [start_point[0]]
    progress = progress or (lambda stage, frac: None)
    engine = RecommendationEngine.open(path, resolved, as_of=split.as_of, state=state)
    idx = engine.state.index
    counts = ("positive", "engaged") if learn_counted and len(idx.engaged_time) > len(idx.positive_time) \
        else (start_point[1],)
    grid = [(h, counted) for counted in counts for h in windows]
    scores: dict[str, np.ndarray] = {}

    def measure(weights: dict[str, float], trending: tuple[float, str]) -> np.ndarray:
        key = f"{trending[0]:g} h" + (", every engagement" if trending[1] == "engaged" else "") + "".join(
            f", {k} {v:g}" for k, v in weights.items() if v != defaults[k])
        if key not in scores:
            scores[key] = page_ndcgs(engine, split, overrides=_override(weights, trending))
        return scores[key]

    try:
        served_at_validation(engine, models_dir(engine.state_dir or state_dir(path, state)))
        for i, point in enumerate(grid):
            progress("validation heuristic", 0.3 * i / len(grid))
            measure(defaults, point)
        start = measure(defaults, start_point)
        trending = max(grid, key=lambda point: (measure(defaults, point).mean(), point == start_point))
        if not wins(measure(defaults, trending), start):
            trending = start_point
        found = int((measure(defaults, trending) > 0).sum())
        if found >= MIN_USERS_WITH_HITS:  # else the weights would chase a few lucky hits
            weights = _ascend(dict(defaults), learn_weights, lambda w: measure(w, trending), progress)
        else:
            weights = dict(defaults)
        best = measure(weights, trending)
    finally:
        engine.close()
        progress("validation heuristic", 1.0)
    found = int((best > 0).sum())
    note = f"too little signal: {found} validation users find anything (< {MIN_USERS_WITH_HITS})" \
        if found < MIN_USERS_WITH_HITS else ""
    if note or best.mean() <= start.mean() + min_gain:  # the learned mix must beat the derived one, as models do
        trending, weights, best = start_point, dict(defaults), start
    means = {key: float(v.mean()) for key, v in scores.items()}
    return _register(path, state, (start_point, defaults, float(start.mean())),
                     (trending, weights, float(best.mean())), means, split, force, note)


def wins(new: np.ndarray, old: np.ndarray) -> bool:
    """Whether per-user NDCGs `new` beat `old` on average by more than TOLERANCE (relative). The best
    validation mean is the best guess even where the gain is within its standard error (on MovieLens every
    move is): a significance bar would only favour the derived defaults, which have no better claim."""
    return bool(new.mean() > old.mean() * (1 + TOLERANCE))


def _ascend(weights: dict[str, float], names: list[str], score: Any, progress: Progress) -> dict[str, float]:
    """Coordinate ascent over `names` (module docstring): each weight's steps in turn, a move kept when it
    `wins` over the best so far; up to MAX_PASSES passes, stopping when none moves."""
    best, inert = score(weights), set[str]()
    for sweep in range(MAX_PASSES):
        moved = False
        for i, name in enumerate(names):
            progress("validation heuristic", 0.3 + 0.7 * (sweep * len(names) + i) / (MAX_PASSES * len(names)))
            if name in inert:
                continue
            v = weights[name]
            steps = [v * s for s in STEPS] if v else list(FROM_ZERO)
            for value in steps:
                trial = {**weights, name: float(value)}
                got = score(trial)
                if value == 0 and np.array_equal(got, best):  # the term changes no page: not worth its evaluations
                    inert.add(name)
                    break
                if wins(got, best):
                    weights, best, moved = trial, got, True
        if not moved:
            break
    return weights


def _register(path: Path, state: Path | None, start: tuple[tuple[float, str], dict[str, float], float],
              chosen: tuple[tuple[float, str], dict[str, float], float], scores: dict[str, float],
              split: ValidationSplit, force: bool | None, note: str = "") -> Verdict:
    """Register the learned heuristic as the next LEARNED_HEURISTIC version with its verdict; promote it when
    it differs from the derived one (or replaces a promoted one), unless `force` says otherwise."""
    import torch

    registry = ModelRegistry(models_dir(state_dir(path, state)))
    try:
        replaces = registry.promoted(LEARNED_HEURISTIC) is not None
    except RegistryError:
        replaces = True  # a damaged promotion is repaired by promoting
    (derived, defaults, before), ((window, counted), weights, after) = start, chosen
    mv = registry.register(LEARNED_HEURISTIC, {"trending_count_hours": torch.tensor([window])},
                           config={"trending_count_hours": window, "trending_counts": counted,
                                   "positives_only": weights},
                           metrics={"validation_ndcg": {k: round(v, 6) for k, v in scores.items()}},
                           dataset_fingerprint=dataset_fingerprint(path), schema=f"{LEARNED_HEURISTIC}/2")
    changed = (window, counted) != derived or weights != defaults
    promote = (changed or replaces) if force is None else force
    moved = [f"{k} {defaults[k]:g} → {v:g}" for k, v in weights.items() if v != defaults[k]]
    reason = (f"trending_count_hours {window:g} h" + (", counting every engagement" if counted == "engaged" else "")
              + (f"; weights {', '.join(moved)}" if moved else "")
              + f"; {len(scores)} point{'s' if len(scores) > 1 else ''} measured"
              + ("" if changed else f"; {note or 'nothing beats the derived heuristic'}"))
    verdict = Verdict(LEARNED_HEURISTIC, mv.version, round(after, 6), round(before, 6),
                      f"derived {derived[0]:g} h, default weights", len(split.users), split.as_of, promote, reason)
    return settle(registry, verdict)
