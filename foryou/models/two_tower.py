"""Two-tower retrieval: a user tower and a post tower whose dot product ranks posts for a user.

- User tower: user id embedding + the mean of the user's last ≤ `history_len` engaged posts (each
  post = its id + author + topic embeddings, shared with the post tower) + dense user features
  (log follows, log followers, log history length) → MLP → L2-normalised.
- Post tower: post id + author + topic embeddings + dense post features (has_media, has_link,
  log length) → MLP → L2-normalised.
- Loss: in-batch sampled softmax, logits ⟨u, p⟩ / temperature − log q(p), with q(p) the post's
  frequency among training positives (logQ correction: popular posts are not over-penalised for
  being everyone's negative); a repeat of the target post elsewhere in the batch is masked.

Ids are shifted by one; index 0 is "unknown" (a zero, untrained embedding): posts, authors and
users beyond the trained model — fresh posts at serving time — use it. During training ids are
dropped to 0 with probability `id_dropout`, so the towers also learn from features alone.

A training example is a positive engagement (like / repost / reply by default) at time t with the
user's history being their previous positives strictly before t. Rows: users by position in sorted
user ids, posts by position in posts sorted by post_id — the same rows as `ServingIndex`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn
from torch.nn import functional as F

from foryou.data.lookup import rows_of
from foryou.data.split import History, _require_history, follow_graph
from foryou.vocab import POSITIVE

USER_DENSE = 3
POST_DENSE = 3
Progress = Callable[[str, float], None]


class TwoTower(nn.Module):
    def __init__(self, n_users: int, n_posts: int, n_authors: int, n_topics: int, dim: int = 64,
                 history_len: int = 20, hidden: int = 128):
        super().__init__()
        self.n_users, self.n_posts, self.n_authors, self.n_topics = n_users, n_posts, n_authors, n_topics
        self.dim, self.history_len = dim, history_len
        self.user_emb = nn.Embedding(n_users + 1, dim, padding_idx=0, sparse=True)
        self.post_emb = nn.Embedding(n_posts + 1, dim, padding_idx=0, sparse=True)
        self.author_emb = nn.Embedding(n_authors + 1, dim, padding_idx=0, sparse=True)
        self.topic_emb = nn.Embedding(n_topics + 1, dim, padding_idx=0)
        # Id tables start at zero: a row that training never touches (a post newer than the
        # training positives) equals "unknown" instead of random noise.
        for e in (self.user_emb, self.post_emb, self.author_emb):
            nn.init.zeros_(e.weight)
        nn.init.normal_(self.topic_emb.weight, std=0.1)
        with torch.no_grad():
            self.topic_emb.weight[0].zero_()
        self.user_mlp = nn.Sequential(nn.Linear(2 * dim + USER_DENSE, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.post_mlp = nn.Sequential(nn.Linear(3 * dim + POST_DENSE, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    # Index tensors are already shifted (0 = unknown).
    def item(self, post: torch.Tensor, author: torch.Tensor, topic: torch.Tensor) -> torch.Tensor:
        return self.post_emb(post) + self.author_emb(author) + self.topic_emb(topic)

    def user_tower(self, user: torch.Tensor, dense: torch.Tensor, hist_post: torch.Tensor,
                   hist_author: torch.Tensor, hist_topic: torch.Tensor) -> torch.Tensor:
        mask = (hist_post > 0) | (hist_author > 0) | (hist_topic > 0)
        items = self.item(hist_post, hist_author, hist_topic) * mask.unsqueeze(-1)
        hist = items.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        x = torch.cat([self.user_emb(user), hist, dense], 1)
        return F.normalize(self.user_mlp(x), dim=-1)

    def post_tower(self, post: torch.Tensor, author: torch.Tensor, topic: torch.Tensor,
                   dense: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.post_emb(post), self.author_emb(author), self.topic_emb(topic), dense], 1)
        return F.normalize(self.post_mlp(x), dim=-1)


@dataclass(frozen=True)
class TwoTowerInputs:
    """Everything the towers read, as numpy arrays by row (ids already shifted: 0 = unknown)."""

    user_ids: np.ndarray
    user_dense: np.ndarray  # [n_users, USER_DENSE] float32 (history length column filled per example)
    post_ids: np.ndarray
    post_created: np.ndarray
    post_author: np.ndarray  # shifted author rows
    post_topic: np.ndarray  # shifted topics (0 = unknown)
    post_dense: np.ndarray  # [n_posts, POST_DENSE] float32
    pos_user: np.ndarray  # positive engagements, sorted by (user, time): user rows
    pos_post: np.ndarray  # post rows
    pos_time: np.ndarray


def two_tower_inputs(h: History, kinds: tuple[str, ...] = POSITIVE) -> TwoTowerInputs:
    h = _require_history(h)
    g = follow_graph(h)
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


def _history_before(pos_user: np.ndarray, pos_post: np.ndarray, pos_time: np.ndarray, users: np.ndarray,
                    times: np.ndarray, length: int) -> np.ndarray:
    """[len(users), length] post rows (−1 = none): each user's last positives strictly before time,
    most recent first. `pos_*` sorted by (user, time)."""
    keys = pos_user.astype(np.int64) * (1 << 40) + pos_time
    end = np.searchsorted(keys, users.astype(np.int64) * (1 << 40) + times, side="left")
    start = np.searchsorted(pos_user, users, side="left")
    out = np.full((len(users), length), -1, dtype=np.int64)
    for j in range(length):
        i = end - 1 - j
        ok = i >= start
        out[ok, j] = pos_post[i[ok]]
    return out


class _Batcher:
    """Builds tower tensors for examples (user rows, post rows, times)."""

    def __init__(self, x: TwoTowerInputs, model: TwoTower):
        self.x, self.history_len = x, model.history_len
        self.n_users, self.n_posts, self.n_authors = model.n_users, model.n_posts, model.n_authors
        self.author = np.where(x.post_author <= model.n_authors, x.post_author, 0)
        self.topic = np.where(x.post_topic <= model.n_topics, x.post_topic, 0)

    def _shift(self, rows: np.ndarray, n: int) -> np.ndarray:
        return np.where((rows >= 0) & (rows < n), rows + 1, 0)

    def user(self, users: np.ndarray, times: np.ndarray, drop: np.ndarray | None = None) -> tuple:
        x = self.x
        hist = _history_before(x.pos_user, x.pos_post, x.pos_time, users, times, self.history_len)
        valid = hist >= 0
        h = np.where(valid, hist, 0)
        hist_post = np.where(valid, self._shift(h, self.n_posts), 0)
        hist_author = np.where(valid, self.author[h], 0)
        hist_topic = np.where(valid, self.topic[h], 0)
        dense = x.user_dense[users].copy()
        dense[:, 2] = np.log1p(valid.sum(1)) / np.log1p(self.history_len)
        uid = self._shift(users, self.n_users)
        if drop is not None:
            uid = np.where(drop, 0, uid)
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in
                     (uid, dense, hist_post, hist_author, hist_topic))

    def post(self, posts: np.ndarray, drop: np.ndarray | None = None) -> tuple:
        x = self.x
        pid = self._shift(posts, self.n_posts)
        if drop is not None:
            pid = np.where(drop, 0, pid)
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in
                     (pid, self.author[posts], self.topic[posts], x.post_dense[posts]))


def _in_batch_loss(u: torch.Tensor, p: torch.Tensor, post_rows: torch.Tensor, log_q: torch.Tensor,
                   temperature: float) -> torch.Tensor:
    logits = u @ p.T / temperature - log_q[None, :]
    dup = (post_rows[None, :] == post_rows[:, None]) & ~torch.eye(len(post_rows), dtype=torch.bool)
    logits = logits.masked_fill(dup, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(post_rows)))


def train_two_tower(h: History, valid_window: tuple[int, int] | None = None, *, dim: int = 64,
                    history_len: int = 20, epochs: int = 4, batch_size: int = 512, lr: float = 0.003,
                    temperature: float = 0.1, id_dropout: float = 0.1, patience: int = 2,
                    kinds: tuple[str, ...] = POSITIVE, seed: int = 0,
                    progress: Progress | None = None) -> tuple[TwoTower, dict]:
    """Train on the History's positive engagements (deterministic for a seed).

    With `valid_window=(start, end)`, examples in [start, end) are the validation set, training uses
    those before `start`, and training stops early when the validation loss has not improved for
    `patience` epochs (the best epoch's weights are kept)."""
    h = _require_history(h)
    t0 = time.perf_counter()
    x = two_tower_inputs(h, kinds)
    n_users, n_posts = len(x.user_ids), len(x.post_ids)
    n_topics = int(x.post_topic.max(initial=0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TwoTower(n_users, n_posts, n_users, n_topics, dim, history_len)
    batcher = _Batcher(x, model)
    if valid_window is not None:
        train = np.flatnonzero(x.pos_time < valid_window[0])
        valid = np.flatnonzero((x.pos_time >= valid_window[0]) & (x.pos_time < valid_window[1]))
    else:
        train, valid = np.arange(len(x.pos_user)), np.empty(0, np.int64)
    counts = np.bincount(x.pos_post[train], minlength=n_posts).astype(np.float64)
    log_q = torch.from_numpy(np.log(np.maximum(counts, 1.0) / max(len(train), 1)).astype(np.float32))

    sparse = [model.user_emb.weight, model.post_emb.weight, model.author_emb.weight]
    dense = [p for n, p in model.named_parameters() if not any(p is s for s in sparse)]
    sparse_opt = torch.optim.SparseAdam(sparse, lr=lr)
    dense_opt = torch.optim.Adam(dense, lr=lr)
    rng = np.random.default_rng(seed)

    def loss_of(idx: np.ndarray, training: bool) -> torch.Tensor:
        users, posts, times = x.pos_user[idx], x.pos_post[idx], x.pos_time[idx]
        du = rng.random(len(idx)) < id_dropout if training else None
        dp = rng.random(len(idx)) < id_dropout if training else None
        u = model.user_tower(*batcher.user(users, times, du))
        p = model.post_tower(*batcher.post(posts, dp))
        return _in_batch_loss(u, p, torch.from_numpy(posts), log_q[torch.from_numpy(posts)], temperature)

    def valid_loss() -> float:
        with torch.no_grad():
            total = 0.0
            for i in range(0, len(valid), batch_size):
                idx = valid[i:i + batch_size]
                if len(idx) >= 2:
                    total += float(loss_of(idx, False)) * len(idx)
            return total / max(len(valid), 1)

    history: list[dict] = []
    best, best_state, bad = float("inf"), None, 0
    for epoch in range(epochs):
        model.train()
        perm = train[rng.permutation(len(train))]
        total = 0.0
        steps = list(range(0, len(perm), batch_size))
        for s, i in enumerate(steps):
            idx = perm[i:i + batch_size]
            if len(idx) < 2:
                continue
            loss = loss_of(idx, True)
            sparse_opt.zero_grad()
            dense_opt.zero_grad()
            loss.backward()
            sparse_opt.step()
            dense_opt.step()
            total += float(loss.detach()) * len(idx)
            if progress is not None and s % 20 == 0:
                progress("two_tower", (epoch + s / len(steps)) / epochs)
        model.eval()
        row = {"epoch": epoch, "train_loss": total / max(len(train), 1)}
        if len(valid):
            row["valid_loss"] = valid_loss()
            if row["valid_loss"] < best - 1e-4:
                best, bad = row["valid_loss"], 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
        history.append(row)
        if len(valid) and bad >= patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if progress is not None:
        progress("two_tower", 1.0)
    metrics = {"train_examples": len(train), "valid_examples": len(valid), "epochs": history,
               "best_valid_loss": best if best_state is not None else None,
               "seconds": round(time.perf_counter() - t0, 3)}
    return model, metrics


@torch.no_grad()
def two_tower_vectors(model: TwoTower, h: History, kinds: tuple[str, ...] = POSITIVE,
                      batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user_vectors, post_vectors, post_created) for every user and post row of `h` (which may be
    later than the training History: new users / posts use the unknown id), each user's history
    being their last positives before `h.as_of`. Batched; float32, L2-normalised."""
    x = two_tower_inputs(h, kinds)
    model.eval()
    b = _Batcher(x, model)
    users = np.arange(len(x.user_ids))
    uv = np.concatenate([model.user_tower(*b.user(users[i:i + batch_size],
                                                  np.full(len(users[i:i + batch_size]), h.as_of))).numpy()
                         for i in range(0, len(users), batch_size)] or [np.empty((0, model.dim), np.float32)])
    posts = np.arange(len(x.post_ids))
    pv = np.concatenate([model.post_tower(*b.post(posts[i:i + batch_size])).numpy()
                         for i in range(0, len(posts), batch_size)] or [np.empty((0, model.dim), np.float32)])
    return uv.astype(np.float32), pv.astype(np.float32), x.post_created
