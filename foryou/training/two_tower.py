"""Train the two-tower retrieval model (foryou.models.two_tower) on a History's positive engagements.

A training example is a positive engagement (like / repost / reply by default) at time t with the
user's history being their previous positives strictly before t; one example per (user, post), its
first positive. Rows: users by position in sorted user ids, posts by position in posts sorted by
post_id — the same rows as `ServingIndex`.

Loss: in-batch sampled softmax, logits ⟨u, p⟩ / temperature − log q(p), with q(p) the post's
frequency among training positives (logQ correction: popular posts are not over-penalised for
being everyone's negative); a repeat of the target post elsewhere in the batch is masked. Ids are
dropped to "unknown" with probability `id_dropout`, so the towers also learn from features alone.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.nn import functional as F

from foryou.data.lookup import rows_of
from foryou.data.split import History, follow_graph
from foryou.logs import Progress
from foryou.models.two_tower import TowerBatcher, TwoTower, TwoTowerInputs, tower_vectors
from foryou.training.loop import fit, seeded
from foryou.vocab import POSITIVE


def two_tower_inputs(h: History, kinds: tuple[str, ...] = POSITIVE) -> TwoTowerInputs:
    """The towers' inputs as known before `h.as_of` (a whole Dataset is refused: TypeError)."""
    g = follow_graph(h)  # first: it refuses anything but a History
    user_ids = g.user_ids
    p = h.posts.sort_by("post_id")
    post_ids = p["post_id"].to_numpy()
    author = rows_of(user_ids, p["author_id"].to_numpy(), "user") + 1
    topic = p["topic"].to_numpy().astype(np.int64) + 1
    post_dense = np.stack([p["has_media"].to_numpy(zero_copy_only=False).astype(np.float32),
                           p["has_link"].to_numpy(zero_copy_only=False).astype(np.float32),
                           np.log1p(p["length"].to_numpy().astype(np.float32)) / 6.0], 1)
    user_dense = np.stack([np.log1p(g.out_degree()) / 5.0, np.log1p(g.in_degree()) / 5.0,
                           np.zeros(len(user_ids))], 1).astype(np.float32)
    e = h.engagements.filter(pc.is_in(h.engagements["kind"], pa.array(list(kinds))))
    u = rows_of(user_ids, e["user_id"].to_numpy(), "user")
    q = rows_of(post_ids, e["post_id"].to_numpy(), "post")
    t = e["created_at"].to_numpy()
    # One example per (user, post): its first positive.
    order = np.lexsort((t, q, u))
    u, q, t = u[order], q[order], t[order]
    first = np.r_[True, (np.diff(u) != 0) | (np.diff(q) != 0)]
    u, q, t = u[first], q[first], t[first]
    order = np.lexsort((q, t, u))
    return TwoTowerInputs(user_ids, user_dense, post_ids, p["created_at"].to_numpy(), author, topic, post_dense,
                          u[order], q[order], t[order])


def in_batch_loss(u: torch.Tensor, p: torch.Tensor, post_rows: torch.Tensor, log_q: torch.Tensor,
                  temperature: float | torch.Tensor) -> torch.Tensor:
    """Sampled softmax over the batch's posts with the logQ correction; repeats of the target are masked."""
    logits = u @ p.T / temperature - log_q[None, :]
    dup = (post_rows[None, :] == post_rows[:, None]) & ~torch.eye(len(post_rows), dtype=torch.bool)
    logits = logits.masked_fill(dup, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(post_rows)))


def train_two_tower(h: History, valid_window: tuple[int, int] | None = None, *, dim: int = 64,
                    history_len: int = 20, epochs: int = 4, batch_size: int = 512, lr: float = 0.003,
                    temperature: float = 0.1, id_dropout: float = 0.1, patience: int = 1,
                    kinds: tuple[str, ...] = POSITIVE, seed: int = 0,
                    progress: Progress | None = None) -> tuple[TwoTower, dict[str, Any]]:
    """Train on the History's positive engagements (deterministic for a seed).

    With `valid_window=(start, end)`, examples in [start, end) are the validation set, training uses
    those before `start`, and training stops once the validation loss has not improved for more than
    `patience` epochs (the best epoch's weights are kept)."""
    t0 = time.perf_counter()
    x = two_tower_inputs(h, kinds)
    n_users, n_posts = len(x.user_ids), len(x.post_ids)
    with seeded(seed):
        model = TwoTower(n_users, n_posts, n_users, int(x.post_topic.max(initial=0)), dim, history_len)
    batcher = TowerBatcher(x, model)
    if valid_window is not None:
        train = np.flatnonzero(x.pos_time < valid_window[0])
        valid = np.flatnonzero((x.pos_time >= valid_window[0]) & (x.pos_time < valid_window[1]))
    else:
        train, valid = np.arange(len(x.pos_user)), np.empty(0, np.int64)
    counts = np.bincount(x.pos_post[train], minlength=n_posts).astype(np.float64)
    log_q = torch.from_numpy(np.log(np.maximum(counts, 1.0) / max(len(train), 1)).astype(np.float32))

    def loss_of(idx: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Mean loss of examples `idx`; with `rng` (training), ids dropped at random."""
        users, posts, times = x.pos_user[idx], x.pos_post[idx], x.pos_time[idx]
        du = rng.random(len(idx)) < id_dropout if rng is not None else None
        dp = rng.random(len(idx)) < id_dropout if rng is not None else None
        u = model.user_tower(*batcher.user(users, times, du))
        p = model.post_tower(*batcher.post(posts, dp))
        return in_batch_loss(u, p, torch.from_numpy(posts), log_q[torch.from_numpy(posts)], temperature)

    def valid_loss() -> float:
        chunks = (valid[i:i + batch_size] for i in range(0, len(valid), batch_size))
        return sum(float(loss_of(idx)) * len(idx) for idx in chunks if len(idx) >= 2) / max(len(valid), 1)

    sparse = model.sparse_parameters()
    dense = [p for p in model.parameters() if not any(p is s for s in sparse)]
    result = fit(model, [torch.optim.SparseAdam(sparse, lr=lr), torch.optim.Adam(dense, lr=lr)], loss_of, train,
                 epochs=epochs, batch_size=batch_size, min_batch=2,  # a softmax over the batch needs two
                 valid_loss=valid_loss if len(valid) else None, patience=patience, min_delta=1e-4, seed=seed,
                 progress=progress, stage="two_tower")
    metrics = {"train_examples": len(train), "valid_examples": len(valid), "epochs": result.epochs,
               "best_valid_loss": result.best_valid_loss, "seconds": round(time.perf_counter() - t0, 3)}
    return model, metrics


def two_tower_vectors(model: TwoTower, h: History,
                      kinds: tuple[str, ...] = POSITIVE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user_vectors, post_vectors, post_created) for every user and post row of `h` (which may be
    later than the training History: new users / posts use the unknown id), each user's history
    being their last positives before `h.as_of`."""
    x = two_tower_inputs(h, kinds)
    users, posts = tower_vectors(model, x, h.as_of)
    return users, posts, x.post_created
