"""Train the heavy ranker from logged impressions (real negatives): rows, fit, calibrate, evaluate."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.compute as pc
import torch
from torch import nn

from foryou.config import HeavyRankerConfig
from foryou.data.dataset import Dataset
from foryou.data.lookup import member, rows_of
from foryou.data.split import Window
from foryou.features import FEATURE_NAMES, FeatureStore
from foryou.logs import Progress
from foryou.models.heavy_ranker import HeavyRankerNet
from foryou.training.loop import FitResult, fit, seeded
from foryou.training.metrics import head_metrics
from foryou.training.negatives import HardWindows, Sampling, sampled_rows
from foryou.vocab import NEGATIVE_FEEDBACK, RANKER_HEADS

if TYPE_CHECKING:
    from foryou.data.world import GroundTruth

# The engagement kinds behind a head that is not itself a kind: negative feedback pools the negatives but report.
HEAD_KINDS: dict[str, tuple[str, ...]] = {"negative_feedback": NEGATIVE_FEEDBACK}


@dataclass
class Rows:
    """Training rows: one per impression, features at the impression time, one label per head."""

    user_row: np.ndarray
    post_row: np.ndarray
    time: np.ndarray
    x: np.ndarray  # rows × features (float32)
    topic: np.ndarray  # rows (int64, −1 unknown)
    y: np.ndarray  # rows × heads (float32)
    ids: np.ndarray  # rows × 2 (int64): viewer and author user ids, for the id embeddings

    def __len__(self) -> int:
        return len(self.time)


def build_rows(dataset: Dataset, store: FeatureStore, window: Window, max_rows: int | None = None,
               negatives: int = 4, seed: int = 0, sampling: Sampling = "uniform",
               hard: HardWindows | None = None) -> Rows:
    """Impressions in `window`, labelled by whether the viewer did each head's action on the post.
    Without impressions (positives-only imports): the window's engagements plus `negatives` sampled
    posts each (foryou.training.negatives), labelled the same way from engagements before the window's end."""
    e = dataset.engagements
    if has_impressions(dataset):
        imp = window.rows(dataset, "impressions")
        if max_rows is not None and imp.num_rows > max_rows:  # keep the most recent
            imp = imp.sort_by("created_at").slice(imp.num_rows - max_rows)
        u = rows_of(store.user_ids, imp["user_id"].to_numpy(), "user")
        p = rows_of(store.post_id, imp["post_id"].to_numpy(), "post")
        t = imp["created_at"].to_numpy()
    else:
        kinds = tuple(k for head in RANKER_HEADS for k in HEAD_KINDS.get(head, (head,)))
        u, p, t = sampled_rows(dataset, store, window, kinds, negatives, seed, sampling, hard)
        u, p, t = (a[-max_rows:] for a in (u, p, t)) if max_rows is not None else (u, p, t)  # the most recent
        if window.end is not None:  # a later engagement must not label (and leak into) an earlier window
            e = e.filter(pc.less(e["created_at"], window.end))
    n_posts = len(store.post_id)
    key = u * n_posts + p
    (u_known, e_u), (p_known, e_p) = member(store.user_ids, e["user_id"].to_numpy()), member(
        store.post_id, e["post_id"].to_numpy())
    known = u_known & p_known  # an engagement the store cannot place labels no row
    e_key = (e_u * n_posts + e_p)[known]
    e_kind = e["kind"].to_numpy(zero_copy_only=False)[known]
    y = np.zeros((len(t), len(RANKER_HEADS)), dtype=np.float32)
    for j, head in enumerate(RANKER_HEADS):
        kinds = HEAD_KINDS.get(head, (head,))
        y[:, j] = np.isin(key, e_key[np.isin(e_kind, kinds)])
    ids = np.stack([store.user_ids[u], store.user_ids[store.content_author(p)]], axis=1)
    return Rows(u, p, t, store.compute(u, p, t), store.topic[p], y, ids)


VALID_CHUNK = 16_384  # validation rows per forward pass (data-parallel workers split the chunks)


def _chunks(n: int, size: int) -> Iterator[slice]:
    return (slice(i, i + size) for i in range(0, n, size))


def _loss(logits: Callable[..., torch.Tensor], tensors: tuple[torch.Tensor, ...], idx: torch.Tensor | slice,
          id_dropout: float = 0.0) -> torch.Tensor:
    x, topic, y, ids = tensors
    ids = ids[idx]
    if id_dropout > 0:  # teach the "unknown" rows (0) what a new user or author looks like
        ids = ids.masked_fill(torch.rand(ids.shape) < id_dropout, 0)
    return nn.functional.binary_cross_entropy_with_logits(logits(x[idx], topic[idx], ids), y[idx])


def _tensors(net: HeavyRankerNet, rows: Rows) -> tuple[torch.Tensor, ...]:
    return (torch.from_numpy(rows.x), torch.from_numpy(rows.topic), torch.from_numpy(rows.y),
            torch.from_numpy(net.vocab_index(rows.ids)))


@torch.no_grad()
def predict(net: HeavyRankerNet, x: np.ndarray, topic: np.ndarray, ids: np.ndarray | None = None,
            batch: int = 65_536) -> np.ndarray:
    """Calibrated probabilities for feature rows; `ids` = raw (viewer, author) user ids per row."""
    net.eval()
    idx = net.vocab_index(ids if ids is not None else np.zeros((len(x), 2), np.int64))
    out = [net(torch.from_numpy(x[c]), torch.from_numpy(topic[c]), torch.from_numpy(idx[c])).numpy()
           for c in _chunks(len(x), batch)]
    return np.concatenate(out) if out else np.empty((0, len(net.heads)), np.float32)


def _calibrate(net: HeavyRankerNet, rows: Rows) -> None:
    """Platt scaling per head on validation rows: p = σ(a·logit + b)."""
    x, topic, _, ids = _tensors(net, rows)
    with torch.no_grad():
        logits = torch.cat([net.logits(x[c], topic[c], ids[c]) for c in _chunks(len(rows), 65_536)])
    y = torch.from_numpy(rows.y)
    a = torch.ones(len(net.heads), requires_grad=True)
    b = torch.zeros(len(net.heads), requires_grad=True)
    opt = torch.optim.LBFGS([a, b], lr=0.5, max_iter=100)

    def closure() -> float:
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(a * logits + b, y)
        loss.backward()
        return float(loss.detach())

    opt.step(closure)
    net.platt_a.copy_(a.detach())
    net.platt_b.copy_(b.detach())


def new_net(train: Rows, n_topics: int, cfg: HeavyRankerConfig) -> HeavyRankerNet:
    """The seeded, untrained net with the train window's id vocabulary and feature scaling."""
    vocab = np.unique(train.ids) if cfg.id_dim else None  # every viewer and author the train window saw
    with seeded(cfg.seed):
        net = HeavyRankerNet(len(FEATURE_NAMES), n_topics, RANKER_HEADS, cfg.blocks, cfg.block_dim, cfg.mlp_dim,
                             cfg.tower_dim, id_vocab=vocab, id_dim=cfg.id_dim)
    net.mean.copy_(torch.from_numpy(train.x.mean(0)))
    # A column constant in the train window (e.g. is_repost where no repost was ever shown) carries
    # nothing to learn from; an infinite scale makes the net ignore it instead of seeing 1/1e-6 at
    # serving time, which pushed every repost and reply ~1.4 logits off.
    std = train.x.std(0)
    net.std.copy_(torch.from_numpy(np.where(std > 1e-6, std, np.inf).astype(np.float32)))
    return net


def fit_net(net: HeavyRankerNet, train: Rows, valid: Rows, cfg: HeavyRankerConfig,
            progress: Progress | None = None, logits: Callable[..., torch.Tensor] | None = None,
            shard: tuple[int, int] = (0, 1)) -> FitResult:
    """The fit loop over `train` with early stopping on `valid`. `shard` = (rank, workers) of data-parallel
    training: every worker walks the same seeded batches and computes the loss of its share of each one
    (`logits`: the DistributedDataParallel module, which averages the gradients), so that all take the steps
    one process would."""
    rank, workers = shard
    tr, va = _tensors(net, train), _tensors(net, valid)
    forward = logits or net.logits

    def batch_loss(idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        return _loss(forward, tr, torch.from_numpy(idx[rank::workers]), cfg.id_dropout)

    def valid_loss() -> float:
        """The mean loss per validation row; data-parallel workers each take every `workers`-th chunk and sum."""
        total = torch.zeros(2, dtype=torch.float64)
        for i, c in enumerate(_chunks(len(valid), VALID_CHUNK)):
            if i % workers == rank:
                n = min(c.stop, len(valid)) - c.start
                total += torch.tensor([_loss(net.logits, va, c).item() * n, n], dtype=torch.float64)
        if workers > 1:
            torch.distributed.all_reduce(total)
        return float(total[0] / max(float(total[1]), 1.0))

    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return fit(net, [opt], batch_loss, len(train), epochs=cfg.epochs, batch_size=cfg.batch_size, min_batch=workers,
               valid_loss=valid_loss, patience=cfg.patience, min_delta=1e-5, seed=cfg.seed, progress=progress,
               stage="heavy ranker")


def train_heavy_ranker(train: Rows, valid: Rows, n_topics: int, cfg: HeavyRankerConfig,
                       progress: Progress | None = None) -> tuple[HeavyRankerNet, dict[str, Any]]:
    """Fit with early stopping on validation loss, then calibrate. Deterministic for a seed on CPU.
    `cfg.workers` > 1: data-parallel on Ray Train (foryou.training.distributed): the same steps, N processes."""
    t0 = time.perf_counter()
    workers = cfg.workers
    if workers > 1:
        from foryou.training.distributed import fit_data_parallel

        net, result = fit_data_parallel(train, valid, n_topics, cfg, workers)
    else:
        net = new_net(train, n_topics, cfg)
        result = fit_net(net, train, valid, cfg, progress)
    _calibrate(net, valid)
    seconds = time.perf_counter() - t0
    return net, {"epochs": len(result.epochs), "valid_loss": [round(v, 6) for v in result.valid_losses],
                 "train_rows": len(train), "valid_rows": len(valid), "seconds": round(seconds, 2),
                 "fit_seconds": round(result.seconds, 2), "workers": workers,
                 "examples_per_s": round(result.examples / max(seconds, 1e-9))}


def evaluate(net: HeavyRankerNet, rows: Rows, truth: GroundTruth | None = None,
             store: FeatureStore | None = None) -> dict[str, dict[str, Any]]:
    """Per-head AUC / RCE / PR-AUC / calibration error on `rows`; with a GroundTruth, the AUC of the
    true probabilities on the same rows (the ceiling any model can reach)."""
    return head_report(predict(net, rows.x, rows.topic, rows.ids), rows.y, rows.user_row, rows.post_row, rows.time,
                       truth, store)


def head_report(probs: np.ndarray, y: np.ndarray, user_row: np.ndarray, post_row: np.ndarray, time: np.ndarray,
                truth: GroundTruth | None = None, store: FeatureStore | None = None) -> dict[str, dict[str, Any]]:
    """Per-head metrics of predicted `probs` (rows × RANKER_HEADS) against labels `y` on (user, post, time)
    rows, with the ground truth's AUC on the same rows where a world has one (any ranker's report)."""
    true = None
    if truth is not None and store is not None:
        true = truth.probabilities(store.user_ids[user_row], store.post_id[post_row], time)
        for head, kinds in HEAD_KINDS.items():  # P(any of the kinds), the kinds drawn independently
            true[head] = 1 - np.prod([1 - true[k] for k in kinds], axis=0)
    out = {}
    for j, head in enumerate(RANKER_HEADS):
        m = head_metrics(y[:, j], probs[:, j])
        if true is not None:
            m["ceiling_auc"] = head_metrics(y[:, j], true[head])["auc"]
        out[head] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}
    return out


def split_windows(dataset: Dataset) -> tuple[Window, Window, Window]:
    s = dataset.manifest.split
    return (Window("train", None, s.train_end), Window("valid", s.train_end, s.valid_end),
            Window("test", s.valid_end, None))


def has_impressions(dataset: Dataset) -> bool:
    return dataset.impressions.num_rows > 0 and bool(pc.any(pc.greater(dataset.impressions["created_at"], 0)).as_py())
