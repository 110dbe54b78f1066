"""Train Phoenix's retrieval form (foryou.models.phoenix.PhoenixRetrieval) and compute its post vectors.

An example is a positive engagement at t (the first per user and post): the user tower reads the user's
history strictly before t (the ranker's inputs: foryou.training.phoenix.inputs), the candidate tower the
post. Loss: sampled softmax over the batch's posts with a learned temperature and the log-Q correction
(− log of the post's share of training positives: a popular post is everyone's in-batch negative), a
repeat of the target post elsewhere in the batch masked — X's retrieval recipe without its 64 global
negatives (the batch's other posts stand in for them).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from foryou.config import PhoenixConfig
from foryou.data.dataset import Dataset
from foryou.data.split import Window
from foryou.embeddings.retriever import EmbeddingRetriever
from foryou.features import FeatureStore
from foryou.features.sequences import N_ACTIONS
from foryou.logs import Progress
from foryou.models.phoenix import PhoenixRetrieval
from foryou.training.loop import fit, seeded
from foryou.training.phoenix import Inputs, inputs, known_rows, table_optimizers
from foryou.training.two_tower import in_batch_loss

HISTORY_INPUTS = 7  # the first seven of INPUT_NAMES: the user and the history
SCHEMA = "phoenix-retrieval-1"


@dataclass
class RetrievalRows:
    """Positive engagements: viewer, time, post (store rows), and the model inputs at that time."""

    user_row: np.ndarray
    time: np.ndarray
    post: np.ndarray
    inputs: Inputs

    def __len__(self) -> int:
        return len(self.time)


def retrieval_rows(dataset: Dataset, store: FeatureStore, window: Window, kinds: tuple[str, ...],
                   cfg: PhoenixConfig) -> RetrievalRows:
    """The window's first engagement of `kinds` per (user, post), the most recent `max_train_rows`."""
    e = dataset.engagements
    e = e.filter(pc.and_(window.mask(e["created_at"]), pc.is_in(e["kind"], pa.array(list(kinds)))))
    ok, u, p = known_rows(store, e)
    p, t = store.content_row[p].astype(np.int64), e["created_at"].to_numpy()[ok]
    key = u * len(store.post_id) + p
    first = np.lexsort((t, key))
    first = first[np.r_[True, key[first][1:] != key[first][:-1]]] if len(first) else first
    first = first[np.argsort(t[first], kind="stable")][-cfg.max_train_rows:]
    u, t, p = u[first], t[first], p[first]
    return RetrievalRows(u, t, p, inputs(store, u, t, p[:, None], cfg.history))


def _vectors(model: PhoenixRetrieval, rows: RetrievalRows, idx: np.ndarray | slice) -> tuple[torch.Tensor, ...]:
    x = rows.inputs.tensors(idx)
    return model.users(*x[:HISTORY_INPUTS]), model.candidates(x[7][:, 0], x[8][:, 0], x[9][:, 0])


def train_phoenix_retrieval(train: RetrievalRows, valid: RetrievalRows, n_posts: int, cfg: PhoenixConfig,
                            progress: Progress | None = None) -> tuple[PhoenixRetrieval, dict[str, Any]]:
    """Fit with early stopping on the validation loss (seeded)."""
    t0 = time.perf_counter()
    topics = int(max(train.inputs.arrays["cand_topic"].max(initial=0), 0)) + 1
    with seeded(cfg.seed):
        model = new_retrieval(cfg, topics)
    counts = np.bincount(train.post, minlength=n_posts).astype(np.float64)
    log_q = torch.from_numpy(np.log(np.maximum(counts, 1.0) / max(len(train), 1)).astype(np.float32))

    def loss_of(rows: RetrievalRows, idx: np.ndarray | slice) -> torch.Tensor:
        u, v = _vectors(model, rows, idx)
        posts = torch.from_numpy(rows.post[idx])
        return in_batch_loss(u, v, posts, log_q[posts], model.log_temperature.exp())

    def valid_loss() -> float:
        step = cfg.batch_size * 4
        parts = [(float(loss_of(valid, slice(i, i + step))), min(step, len(valid) - i))
                 for i in range(0, len(valid), step) if len(valid) - i >= 2]
        return sum(v * n for v, n in parts) / max(sum(n for _, n in parts), 1)

    # a softmax over the batch: larger batches give every example more negatives
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse invariant checks", UserWarning)
        result = fit(model, table_optimizers(model, cfg), lambda idx, rng: loss_of(train, idx), len(train),
                     epochs=cfg.epochs, batch_size=cfg.batch_size * 4, min_batch=2,
                     valid_loss=valid_loss if len(valid) >= 2 else None, patience=cfg.patience, min_delta=1e-4,
                     seed=cfg.seed, progress=progress, stage="phoenix retrieval")
    return model, {"epochs": len(result.epochs), "valid_loss": [round(v, 6) for v in result.valid_losses],
                   "train_examples": len(train), "valid_examples": len(valid),
                   "temperature": round(float(model.log_temperature.detach().exp()), 4),
                   "seconds": round(time.perf_counter() - t0, 2)}


def new_retrieval(cfg: PhoenixConfig, topics: int) -> PhoenixRetrieval:
    return PhoenixRetrieval(N_ACTIONS, d_model=cfg.d_model, layers=cfg.layers, attn_heads=cfg.attn_heads,
                            head_dim=cfg.head_dim, ffn=cfg.ffn, width=cfg.width, user_buckets=cfg.user_buckets,
                            post_buckets=cfg.post_buckets, author_buckets=cfg.author_buckets, topics=topics)


@torch.no_grad()
def post_vectors(model: PhoenixRetrieval, store: FeatureStore, chunk: int = 65_536) -> np.ndarray:
    """The candidate tower's vector of every post row of the store (what the post shows)."""
    model.eval()
    content = store.content_row
    post = torch.from_numpy(store.post_id[content].astype(np.int64))
    author = torch.from_numpy(store.user_ids[store.author_row[content]].astype(np.int64))
    topic = torch.from_numpy(store.topic[content].astype(np.int64))
    parts = [model.candidates(post[i:i + chunk], author[i:i + chunk], topic[i:i + chunk]).numpy()
             for i in range(0, len(post), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, model.dim), np.float32)


@torch.no_grad()
def user_vectors(model: PhoenixRetrieval, store: FeatureStore, user_rows: np.ndarray, now: np.ndarray | int,
                 history: int) -> np.ndarray:
    """The user tower's vectors of `user_rows` at `now` (their histories strictly before it, live events included)."""
    model.eval()
    u = np.asarray(user_rows, np.int64)
    x = inputs(store, u, np.broadcast_to(np.asarray(now, np.int64), u.shape), np.full((len(u), 1), -1), history)
    return model.users(*x.tensors()[:HISTORY_INPUTS]).numpy()


class PhoenixRetriever(EmbeddingRetriever):
    """Phoenix's two-tower as a candidate source: the viewer's vector computed at request time from their history
    (live events included), searched against the candidate tower's post vectors (faiss, the posts of the age
    window, as the embedding ANN)."""

    def __init__(self, model: PhoenixRetrieval, store: FeatureStore, history: int, version: str):
        vectors = post_vectors(model, store)
        super().__init__(np.zeros((0, vectors.shape[1]), np.float32), vectors, store.created_at, version=version)
        self.model, self.store, self.history = model.eval(), store, history

    def retrieve(self, user_row: int, now: int, k: int = 200) -> tuple[np.ndarray, np.ndarray]:
        u = user_vectors(self.model, self.store, np.array([user_row]), now, self.history)[0]
        return self.index_for(int(now)).search(u, k, created_range=(int(now) - self.window_s, int(now)))
