"""`foryou train`: every model in dependency order, from the train window, into the registry."""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from foryou.config import ForYouConfig, HeavyRankerConfig
from foryou.data.dataset import Dataset
from foryou.data.lookup import rows_of
from foryou.data.split import Window, history
from foryou.data.state import models_dir, state_dir
from foryou.embeddings.retriever import EmbeddingRetriever
from foryou.features import FEATURE_NAMES, FEATURE_SCHEMA, FeatureStore
from foryou.logs import Progress
from foryou.registry import ModelRegistry
from foryou.training import phoenix, phoenix_retrieval
from foryou.training.heavy_ranker import (
    Rows,
    build_rows,
    evaluate,
    has_impressions,
    split_windows,
    train_heavy_ranker,
)
from foryou.training.light_models import train_light_ranker, train_realgraph
from foryou.training.negatives import HardWindows
from foryou.training.two_tower import train_two_tower, two_tower_vectors
from foryou.vocab import HOUR, POSITIVE

if TYPE_CHECKING:
    from foryou.data.world import GroundTruth

log = logging.getLogger("foryou.training")
MODELS = ("realgraph", "light_ranker", "heavy_ranker", "phoenix", "two_tower")
MIN_POSITIVES = 10  # a logistic model on fewer positive labels is noise: skip it (the engine keeps its heuristic)


def dataset_fingerprint(path: Path) -> str:
    """The manifest plus each table's size: what a model was trained on."""
    h = hashlib.sha256((path / "manifest.json").read_bytes())
    for f in sorted(path.glob("*.parquet")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


def registry_for(path: Path, state: Path | None = None) -> ModelRegistry:
    """The dataset's model registry, in its state directory (`data.state`), never in the dataset."""
    return ModelRegistry(models_dir(state_dir(path, state)))


def train_all(path: Path, config: ForYouConfig | None = None, only: str | None = None, promote: bool | None = None,
              progress: Progress | None = None, tune: int = 0, state: Path | None = None) -> dict[str, Any]:
    """Train (and register, and by default promote) the models in dependency order; returns their
    metrics by name. Order: RealGraph classifier, light rankers, heavy ranker (all on the feature
    store's rows), two-tower (embedding ANN).

    Without impressions (positives-only imports) the rankers' rows are the engagements plus sampled
    negatives (foryou.training.negatives), and their metrics say so; a model whose labels the data does
    not carry (RealGraph where no account is engaged with twice) is skipped: its result is {"skipped": why}.

    `foryou train` registers with `promote=False` and lets its gate decide (foryou.eval.promotion: a
    model is promoted only if its validation-window pages beat what is served; training cannot measure
    pages itself). Called directly, `promote=None` keeps the library's plain rule: promote what trained
    on logged impressions, only register what trained against sampled negatives."""
    if only is not None and only not in MODELS:
        raise ValueError(f"unknown model {only!r}; one of {', '.join(MODELS)}")
    run = _Run.open(Path(path), config or ForYouConfig(), promote, progress or (lambda stage, frac: None), state)
    if only in (None, "realgraph"):
        _train_realgraph(run)
    if only in (None, "light_ranker"):
        _train_light_rankers(run)
    if only in (None, "heavy_ranker"):
        _train_heavy_ranker(run, tune)
    if only in (None, "phoenix"):
        _train_phoenix(run)
    if only in (None, "two_tower"):
        _train_two_tower(run)
    return run.results


@dataclass
class _Run:
    """One `train_all`: the dataset, its feature store and windows, the registry, and the results so far."""

    path: Path
    dataset: Dataset
    config: ForYouConfig
    store: FeatureStore
    windows: tuple[Window, Window, Window]
    truth: GroundTruth | None
    registry: ModelRegistry
    fingerprint: str
    promote: bool
    sampled: dict[str, Any] | None  # how negatives were sampled; None: logged impressions
    progress: Progress
    results: dict[str, Any] = field(default_factory=dict)
    _rows: list[Rows] | None = None

    @classmethod
    def open(cls, path: Path, config: ForYouConfig, promote: bool | None, progress: Progress,
             state: Path | None = None) -> _Run:
        dataset = Dataset.load(path)
        cfg = config.training.heavy_ranker
        src = config.timeline.sources
        sampled = None if has_impressions(dataset) else {
            "per_positive": cfg.negatives_per_positive, "sampling": cfg.negative_sampling,
            **({"max_age_hours": src.max_age_hours, "trending_count_hours": src.trending_count_hours}
               if cfg.negative_sampling == "hard" else {}),
            "note": "no impressions: rows = engagements + sampled negatives; AUC is positives vs sampled negatives"}
        progress("feature store", 0.0)
        store = FeatureStore(history(dataset, dataset.manifest.time_range[1] + 1))
        progress("feature store", 1.0)
        return cls(path, dataset, config, store, split_windows(dataset), _truth(path, dataset),
                   registry_for(path, state), dataset_fingerprint(path),
                   sampled is None if promote is None else promote, sampled, progress)

    def rows(self) -> list[Rows]:
        """Train, validation and test rows of the rankers (built once)."""
        if self._rows is None:
            cfg = self.config.training.heavy_ranker
            self.progress("training rows", 0.0)
            src = self.config.timeline.sources  # the engine's windows (the CLI derives them from the data)
            hard = HardWindows(int(src.max_age_hours * HOUR), int(src.trending_count_hours * HOUR))
            self._rows = [build_rows(self.dataset, self.store, w, cfg.max_train_rows if w is self.windows[0] else None,
                                     cfg.negatives_per_positive, cfg.seed, cfg.negative_sampling, hard)
                          for w in self.windows]
            self.progress("training rows", 1.0)
        return self._rows

    def register(self, name: str, tensors: dict[str, torch.Tensor], config: dict[str, Any], metrics: dict[str, Any],
                 schema: str, extra: dict[str, Any] | None = None) -> None:
        version = self.registry.register(name, tensors, config=config, metrics=metrics,
                                         dataset_fingerprint=self.fingerprint, schema=schema, extra=extra,
                                         promote=self.promote)
        log.info("trained", extra={"model": name, "version": version.version, "fit": metrics.get("fit")})
        self.results[name] = {"version": version.version, **metrics}


def _train_realgraph(run: _Run) -> None:
    run.progress("RealGraph classifier", 0.0)
    tensors, config, metrics = train_realgraph(run.dataset, run.windows)
    held_out = metrics["test"]["positives"]
    if min(metrics["train_positives"], held_out) < MIN_POSITIVES:
        run.results["realgraph"] = {"skipped": f"{metrics['train_positives']} train / {held_out} held-out pairs "
                                    "with an engagement in the validation window (each account engaged with "
                                    "once?); the decayed-count heuristic stays"}
    else:
        run.register("realgraph", tensors, config, metrics, schema="realgraph-features-1")
    run.progress("RealGraph classifier", 1.0)


def _train_light_rankers(run: _Run) -> None:
    rows = run.rows()
    run.progress("light rankers", 0.0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)  # an empty segment: NaN metrics
        light = train_light_ranker(rows[0], rows[1], rows[2], run.store)
    for name, (tensors, config, metrics) in light.items():
        positives = metrics["fit"]["rows"] * np.nan_to_num(metrics["train_positive_share"])
        if positives < MIN_POSITIVES:
            run.results[name] = {"skipped": f"{metrics['fit']['rows']:,} train rows, {positives:,.0f} positive "
                                 "(none on a followed account's posts?); the heuristic light ranker stays"}
        elif run.sampled:
            run.register(name, tensors, {**config, "negatives": run.sampled}, {**metrics, "negatives": run.sampled},
                         schema=FEATURE_SCHEMA)
        else:
            run.register(name, tensors, config, metrics, schema=FEATURE_SCHEMA)
    run.progress("light rankers", 1.0)


def _train_heavy_ranker(run: _Run, tune: int) -> None:
    train, valid, test = run.rows()
    cfg = run.config.training.heavy_ranker
    if tune:
        cfg, run.results["tuning"] = tune_heavy_ranker(train, valid, run.store.n_topics, cfg, tune, run.progress)
    net, fit = train_heavy_ranker(train, valid, run.store.n_topics, cfg, run.progress)
    run.progress("evaluation", 0.0)
    metrics: dict[str, Any] = {"fit": fit, "test": evaluate(net, test, run.truth, run.store)}
    if run.sampled:
        metrics["negatives"] = run.sampled
    run.progress("evaluation", 1.0)
    run.register("heavy_ranker", dict(net.state_dict()), cfg.model_dump(), metrics, schema=FEATURE_SCHEMA,
                 extra={"features": list(FEATURE_NAMES), "n_topics": run.store.n_topics, "heads": list(net.heads)})


def _train_phoenix(run: _Run) -> None:
    """Phoenix on the same windows as MaskNet: page views where impressions are logged, else engagements
    with sampled negatives (foryou.training.phoenix); registered beside MaskNet, gated after it."""
    cfg = run.config.training.phoenix
    if "trend_hours" not in cfg.model_fields_set:  # the engine's trending window for this data
        cfg = cfg.model_copy(update={"trend_hours": run.config.timeline.sources.trending_count_hours})
    run.progress("phoenix rows", 0.0)
    rows = [phoenix.build_rows(run.dataset, run.store, w, cfg, run.sampled is None, run.windows[0].end)
            for w in run.windows]
    run.progress("phoenix rows", 1.0)
    model, fit = phoenix.train_phoenix(rows[0], rows[1], cfg, run.progress)
    metrics: dict[str, Any] = {"fit": fit, "test": phoenix.evaluate(model, rows[2], run.truth, run.store)}
    if run.sampled:
        metrics["negatives"] = {"per_positive": cfg.sampled_negatives, "sampling": "popularity + uniform, log-Q",
                                "note": "no impressions: AUC is the engagement vs its sampled negatives"}
    run.register("phoenix", dict(model.state_dict()), cfg.model_dump(), metrics, schema=phoenix.SCHEMA,
                 extra={"topics": model.topic.num_embeddings - 1, "heads": list(model.heads)})
    _train_phoenix_retrieval(run)


def _train_phoenix_retrieval(run: _Run) -> None:
    """Phoenix's two-tower on the positive engagements, as the two-tower's (recall measured the same way)."""
    cfg, store = run.config.training.phoenix, run.store
    rows = [phoenix_retrieval.retrieval_rows(run.dataset, store, w, POSITIVE, cfg) for w in run.windows[:2]]
    model, fit = phoenix_retrieval.train_phoenix_retrieval(rows[0], rows[1], len(store.post_id), cfg, run.progress)
    recall = _retrieval_recall(phoenix_retrieval.PhoenixRetriever(model, store, cfg.history, "candidate"), run)
    run.register("phoenix_retrieval", dict(model.state_dict()), cfg.model_dump(),
                 {"fit": fit, "test": {"recall@200": recall}}, schema=phoenix_retrieval.SCHEMA,
                 extra={"topics": model.candidate_tower.topic.num_embeddings - 1})


def tune_heavy_ranker(train: Rows, valid: Rows, n_topics: int, cfg: HeavyRankerConfig, trials: int,
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
        return float(min(fit["valid_loss"]))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    progress("tuning", 0.0)
    study.optimize(objective, n_trials=trials)
    best = cfg.model_copy(update=study.best_params)
    return best, {"trials": [{"params": t.params, "valid_loss": None if t.value is None else round(t.value, 6)}
                             for t in study.trials],
                  "best": study.best_params}


def _train_two_tower(run: _Run) -> None:
    """Trained on the train window (early stopping on validation); serving vectors computed with
    every user's history as of the dataset's end and stored with the weights."""
    dataset = run.dataset
    s = dataset.manifest.split
    model, fit = train_two_tower(history(dataset, s.valid_end), (s.train_end, s.valid_end),
                                 progress=lambda stage, f: run.progress("two-tower", f))
    tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # serving vectors see the whole history; validation ones stop where the promotion gate serves its pages
    for prefix, end in (("serving", dataset.manifest.time_range[1] + 1), ("validation", s.train_end)):
        fit_h = history(dataset, end)
        users, posts, created = two_tower_vectors(model, fit_h)
        user_ids = np.sort(fit_h.users["user_id"].to_numpy())
        post_ids = np.sort(fit_h.posts["post_id"].to_numpy())
        tensors.update({f"{prefix}.user_ids": torch.from_numpy(user_ids),
                        f"{prefix}.post_ids": torch.from_numpy(post_ids),
                        f"{prefix}.user_vectors": torch.from_numpy(users),
                        f"{prefix}.post_vectors": torch.from_numpy(posts),
                        f"{prefix}.post_created": torch.from_numpy(np.array(created, dtype=np.int64))})
    recall = _retrieval_recall(EmbeddingRetriever(tensors["serving.user_vectors"].numpy(),
                                                  tensors["serving.post_vectors"].numpy(),
                                                  tensors["serving.post_created"].numpy()),
                               run, tensors["serving.user_ids"].numpy(), tensors["serving.post_ids"].numpy())
    run.register("two_tower", tensors, {"dim": model.dim}, {"fit": _plain(fit), "test": {"recall@200": recall}},
                 schema="two_tower-serving-vectors-1")


def _retrieval_recall(retriever: EmbeddingRetriever, run: _Run, user_ids: np.ndarray | None = None,
                      post_ids: np.ndarray | None = None, k: int = 200, sample: int = 300) -> float:
    """Share of sampled test-window positive engagements whose post the retriever returns in its top k
    for that user at that moment, among the posts of the engine's age window (`max_age_hours`, derived from
    the data). Rows: the retriever's (`user_ids`, `post_ids`; default the feature store's)."""
    dataset = run.dataset
    retriever.window_s = int(run.config.timeline.sources.max_age_hours * HOUR)
    user_ids = run.store.user_ids if user_ids is None else user_ids
    post_ids = run.store.post_id if post_ids is None else post_ids
    e = dataset.engagements
    t = e["created_at"].to_numpy()
    test = (t >= dataset.manifest.split.valid_end) & np.isin(e["kind"].to_numpy(zero_copy_only=False), POSITIVE)
    idx = np.flatnonzero(test)
    if len(idx) == 0:
        return float("nan")
    idx = np.random.default_rng(0).choice(idx, min(sample, len(idx)), replace=False)
    users = rows_of(user_ids, e["user_id"].to_numpy()[idx], "user")
    posts = rows_of(post_ids, e["post_id"].to_numpy()[idx], "post")
    hits = 0
    for u, p, when in zip(users, posts, t[idx], strict=True):
        hits += int(p in retriever.retrieve(int(u), int(when), k=k)[0])
    return round(hits / len(idx), 4)


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    """JSON-able copy of a metrics dict (numpy scalars and arrays to Python)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _truth(path: Path, dataset: Dataset) -> GroundTruth | None:
    if not dataset.manifest.has_ground_truth:
        return None
    from foryou.data.world import GroundTruth

    return GroundTruth.load(path)
