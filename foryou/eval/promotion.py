"""The promotion gate of `foryou train`: a trained model is served only if it wins on the validation window.

Each candidate (the versions `train_all` just registered, unpromoted) is compared with what is served
now — the promoted models, or the heuristics where none is — by what users see: page NDCG@10 through the
real funnel. The engine is opened at the validation window's start (`manifest.split.train_end`: train
side only, the models' own early-stopping window after it); ground truth = each sampled user's positive
engagements in the validation window on posts that existed at its start (a page served then cannot hold
a later post). Models go in dependency order (RealGraph, light rankers, heavy ranker, Phoenix, two-tower), each
against the set that would serve after the decisions before it: a win is promoted and becomes the
reference for the next. The comparison (both NDCGs, users, as_of, the verdict) is recorded in the
version's registry entry (`metrics.promotion`), whatever the verdict.

The two-tower serves vectors computed from the whole history, which would see the validation window;
the gate uses the vectors training stores as of the validation window's start instead (a version without
them is compared on its serving vectors, and the verdict says "optimistic").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foryou.config import ForYouConfig
from foryou.data.dataset import Dataset
from foryou.data.state import models_dir, state_dir
from foryou.eval.metrics import hits_matrix, ndcg_at_k
from foryou.graph.realgraph import RealGraphCoefficients
from foryou.registry import ModelRegistry
from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.loading import TrainedHeavyRanker, load_models
from foryou.vocab import POSITIVE

log = logging.getLogger("foryou.eval")
# Phoenix after MaskNet: it takes the heavy-ranker slot (timeline.ranking.model = auto) only by beating what
# serves then, MaskNet included
GATED = ("realgraph", "light_ranker_in_network", "light_ranker_out_of_network", "heavy_ranker", "phoenix",
         "two_tower", "phoenix_retrieval")
MAX_USERS = 500  # validation users sampled (seeded): the gate's cost stays a few engine passes
K = 10
USERS_PER_CALL = 200
# fewer validation users with any hit on a candidate's pages: a "win" is a few lucky hits (one in 500 users on
# the minirecsys data), so nothing is promoted or learned from it
MIN_USERS_WITH_HITS = 20
Progress = Callable[[str, float], None]


@dataclass
class ValidationSplit:
    """Who is served at the validation window's start, and what they engaged with in it."""

    as_of: int
    end: int
    users: np.ndarray  # user ids, sorted
    truth_user: np.ndarray  # index into users, one per relevant (user, post) pair
    truth_post: np.ndarray

    @property
    def n_relevant(self) -> np.ndarray:
        return np.bincount(self.truth_user, minlength=len(self.users))


@dataclass
class Verdict:
    """One candidate against what was served: its record in the registry and its CLI line."""

    model: str
    version: int
    candidate_ndcg: float | None
    served_ndcg: float | None
    served: str  # what served before: "heuristic", "v2 (promoted)", or a candidate promoted just before
    users: int
    as_of: int
    promoted: bool
    reason: str

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "metric": f"validation page NDCG@{K}", "window": "validation"}

    def line(self) -> str:
        if self.candidate_ndcg is None or self.served_ndcg is None:
            return f"{self.model} v{self.version}: {self.reason} → {'promoted' if self.promoted else 'not promoted'}"
        gain = self.candidate_ndcg - self.served_ndcg
        return (f"{self.model} v{self.version}: validation page NDCG@{K} {self.candidate_ndcg:.4f} vs served "
                f"{self.served_ndcg:.4f} ({self.served}; {gain:+.4f}, {self.users:,} users) → "
                f"{'promoted' if self.promoted else 'not promoted'}{self.reason and f' ({self.reason})'}")


def validation_split(dataset: Dataset, max_users: int = MAX_USERS, seed: int = 0) -> ValidationSplit:
    """Positive engagements in [train_end, valid_end) on posts created before train_end, for a seeded
    sample of at most `max_users` of the users who have one."""
    s = dataset.manifest.split
    as_of, end = int(s.train_end), int(s.valid_end)
    e = dataset.engagements
    t = e["created_at"]
    e = e.filter(pc.and_(pc.and_(pc.greater_equal(t, as_of), pc.less(t, end)),
                         pc.is_in(e["kind"], pa.array(list(POSITIVE)))))
    posts = dataset.posts
    existed = posts.filter(pc.less(posts["created_at"], as_of))["post_id"]
    e = e.filter(pc.is_in(e["post_id"], existed))
    user, post = e["user_id"].to_numpy(), e["post_id"].to_numpy()
    users = np.unique(user)
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    keep = np.isin(user, users)
    pairs = np.unique(np.stack([user[keep], post[keep]], 1), axis=0) if keep.any() else np.empty((0, 2), np.int64)
    return ValidationSplit(as_of, end, users.astype(np.int64), np.searchsorted(users, pairs[:, 0]),
                           pairs[:, 1].astype(np.int64))


def page_ndcg(engine: RecommendationEngine, split: ValidationSplit, k: int = K,
              overrides: dict[str, Any] | None = None) -> float:
    """Mean NDCG@k of the pages the engine serves the split's users at its start (`overrides`: a config
    override tree, served by its own pipeline)."""
    per_user = page_ndcgs(engine, split, k, overrides)
    return float(per_user.mean()) if len(per_user) else 0.0


def page_ndcgs(engine: RecommendationEngine, split: ValidationSplit, k: int = K,
               overrides: dict[str, Any] | None = None) -> np.ndarray:
    """NDCG@k per user of the split (in its order): what `page_ndcg` averages, for paired comparisons."""
    n = max(int(engine.config.timeline.mixing.page_size), k)
    pages = [engine.recommend_many(split.users[lo:lo + USERS_PER_CALL], n=n, now=split.as_of,
                                   overrides=overrides).post_id
             for lo in range(0, len(split.users), USERS_PER_CALL)]
    recs = np.concatenate([p[:, :k] for p in pages]) if pages else np.empty((0, k), np.int64)
    hits = hits_matrix(recs, split.truth_user, split.truth_post)
    return np.asarray(ndcg_at_k(hits, split.n_relevant, k), np.float64) if len(recs) else np.zeros(0)


def gate(path: Path, candidates: dict[str, int], config: ForYouConfig | None = None, state: Path | None = None,
         force: bool | None = None, min_gain: float = 0.0, max_users: int = MAX_USERS, seed: int = 0,
         progress: Progress | None = None) -> list[Verdict]:
    """Compare each candidate (registry name → version just registered) with what is served now on the
    validation window; promote it when its NDCG@10 exceeds the served one by more than `min_gain`
    (`force`: True always promotes, False never), record the comparison in its registry entry, and
    return the verdicts in dependency order."""
    progress = progress or (lambda stage, frac: None)
    path = Path(path)
    registry = ModelRegistry(models_dir(state_dir(path, state)))
    order = [name for name in GATED if name in candidates]
    if not order:
        return []
    progress("validation pages", 0.0)
    split = validation_split(Dataset.load(path), max_users, seed)
    if len(split.users) == 0:
        return [settle(registry, Verdict(name, candidates[name], None, None, "", 0, split.as_of, bool(force),
                                          "no validation-window engagement on a post that existed at its start"
                                          + (", forced by --promote" if force else "")))
                for name in order]
    engine = RecommendationEngine.open(path, config, as_of=split.as_of, state=state)
    try:
        root = models_dir(engine.state_dir or state_dir(path, state))
        served_at_validation(engine, root)
        loaded, status = load_models(root, engine.state.store, versions={name: candidates[name] for name in order},
                                     vectors="validation")
        served, won, verdicts = page_ndcg(engine, split), list[str](), list[Verdict]()
        for i, name in enumerate(order):
            before = _current(engine, name)
            label = _label(before[1])
            if name == "phoenix" and before[0] is None:  # it competes for the heavy-ranker slot
                label = "MaskNet " + _label(engine.model_status.get("heavy_ranker", "")) \
                    if "heavy_ranker" in engine.state.models else "heuristic"
            label += f", with {', '.join(won)}" if won else ""
            verdict = Verdict(name, candidates[name], None, round(served, 6), label, len(split.users), split.as_of,
                              False, f"cannot be served: {status.get(name)}")
            if name in loaded:
                _swap(engine, name, loaded[name], status[name])
                per_user = page_ndcgs(engine, split)
                ndcg = float(per_user.mean())
                verdict = _judge(verdict, ndcg, served, force, min_gain, int((per_user > 0).sum()))
                notes = [verdict.reason]
                if "serving vectors" in status[name]:  # an older two-tower without validation vectors
                    notes.append("optimistic: vectors see validation")
                if getattr(loaded[name], "batches", None) == 0:  # a light ranker whose cut never binds
                    notes.append(f"it never ran: no source returned more than light_ranker_keep = "
                                 f"{engine.config.timeline.ranking.light_ranker_keep} candidates")
                verdict.reason = "; ".join(filter(None, notes))
                if verdict.promoted:
                    served = ndcg
                    won.append(f"{name} v{candidates[name]}")
                else:
                    _swap(engine, name, *before)
            verdicts.append(settle(registry, verdict))
            progress("validation pages", (i + 1) / len(order))
        return verdicts
    finally:
        engine.close()
        progress("validation pages", 1.0)


def _judge(verdict: Verdict, ndcg: float, served: float, force: bool | None, min_gain: float, found: int) -> Verdict:
    """The verdict once the candidate's pages are measured: it wins by more than `min_gain` with at least
    MIN_USERS_WITH_HITS users finding something on its pages (`found`), or is forced."""
    wins = ndcg > served + min_gain and found >= MIN_USERS_WITH_HITS
    reason = "forced by --promote" if force else "--no-promote" if force is False else "" if wins else \
        (f"too little signal: {found} validation users find anything (< {MIN_USERS_WITH_HITS})"
         if ndcg > served + min_gain else
         "no better than served" if min_gain == 0 else f"gains no more than min_gain {min_gain:g}")
    return replace(verdict, candidate_ndcg=round(ndcg, 6), promoted=wins if force is None else force, reason=reason)


def settle(registry: ModelRegistry, verdict: Verdict) -> Verdict:
    """Record the verdict in the version's manifest, and promote it if it says so."""
    registry.annotate(verdict.model, verdict.version, "promotion", verdict.record())
    if verdict.promoted:
        registry.promote(verdict.model, verdict.version)
    log.info("promotion verdict", extra=verdict.record())
    return verdict


def served_at_validation(engine: RecommendationEngine, root: Path) -> None:
    """What serves now, as it would have at the validation window's start: without a promoted RealGraph the
    heuristic coefficients (a serving snapshot may carry the learned ones of an earlier promotion); a
    promoted two-tower with its validation vectors (its serving ones see the validation window)."""
    if engine.state.realgraph is not None and not engine.model_status.get("realgraph", "").startswith("v"):
        engine.state.realgraph.coefficients = RealGraphCoefficients()
    if "two_tower" in engine.state.models:
        models, status = load_models(root, engine.state.store, vectors="validation")
        _swap(engine, "two_tower", models.get("two_tower"), status["two_tower"])


def _current(engine: RecommendationEngine, name: str) -> tuple[object, str]:
    """What serves `name` now (model or None, status line), to restore after a losing candidate."""
    if name == "realgraph":
        rg = engine.state.realgraph
        return (rg.coefficients if rg is not None else None), engine.model_status.get(name, "")
    return engine.state.models.get(name), engine.model_status.get(name, "")


def _swap(engine: RecommendationEngine, name: str, model: object, status: str) -> None:
    """Serve `model` in the slot `name` (None: the heuristic). The pipeline's components read the
    models from the shared state on every request, so nothing is rebuilt."""
    engine.model_status[name] = status
    if name == "realgraph":
        if engine.state.realgraph is not None:
            engine.state.realgraph.coefficients = model if isinstance(model, RealGraphCoefficients) \
                else RealGraphCoefficients()
        return
    if model is None:
        engine.state.models.pop(name, None)
        return
    if isinstance(model, TrainedHeavyRanker):
        model.rows_per_call = engine.config.timeline.batch.ranker_rows
    engine.state.models[name] = model


def _label(status: str) -> str:
    """What serves a slot, in words: "v2 (promoted)" or "heuristic"."""
    return status.split(" (ONNX")[0] if status.startswith("v") else "heuristic"
