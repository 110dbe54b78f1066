"""Trained models as the timeline uses them: loaded from the registry, with documented fallbacks."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from foryou.embeddings.retriever import EmbeddingRetriever
from foryou.features import FEATURE_NAMES, FEATURE_SCHEMA, FeatureStore
from foryou.graph.realgraph import RealGraphCoefficients
from foryou.mixer import CandidateBatch
from foryou.models.heavy_ranker import HeavyRankerNet
from foryou.models.logistic import LogisticRegression, logistic_from_tensors
from foryou.models.phoenix import PhoenixRanker
from foryou.registry import ModelRegistry
from foryou.timeline.query import TimelineQuery
from foryou.vocab import HOUR, NEGATIVE

if TYPE_CHECKING:
    from foryou.models.export import OnnxHeavyRanker, OnnxPhoenix

log = logging.getLogger("foryou.timeline")


class TrainedHeavyRanker:
    """The registry's heavy ranker over the feature store: the same features it was trained on.

    The network runs on `rows_per_call` candidates at a time: ONNX Runtime on one thread is fastest
    at a few hundred rows a call (timeline.batch.ranker_rows), for one request or for thousands."""

    def __init__(self, net: HeavyRankerNet, store: FeatureStore, version: str,
                 runtime: OnnxHeavyRanker | None = None, rows_per_call: int = 512):
        self.net = net.eval()
        self.store = store
        self.version = version
        self.runtime = runtime  # an ONNX Runtime session of the same network (faster), or None: eager torch
        self.rows_per_call = rows_per_call

    def predict(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        return self.predict_many(np.full(len(batch), query.user_row), batch, query.now)

    def predict_many(self, user_rows: np.ndarray, batch: CandidateBatch, now: int) -> dict[str, np.ndarray]:
        """Candidates of many viewers at once: `user_rows` is each candidate's viewer."""
        rows = batch["post_row"]
        s = self.store
        x = batch["features"] if "features" in batch else s.compute(user_rows, rows, now)  # hydrated once
        ids = self.net.vocab_index(np.stack([s.user_ids[user_rows], s.user_ids[s.content_author(rows)]], 1))
        topic, step = s.topic[rows], max(self.rows_per_call, 1)
        p = np.concatenate([self._run(x[i:i + step], topic[i:i + step], ids[i:i + step])
                            for i in range(0, len(rows), step)]) if len(rows) else np.empty((0, len(self.net.heads)))
        return {h: p[:, j] for j, h in enumerate(self.net.heads)}

    def _run(self, x: np.ndarray, topic: np.ndarray, ids: np.ndarray) -> np.ndarray:
        if self.runtime is not None:
            return np.asarray(self.runtime(x, topic, ids))
        with torch.inference_mode():
            out: np.ndarray = self.net(torch.from_numpy(x), torch.from_numpy(topic), torch.from_numpy(ids)).numpy()
        return out


def load_models(root: Path, store: FeatureStore, versions: Mapping[str, int] | None = None,
                vectors: str = "serving") -> tuple[dict[str, object], dict[str, str]]:
    """(models by name, status line by name). A missing, corrupt or mismatched model is left out —
    the timeline falls back to its heuristic — and its status says why ("corrupt: <reason>, serving the
    fallback (heuristic)"; see `ModelRegistry.load_or_fallback`); this never raises, and every model that is
    there but cannot be served is logged as a warning.

    `versions` (registry name → version, e.g. {"heavy_ranker": 3}): those versions instead of the promoted
    ones — candidates evaluated before promotion (foryou.eval.promotion); their status says "(candidate)".
    `vectors="validation"`: the two-tower's vectors as of the validation window's start (stored by training
    beside the serving ones, which see the whole history), for a point-in-time comparison there."""
    registry = ModelRegistry(Path(root))
    pick = dict(versions or {})
    models: dict[str, object] = {}
    status: dict[str, str] = {}
    tensors, version, line = registry.load_or_fallback("heavy_ranker", schema=FEATURE_SCHEMA,
                                                        version=pick.get("heavy_ranker"))
    if tensors is not None and version is not None:
        try:
            extra = version.extra or {}
            cfg = version.config
            vocab = np.zeros(len(tensors["id_vocab"]) if "id_vocab" in tensors else 0, np.int64)  # filled below
            net = HeavyRankerNet(len(FEATURE_NAMES), int(extra["n_topics"]), tuple(extra["heads"]),
                                 blocks=int(cfg["blocks"]), block_dim=int(cfg["block_dim"]),
                                 mlp_dim=int(cfg["mlp_dim"]), tower_dim=int(cfg["tower_dim"]),
                                 id_vocab=vocab, id_dim=int(cfg.get("id_dim", 0)))
            net.load_state_dict(tensors)
            runtime = _onnx_runtime(net)
            models["heavy_ranker"] = TrainedHeavyRanker(net, store, version.label, runtime)
            if runtime is not None:
                line += " (ONNX Runtime)"
        except (KeyError, TypeError, RuntimeError, ValueError) as exc:  # shapes or config that do not fit
            line = _does_not_fit(version.label, exc)
    status["heavy_ranker"] = line
    phoenix, status["phoenix"] = _phoenix(registry, store, pick.get("phoenix"))
    if phoenix is not None:
        models["phoenix"] = phoenix
    phoenix_retriever, status["phoenix_retrieval"] = _phoenix_retriever(registry, store,
                                                                         pick.get("phoenix_retrieval"))
    if phoenix_retriever is not None:
        models["phoenix_retrieval"] = phoenix_retriever
    retriever, status["two_tower"] = _two_tower_retriever(registry, store, pick.get("two_tower"), vectors)
    if retriever is not None:
        models["two_tower"] = retriever
    for name in ("light_ranker_in_network", "light_ranker_out_of_network"):
        tensors, version, status[name] = registry.load_or_fallback(name, schema=FEATURE_SCHEMA,
                                                                   version=pick.get(name))
        if tensors is not None and version is not None:
            try:
                models[name] = TrainedLightRanker(logistic_from_tensors(tensors), store,
                                                  tuple(version.config["features"]), version.label)
            except (KeyError, TypeError, RuntimeError, ValueError) as exc:
                status[name] = _does_not_fit(version.label, exc)
    tensors, version, status["realgraph"] = registry.load_or_fallback("realgraph", schema="realgraph-features-1",
                                                                      version=pick.get("realgraph"))
    if tensors is not None and version is not None:
        try:
            models["realgraph"] = realgraph_coefficients(tensors)
        except (KeyError, TypeError, RuntimeError, ValueError) as exc:
            status["realgraph"] = _does_not_fit(version.label, exc, "decayed-count heuristic")
    for name, line in status.items():
        if not line.startswith(("v", "missing:")):  # there, but not servable: say so where operators look
            log.warning("model not served; serving the fallback", extra={"model": name, "status": line})
    return models, status


def _does_not_fit(label: str, exc: Exception, fallback: str = "heuristic") -> str:
    reason = (str(exc).strip().splitlines() or [""])[0]  # load_state_dict's errors run over many lines
    return f"incompatible: {label} does not fit this code ({type(exc).__name__}: {reason}), serving the fallback " \
           f"({fallback})"


def _onnx_runtime(net: HeavyRankerNet) -> OnnxHeavyRanker | None:
    """The network exported to ONNX Runtime — same probabilities, faster on one thread (BENCHMARKS.md) —
    or None (eager torch) where onnxruntime is not installed or the export fails."""
    try:
        from foryou.models.export import OnnxHeavyRanker, to_onnx

        return OnnxHeavyRanker(to_onnx(net), threads=1)
    except Exception as exc:  # any export/runtime problem: serve with eager torch, say why in the log
        log.warning("ONNX Runtime unavailable for the heavy ranker; eager torch", extra={"error": str(exc)})
        return None


class TrainedPhoenix:
    """Phoenix in the heavy-ranker slot (`timeline.ranking.model`): each viewer's history read from the feature
    store's engagement sequences at request time — live events included, so a like moves the next page's
    scores without retraining — and every candidate scored against it alone (candidate isolation: a score
    does not depend on the other candidates of the request)."""

    def __init__(self, model: PhoenixRanker, store: FeatureStore, version: str, history: int,
                 context: tuple[str, ...], trend_s: int, runtime: OnnxPhoenix | None = None,
                 viewers_per_call: int = 16):
        self.model = model.eval()
        self.context, self.trend_s = context, trend_s  # the candidate context it was trained on
        self.runtime = runtime  # ONNX Runtime of the same model (faster on one thread), or None: eager torch
        self.store = store
        self.version = version
        self.history = history
        self.known_until = int(model.known_until)  # candidate posts created from then on: unknown ids
        self.viewers_per_call = viewers_per_call

    def predict(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        return self.predict_many(np.full(len(batch), query.user_row), batch, query.now)

    def predict_many(self, user_rows: np.ndarray, batch: CandidateBatch, now: int) -> dict[str, np.ndarray]:
        """Candidates of many viewers at once: each viewer's candidates are one row of the model's input."""
        from foryou.training.phoenix import inputs

        rows = np.asarray(batch["post_row"], np.int64)
        viewers, owner = np.unique(np.asarray(user_rows, np.int64), return_inverse=True)
        order = np.argsort(owner, kind="stable")
        counts = np.bincount(owner, minlength=len(viewers))
        slot = np.empty(len(rows), np.int64)
        slot[order] = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        cand = np.full((len(viewers), int(counts.max(initial=0))), -1, np.int64)
        cand[owner, slot] = rows
        out = np.empty((len(rows), len(self.model.heads)), np.float32)
        step = max(self.viewers_per_call, 1)
        for lo in range(0, len(viewers), step):
            mine_viewers = viewers[lo:lo + step]
            x = inputs(self.store, mine_viewers, np.full(len(mine_viewers), now), cand[lo:lo + step], self.history,
                       self.context, self.trend_s, self.known_until)
            if self.runtime is not None:
                p = self.runtime(*x.numpy())
            else:
                with torch.inference_mode():
                    p = self.model.probabilities(*x.tensors()).numpy()
            mine = (owner >= lo) & (owner < lo + step)
            out[mine] = p[owner[mine] - lo, slot[mine]]
        return {h: out[:, j] for j, h in enumerate(self.model.heads)}


def _phoenix(registry: ModelRegistry, store: FeatureStore, pick: int | None) -> tuple[TrainedPhoenix | None, str]:
    from foryou.config import PhoenixConfig
    from foryou.training.phoenix import SCHEMA, context_features, new_model

    tensors, version, line = registry.load_or_fallback("phoenix", schema=SCHEMA, version=pick)
    if tensors is None or version is None:
        return None, line
    try:
        cfg = PhoenixConfig(**version.config)
        model = new_model(cfg, int((version.extra or {})["topics"]))
        model.load_state_dict(tensors)
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        return None, _does_not_fit(version.label, exc)
    runtime = None
    try:
        from foryou.models.export import OnnxPhoenix, phoenix_to_onnx
        from foryou.training.phoenix import INPUT_NAMES

        runtime = OnnxPhoenix(phoenix_to_onnx(model, INPUT_NAMES), threads=1)
        line += " (ONNX Runtime)"
    except Exception as exc:  # any export/runtime problem: eager torch, said in the log
        log.warning("ONNX Runtime unavailable for Phoenix; eager torch", extra={"error": str(exc)})
    return TrainedPhoenix(model, store, version.label, cfg.history, context_features(cfg),
                          int(cfg.trend_hours * HOUR), runtime), line


def _phoenix_retriever(registry: ModelRegistry, store: FeatureStore,
                       pick: int | None) -> tuple[EmbeddingRetriever | None, str]:
    from foryou.config import PhoenixConfig
    from foryou.training.phoenix_retrieval import SCHEMA, PhoenixRetriever, new_retrieval

    tensors, version, line = registry.load_or_fallback("phoenix_retrieval", schema=SCHEMA, version=pick)
    if tensors is None or version is None:
        return None, line
    try:
        cfg = PhoenixConfig(**version.config)
        model = new_retrieval(cfg, int((version.extra or {})["topics"]))
        model.load_state_dict(tensors)
        return PhoenixRetriever(model, store, cfg.history, version.label), line
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        return None, _does_not_fit(version.label, exc, "source skipped")


class TrainedLightRanker:
    """Logistic regression over the feature store's cheap columns (REFERENCE's light ranker)."""

    def __init__(self, model: LogisticRegression, store: FeatureStore, features: tuple[str, ...], version: str):
        self.model = model.eval()
        self.store = store
        self.columns = [FEATURE_NAMES.index(f) for f in features]
        if len(self.columns) != model.n_features:
            raise ValueError(f"{len(self.columns)} features configured, the model takes {model.n_features}")
        self.version = version
        # Source batches this model ordered. It runs only where a source returns more candidates than
        # `light_ranker_keep`, so a loaded light ranker may never be used; `foryou eval` reports this count.
        self.batches = 0

    def score(self, query: TimelineQuery, rows: np.ndarray) -> np.ndarray:
        self.batches += 1
        x = self.store.compute(np.full(len(rows), query.user_row), rows, query.now)[:, self.columns]
        with torch.inference_mode():
            return np.asarray(self.model(torch.from_numpy(x)).numpy()[:, 0])


def realgraph_coefficients(tensors: dict[str, torch.Tensor]) -> RealGraphCoefficients:
    """The learned RealGraph classifier as coefficients, with signs held to their meaning: rare,
    collinear negative actions can come out positive in the fit, and a block must never raise a weight."""
    w, b = logistic_from_tensors(tensors).raw_coefficients()
    c = RealGraphCoefficients.learned(w[0], b[0]).model_dump()
    for kind in NEGATIVE:
        c[kind] = min(c[kind], 0.0)
    for kind in ("like", "repost", "reply", "profile_click", "click", "follow_author", "follows"):
        if kind in c:
            c[kind] = max(c[kind], 0.0)
    return RealGraphCoefficients(**c)


def _two_tower_retriever(registry: ModelRegistry, store: FeatureStore, pick: int | None = None,
                         vectors: str = "serving") -> tuple[EmbeddingRetriever | None, str]:
    """The two-tower's stored `vectors` ("serving", or "validation" where stored) of the promoted version
    (or `pick`), re-aligned to this index's user and post rows."""
    tensors, version, line = registry.load_or_fallback("two_tower", schema="two_tower-serving-vectors-1",
                                                        version=pick)
    if tensors is None or version is None:
        return None, line
    try:
        if f"{vectors}.user_ids" not in tensors:
            vectors, line = "serving", f"{line} (serving vectors: they see the whole history)"
        uid, pid = tensors[f"{vectors}.user_ids"].numpy(), tensors[f"{vectors}.post_ids"].numpy()
        uv, pv = tensors[f"{vectors}.user_vectors"].numpy(), tensors[f"{vectors}.post_vectors"].numpy()
        users = np.zeros((len(store.user_ids), uv.shape[1]), np.float32)
        found = np.isin(store.user_ids, uid)
        users[found] = uv[np.searchsorted(uid, store.user_ids[found])]
        posts = np.zeros((len(store.post_id), pv.shape[1]), np.float32)
        found = np.isin(store.post_id, pid)
        posts[found] = pv[np.searchsorted(pid, store.post_id[found])]
    except (KeyError, ValueError, IndexError) as exc:
        return None, (f"incompatible: {version.label} has no usable serving vectors ({type(exc).__name__}: {exc}), "
                      "serving the fallback (embedding ANN skipped)")
    return EmbeddingRetriever(users, posts, store.created_at, version=version.label), line
