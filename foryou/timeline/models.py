"""Trained models as the timeline uses them: loaded from the registry, with documented fallbacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from foryou.features import FEATURE_NAMES, FEATURE_SCHEMA, FeatureStore
from foryou.mixer import CandidateBatch
from foryou.models.heavy_ranker import HeavyRankerNet
from foryou.timeline.query import TimelineQuery
from foryou.training.registry import ModelRegistry


class TrainedHeavyRanker:
    """The registry's heavy ranker over the feature store: the same features it was trained on."""

    def __init__(self, net: HeavyRankerNet, store: FeatureStore, version: str):
        self.net = net.eval()
        self.store = store
        self.version = version

    def predict(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        rows = batch["post_row"]
        x = self.store.compute(np.full(len(rows), query.user_row), rows, query.now)
        with torch.inference_mode():
            p = self.net(torch.from_numpy(x), torch.from_numpy(self.store.topic[rows])).numpy()
        return {h: p[:, j] for j, h in enumerate(self.net.heads)}


def load_models(dataset_dir: Path, store: FeatureStore) -> tuple[dict[str, object], dict[str, str]]:
    """(models by name, status line by name). A missing, corrupt or mismatched model is left out —
    the timeline falls back to its heuristic — and its status says why; this never raises."""
    registry = ModelRegistry(Path(dataset_dir) / "models")
    models: dict[str, object] = {}
    status: dict[str, str] = {}
    tensors, version, line = registry.load_or_fallback("heavy_ranker", schema=FEATURE_SCHEMA)
    if tensors is not None and version is not None:
        try:
            extra = version.extra or {}
            net = HeavyRankerNet(len(FEATURE_NAMES), int(extra["n_topics"]), tuple(extra["heads"]),
                                 blocks=int(version.config["blocks"]), block_dim=int(version.config["block_dim"]),
                                 mlp_dim=int(version.config["mlp_dim"]), tower_dim=int(version.config["tower_dim"]))
            net.load_state_dict(tensors)
            models["heavy_ranker"] = TrainedHeavyRanker(net, store, version.label)
        except (KeyError, RuntimeError, ValueError) as exc:  # shapes or config that do not fit
            line = f"error: {version.label} does not fit this code ({type(exc).__name__}); heuristic fallback"
    status["heavy_ranker"] = line
    retriever, status["two_tower"] = _two_tower_retriever(registry, store)
    if retriever is not None:
        models["two_tower"] = retriever
    return models, status


def _two_tower_retriever(registry: ModelRegistry, store: FeatureStore):
    """The two-tower's stored serving vectors, re-aligned to this index's user and post rows."""
    from foryou.embeddings.retriever import EmbeddingRetriever

    tensors, version, line = registry.load_or_fallback("two_tower", schema="two_tower-serving-vectors-1",
                                                       fallback="embedding ANN skipped")
    if tensors is None or version is None:
        return None, line
    try:
        uid, pid = tensors["serving.user_ids"].numpy(), tensors["serving.post_ids"].numpy()
        uv, pv = tensors["serving.user_vectors"].numpy(), tensors["serving.post_vectors"].numpy()
        users = np.zeros((len(store.user_ids), uv.shape[1]), np.float32)
        found = np.isin(store.user_ids, uid)
        users[found] = uv[np.searchsorted(uid, store.user_ids[found])]
        posts = np.zeros((len(store.post_id), pv.shape[1]), np.float32)
        found = np.isin(store.post_id, pid)
        posts[found] = pv[np.searchsorted(pid, store.post_id[found])]
    except (KeyError, ValueError, IndexError) as exc:
        return None, f"error: {version.label} has no usable serving vectors ({type(exc).__name__}); skipped"
    return EmbeddingRetriever(users, posts, store.created_at, version=version.label), line
