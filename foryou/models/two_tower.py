"""Two-tower retrieval: a user tower and a post tower whose dot product ranks posts for a user.

- User tower: user id embedding + the mean of the user's last ≤ `history_len` engaged posts (each
  post = its id + author + topic embeddings, shared with the post tower) + dense user features
  (log follows, log followers, log history length) → MLP → L2-normalised.
- Post tower: post id + author + topic embeddings + dense post features (has_media, has_link,
  log length) → MLP → L2-normalised.

Ids are shifted by one; index 0 is "unknown" (a zero, untrained embedding): posts, authors and
users beyond the trained model — fresh posts at serving time — use it. During training ids are
dropped to 0 at random (foryou.training.two_tower), so the towers also learn from features alone.

The towers read `TwoTowerInputs` (numpy arrays by user and post row; built from a History by
`foryou.training.two_tower.two_tower_inputs`); `TowerBatcher` turns rows into tower tensors and
`tower_vectors` computes every user's and post's vector. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

USER_DENSE = 3
POST_DENSE = 3
UserTensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
PostTensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


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

    def sparse_parameters(self) -> list[torch.Tensor]:
        """The id tables (sparse gradients: SparseAdam); every other parameter is dense."""
        return [self.user_emb.weight, self.post_emb.weight, self.author_emb.weight]

    # Index tensors are already shifted (0 = unknown).
    def item(self, post: torch.Tensor, author: torch.Tensor, topic: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.post_emb(post) + self.author_emb(author) + self.topic_emb(topic)
        return out

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


def history_before(pos_user: np.ndarray, pos_post: np.ndarray, pos_time: np.ndarray, users: np.ndarray,
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


class TowerBatcher:
    """Builds tower tensors for examples (user rows, post rows, times)."""

    def __init__(self, x: TwoTowerInputs, model: TwoTower):
        self.x, self.history_len = x, model.history_len
        self.n_users, self.n_posts, self.n_authors = model.n_users, model.n_posts, model.n_authors
        self.author = np.where(x.post_author <= model.n_authors, x.post_author, 0)
        self.topic = np.where(x.post_topic <= model.n_topics, x.post_topic, 0)

    @staticmethod
    def _shift(rows: np.ndarray, n: int) -> np.ndarray:
        return np.where((rows >= 0) & (rows < n), rows + 1, 0)

    def user(self, users: np.ndarray, times: np.ndarray, drop: np.ndarray | None = None) -> UserTensors:
        """User-tower inputs; `drop` = examples whose user id becomes "unknown" (id dropout)."""
        x = self.x
        hist = history_before(x.pos_user, x.pos_post, x.pos_time, users, times, self.history_len)
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
        return (_tensor(uid), _tensor(dense), _tensor(hist_post), _tensor(hist_author), _tensor(hist_topic))

    def post(self, posts: np.ndarray, drop: np.ndarray | None = None) -> PostTensors:
        """Post-tower inputs; `drop` = examples whose post id becomes "unknown" (id dropout)."""
        pid = self._shift(posts, self.n_posts)
        if drop is not None:
            pid = np.where(drop, 0, pid)
        return (_tensor(pid), _tensor(self.author[posts]), _tensor(self.topic[posts]),
                _tensor(self.x.post_dense[posts]))


def _tensor(a: np.ndarray[Any, Any]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


@torch.no_grad()
def tower_vectors(model: TwoTower, x: TwoTowerInputs, as_of: int,
                  batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """(user_vectors, post_vectors) for every user and post row of `x`, each user's history being their
    last positives before `as_of`. Batched; float32, L2-normalised."""
    model.eval()
    b = TowerBatcher(x, model)
    users = np.arange(len(x.user_ids))
    posts = np.arange(len(x.post_ids))
    empty = np.empty((0, model.dim), np.float32)
    uv = [model.user_tower(*b.user(u, np.full(len(u), as_of))).numpy()
          for u in (users[i:i + batch_size] for i in range(0, len(users), batch_size))]
    pv = [model.post_tower(*b.post(p)).numpy()
          for p in (posts[i:i + batch_size] for i in range(0, len(posts), batch_size))]
    return np.concatenate(uv or [empty]).astype(np.float32), np.concatenate(pv or [empty]).astype(np.float32)

