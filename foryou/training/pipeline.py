"""`foryou train`: every model in dependency order, from the train window, into the registry."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from foryou.config import ForYouConfig
from foryou.data.dataset import Dataset
from foryou.data.split import history
from foryou.features import FEATURE_NAMES, FEATURE_SCHEMA, FeatureStore
from foryou.training.heavy_ranker import build_rows, evaluate, split_windows, train_heavy_ranker
from foryou.training.registry import ModelRegistry

log = logging.getLogger("foryou.training")
MODELS = ("heavy_ranker",)
Progress = Callable[[str, float], None]


def dataset_fingerprint(path: Path) -> str:
    """The manifest plus each table's size: what a model was trained on."""
    h = hashlib.sha256((path / "manifest.json").read_bytes())
    for f in sorted(path.glob("*.parquet")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


def registry_for(path: Path) -> ModelRegistry:
    return ModelRegistry(Path(path) / "models")


def train_all(path: Path, config: ForYouConfig | None = None, only: str | None = None, promote: bool = True,
              progress: Progress | None = None) -> dict[str, Any]:
    """Train (and register, and by default promote) the models; returns their metrics by name."""
    config = config or ForYouConfig()
    progress = progress or (lambda stage, frac: None)
    if only is not None and only not in MODELS:
        raise ValueError(f"unknown model {only!r}; one of {', '.join(MODELS)}")
    path = Path(path)
    dataset = Dataset.load(path)
    if dataset.impressions.num_rows == 0:
        raise ValueError(f"{path}: no impressions (positives-only source): the rankers train on logged "
                         "impressions; evaluate it with baselines instead")
    torch.manual_seed(config.training.heavy_ranker.seed)
    registry = registry_for(path)
    fingerprint = dataset_fingerprint(path)
    results: dict[str, Any] = {}
    progress("feature store", 0.0)
    store = FeatureStore(history(dataset, dataset.manifest.time_range[1] + 1))
    progress("feature store", 1.0)
    train_w, valid_w, test_w = split_windows(dataset)
    truth = _truth(path, dataset)
    if only in (None, "heavy_ranker"):
        cfg = config.training.heavy_ranker
        progress("training rows", 0.0)
        rows = [build_rows(dataset, store, w, cfg.max_train_rows if w is train_w else None)
                for w in (train_w, valid_w, test_w)]
        progress("training rows", 1.0)
        net, fit = train_heavy_ranker(rows[0], rows[1], store.n_topics, cfg, progress)
        progress("evaluation", 0.0)
        metrics = {"fit": fit, "test": evaluate(net, rows[2], truth, store)}
        progress("evaluation", 1.0)
        version = registry.register(
            "heavy_ranker", dict(net.state_dict()), config=cfg.model_dump(), metrics=metrics,
            dataset_fingerprint=fingerprint, schema=FEATURE_SCHEMA,
            extra={"features": list(FEATURE_NAMES), "n_topics": store.n_topics, "heads": list(net.heads)},
            promote=promote)
        log.info("trained", extra={"model": "heavy_ranker", "version": version.version, "fit": fit})
        results["heavy_ranker"] = {"version": version.version, **metrics}
    return results


def _truth(path: Path, dataset: Dataset):
    if not dataset.manifest.has_ground_truth:
        return None
    from foryou.data.world import GroundTruth

    return GroundTruth.load(path)
