"""`foryou train`: every model in dependency order, from the train window, into the registry."""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foryou.config import ForYouConfig, HeavyRankerConfig
from foryou.data.dataset import Dataset
from foryou.data.split import history
from foryou.features import FEATURE_NAMES, FEATURE_SCHEMA, FeatureStore
from foryou.registry import ModelRegistry
from foryou.training.heavy_ranker import build_rows, evaluate, has_impressions, split_windows, train_heavy_ranker
from foryou.training.light_models import train_light_ranker, train_realgraph, train_safety

log = logging.getLogger("foryou.training")
MODELS = ("realgraph", "light_ranker", "heavy_ranker", "safety", "two_tower", "twhin")
MIN_POSITIVES = 10  # a logistic model on fewer positive labels is noise: skip it (the engine keeps its heuristic)
Progress = Callable[[str, float], None]


def dataset_fingerprint(path: Path) -> str:
    """The manifest plus each table's size: what a model was trained on."""
    h = hashlib.sha256((path / "manifest.json").read_bytes())
    for f in sorted(path.glob("*.parquet")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


def registry_for(path: Path) -> ModelRegistry:
    return ModelRegistry(Path(path) / "models")


def train_all(path: Path, config: ForYouConfig | None = None, only: str | None = None, promote: bool | None = None,
              progress: Progress | None = None, tune: int = 0) -> dict[str, Any]:
    """Train (and register, and by default promote) the models in dependency order; returns their
    metrics by name. Order: RealGraph classifier, light rankers, heavy ranker (all on the feature
    store's rows), safety classifiers, two-tower (embedding ANN), TwHIN.

    Without impressions (positives-only imports) the rankers' rows are the engagements plus sampled
    negatives (foryou.training.negatives), and their metrics say so; a model whose labels the data does
    not carry (RealGraph where no account is engaged with twice, a safety label no post has) is skipped:
    its result is {"skipped": why}.

    `promote=None` (the default) promotes what trained on logged impressions and only registers what
    trained against sampled negatives: on MovieLens, Last.fm and Higgs those models rank our pages below
    the heuristic rankers they would replace (EVALUATION.md), so serving them is an explicit choice
    (`promote=True`, or `foryou models promote`)."""
    config = config or ForYouConfig()
    progress = progress or (lambda stage, frac: None)
    if only is not None and only not in MODELS:
        raise ValueError(f"unknown model {only!r}; one of {', '.join(MODELS)}")
    path = Path(path)
    dataset = Dataset.load(path)
    sampled = None if has_impressions(dataset) else {
        "per_positive": config.training.heavy_ranker.negatives_per_positive,
        "sampling": config.training.heavy_ranker.negative_sampling,
        "note": "no impressions: rows = engagements + sampled negatives; AUC is positives vs sampled negatives"}
    if promote is None:
        promote = sampled is None
    torch.manual_seed(config.training.heavy_ranker.seed)
    registry = registry_for(path)
    fingerprint = dataset_fingerprint(path)
    results: dict[str, Any] = {}
    progress("feature store", 0.0)
    store = FeatureStore(history(dataset, dataset.manifest.time_range[1] + 1))
    progress("feature store", 1.0)
    train_w, valid_w, test_w = split_windows(dataset)
    truth = _truth(path, dataset)
    windows = (train_w, valid_w, test_w)

    def register(name: str, tensors, cfg: dict, metrics: dict, schema: str) -> None:
        version = registry.register(name, tensors, config=cfg, metrics=metrics, dataset_fingerprint=fingerprint,
                                    schema=schema, promote=promote)
        results[name] = {"version": version.version, **metrics}

    if only in (None, "realgraph"):
        progress("RealGraph classifier", 0.0)
        tensors, cfg_, metrics = train_realgraph(dataset, windows)
        held_out = metrics["test"]["positives"]
        if min(metrics["train_positives"], held_out) < MIN_POSITIVES:
            results["realgraph"] = {"skipped": f"{metrics['train_positives']} train / {held_out} held-out pairs "
                                    "with an engagement in the validation window (each account engaged with "
                                    "once?); the decayed-count heuristic stays"}
        else:
            register("realgraph", tensors, cfg_, metrics, schema="realgraph-features-1")
        progress("RealGraph classifier", 1.0)
    rows = None
    if only in (None, "light_ranker", "heavy_ranker"):
        cfg = config.training.heavy_ranker
        progress("training rows", 0.0)
        rows = [build_rows(dataset, store, w, cfg.max_train_rows if w is train_w else None,
                           cfg.negatives_per_positive, cfg.seed, cfg.negative_sampling) for w in windows]
        progress("training rows", 1.0)
    if only in (None, "light_ranker"):
        progress("light rankers", 0.0)
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)  # an empty segment: NaN metrics
            light = train_light_ranker(*rows, store)
        for name, (tensors, cfg_, metrics) in light.items():
            positives = metrics["fit"]["rows"] * np.nan_to_num(metrics["train_positive_share"])
            if positives < MIN_POSITIVES:
                results[name] = {"skipped": f"{metrics['fit']['rows']:,} train rows, {positives:,.0f} positive "
                                 "(none on a followed account's posts?); the heuristic light ranker stays"}
            else:
                register(name, tensors, {**cfg_, "negatives": sampled} if sampled else cfg_,
                         {**metrics, "negatives": sampled} if sampled else metrics, schema=FEATURE_SCHEMA)
        progress("light rankers", 1.0)
    if only in (None, "safety"):
        progress("safety classifiers", 0.0)
        for name, (tensors, cfg_, metrics) in train_safety(dataset, store, windows).items():
            if metrics["train_positives"] < MIN_POSITIVES:
                results[name] = {"skipped": f"{metrics['train_positives']} train-window posts carry "
                                 f"{cfg_['label']}: nothing to learn"}
            else:
                register(name, tensors, cfg_, metrics, schema=FEATURE_SCHEMA)
        progress("safety classifiers", 1.0)
    if only in (None, "heavy_ranker"):
        cfg = config.training.heavy_ranker
        if tune:
            cfg, results["tuning"] = tune_heavy_ranker(rows[0], rows[1], store.n_topics, cfg, tune, progress)
        net, fit = train_heavy_ranker(rows[0], rows[1], store.n_topics, cfg, progress)
        progress("evaluation", 0.0)
        metrics = {"fit": fit, "test": evaluate(net, rows[2], truth, store)}
        if sampled:
            metrics["negatives"] = sampled
        progress("evaluation", 1.0)
        version = registry.register(
            "heavy_ranker", dict(net.state_dict()), config=cfg.model_dump(), metrics=metrics,
            dataset_fingerprint=fingerprint, schema=FEATURE_SCHEMA,
            extra={"features": list(FEATURE_NAMES), "n_topics": store.n_topics, "heads": list(net.heads)},
            promote=promote)
        log.info("trained", extra={"model": "heavy_ranker", "version": version.version, "fit": fit})
        results["heavy_ranker"] = {"version": version.version, **metrics}
    if only in (None, "two_tower"):
        results["two_tower"] = _train_two_tower(dataset, registry, fingerprint, promote, progress)
    if only in (None, "twhin"):
        results["twhin"] = _train_twhin(dataset, registry, fingerprint, promote, progress)
    return results


def tune_heavy_ranker(train, valid, n_topics: int, cfg: HeavyRankerConfig, trials: int,
                      progress: Progress) -> tuple[HeavyRankerConfig, dict[str, Any]]:
    """Optuna (seeded TPE) over learning rate, weight decay, mask blocks and widths, minimising the
    validation loss; returns the best config and the trials."""
    try:
        import optuna
    except ImportError as exc:
        raise ValueError("--tune needs optuna: pip install 'foryou[tune]'") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        trial_cfg = cfg.model_copy(update={
            "lr": trial.suggest_float("lr", 5e-4, 1e-2, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-7, 1e-3, log=True),
            "blocks": trial.suggest_int("blocks", 1, 3),
            "block_dim": trial.suggest_categorical("block_dim", [32, 64, 128]),
            "mlp_dim": trial.suggest_categorical("mlp_dim", [64, 128, 256]),
            "id_dim": trial.suggest_categorical("id_dim", [0, 8, 16, 32]),
        })
        _, fit = train_heavy_ranker(train, valid, n_topics, trial_cfg)
        progress("tuning", (trial.number + 1) / trials)
        return min(fit["valid_loss"])

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    progress("tuning", 0.0)
    study.optimize(objective, n_trials=trials)
    best = cfg.model_copy(update=study.best_params)
    return best, {"trials": [{"params": t.params, "valid_loss": round(t.value, 6)} for t in study.trials],
                  "best": study.best_params}


def _train_two_tower(dataset: Dataset, registry: ModelRegistry, fingerprint: str, promote: bool,
                     progress: Progress) -> dict[str, Any]:
    """Trained on the train window (early stopping on validation); serving vectors computed with
    every user's history as of the dataset's end and stored with the weights."""
    from foryou.embeddings.retriever import EmbeddingRetriever
    from foryou.models.two_tower import train_two_tower, two_tower_vectors

    s = dataset.manifest.split
    model, fit = train_two_tower(history(dataset, s.valid_end), (s.train_end, s.valid_end),
                                 progress=lambda stage, f: progress("two-tower", f))
    fit_h = history(dataset, dataset.manifest.time_range[1] + 1)
    users, posts, created = two_tower_vectors(model, fit_h)
    user_ids = np.sort(fit_h.users["user_id"].to_numpy())
    post_ids = np.sort(fit_h.posts["post_id"].to_numpy())
    recall = _retrieval_recall(EmbeddingRetriever(users, posts, created), dataset, user_ids, post_ids)
    metrics = {"fit": _plain(fit), "test": {"recall@200": recall}}
    tensors = {**{k: v.detach().clone() for k, v in model.state_dict().items()},
               "serving.user_ids": torch.from_numpy(user_ids), "serving.post_ids": torch.from_numpy(post_ids),
               "serving.user_vectors": torch.from_numpy(users), "serving.post_vectors": torch.from_numpy(posts),
               "serving.post_created": torch.from_numpy(np.array(created, dtype=np.int64))}
    version = registry.register("two_tower", tensors, config={"dim": model.dim}, metrics=metrics,
                                dataset_fingerprint=fingerprint, schema="two_tower-serving-vectors-1",
                                promote=promote)
    return {"version": version.version, **metrics}


def _train_twhin(dataset: Dataset, registry: ModelRegistry, fingerprint: str, promote: bool,
                 progress: Progress) -> dict[str, Any]:
    from foryou.models.twhin import train_twhin

    model, fit = train_twhin(history(dataset, dataset.manifest.split.train_end),
                             progress=lambda stage, f: progress("TwHIN", f))
    version = registry.register("twhin", {k: v.detach().clone() for k, v in model.state_dict().items()},
                                config={"dim": int(fit.get("dim", 64))}, metrics={"fit": _plain(fit)},
                                dataset_fingerprint=fingerprint, schema="twhin-1", promote=promote)
    return {"version": version.version, "fit": _plain(fit)}


def _retrieval_recall(retriever, dataset: Dataset, user_ids: np.ndarray, post_ids: np.ndarray,
                      k: int = 200, sample: int = 300) -> float:
    """Share of sampled test-window positive engagements whose post the retriever returns in its top k
    for that user at that moment (posts in the retriever's 48 h window only)."""
    e = dataset.engagements
    s = dataset.manifest.split
    test = (e["created_at"].to_numpy() >= s.valid_end) & np.isin(e["kind"].to_numpy(zero_copy_only=False),
                                                                 ["like", "repost", "reply"])
    idx = np.flatnonzero(test)
    if len(idx) == 0:
        return float("nan")
    idx = np.random.default_rng(0).choice(idx, min(sample, len(idx)), replace=False)
    hits = 0
    for i in idx:
        u = int(np.searchsorted(user_ids, e["user_id"][int(i)].as_py()))
        p = int(np.searchsorted(post_ids, e["post_id"][int(i)].as_py()))
        rows, _ = retriever.retrieve(u, int(e["created_at"][int(i)].as_py()), k=k)
        hits += int(p in set(rows.tolist()))
    return round(hits / len(idx), 4)


def _plain(d: dict) -> dict:
    """JSON-able copy of a metrics dict (numpy scalars and arrays to Python)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _truth(path: Path, dataset: Dataset):
    if not dataset.manifest.has_ground_truth:
        return None
    from foryou.data.world import GroundTruth

    return GroundTruth.load(path)
