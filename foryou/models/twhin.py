"""TwHIN (REFERENCE.md): a heterogeneous graph embedding of users and posts.

Entities: users and posts, in two tables. Relations: follow (user → user) and like / repost / reply
(user → post). Score of an edge (lhs, r, rhs) is TransE-style ⟨lhs, rhs + r⟩; the loss is binary
cross-entropy with in-batch negatives: every batch holds edges of one relation, and each positive
edge's lhs is scored against every other rhs of the batch (same rhs ids are masked, not negatives).

Rows: users by position in sorted user ids (`follow_graph(h).user_ids`), posts by position in posts
sorted by post_id — the same rows as `ServingIndex`.

Retrieval vectors (see `foryou.embeddings.retriever.retriever_from_twhin`): user u → e_u; post p →
e_p + r_like, so ⟨user, post⟩ is exactly the like-edge score. A post with no training edge (fresh)
borrows its author: e_author + r_follow (the "would follow the author" score).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn
from torch.nn import functional as F

from foryou.data.lookup import rows_of
from foryou.data.split import History, _require_history, follow_graph

RELATIONS = ("follow", "like", "repost", "reply")
Progress = Callable[[str, float], None]


class TwHIN(nn.Module):
    def __init__(self, n_users: int, n_posts: int, dim: int = 64, relations: tuple[str, ...] = RELATIONS):
        super().__init__()
        self.n_users, self.n_posts, self.dim = n_users, n_posts, dim
        self.relations = tuple(relations)
        self.users = nn.Embedding(n_users, dim, sparse=True)
        self.posts = nn.Embedding(max(n_posts, 1), dim, sparse=True)
        self.rel = nn.Parameter(torch.zeros(len(self.relations), dim))
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.posts.weight, std=0.1)
        # Which entities had at least one training edge (set by the trainer; untrained rows are noise).
        self.register_buffer("user_trained", torch.zeros(n_users, dtype=torch.bool))
        self.register_buffer("post_trained", torch.zeros(max(n_posts, 1), dtype=torch.bool))

    def rhs_table(self, relation: str) -> nn.Embedding:
        return self.users if relation == "follow" else self.posts

    def relation_vector(self, relation: str) -> torch.Tensor:
        return self.rel[self.relations.index(relation)]

    def score(self, relation: str, lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        """⟨e_lhs, e_rhs + r⟩ for aligned index tensors."""
        rhs_v = self.rhs_table(relation)(rhs) + self.relation_vector(relation)
        return (self.users(lhs) * rhs_v).sum(-1)

    def batch_loss(self, relation: str, lhs: torch.Tensor, rhs: torch.Tensor,
                   l2: float = 0.0) -> torch.Tensor:
        """BCE over the batch's B×B score matrix: the diagonal are positives, the rest in-batch
        negatives (pairs whose rhs id equals the positive's are dropped, not counted as negatives)."""
        u = self.users(lhs)
        v = self.rhs_table(relation)(rhs)
        logits = u @ (v + self.relation_vector(relation)).T
        b = len(lhs)
        eye = torch.eye(b, dtype=torch.bool)
        neg = (rhs[None, :] != rhs[:, None]) & ~eye
        pos_loss = F.softplus(-logits.diagonal()).mean()
        neg_loss = (F.softplus(logits) * neg).sum() / neg.sum().clamp(min=1)
        loss = pos_loss + neg_loss
        if l2 > 0:
            loss = loss + l2 * ((u * u).sum(-1).mean() + (v * v).sum(-1).mean())
        return loss

    @torch.no_grad()
    def user_vectors(self) -> np.ndarray:
        return self.users.weight.detach().numpy().astype(np.float32, copy=True)

    @torch.no_grad()
    def post_vectors(self, post_author_row: np.ndarray | None = None) -> np.ndarray:
        """Vectors e_p + r_like for every post row of `post_author_row` (default: the trained rows);
        rows without a training edge (or beyond the model) get e_author + r_follow, or zeros when
        the author is unknown too."""
        n = self.n_posts if post_author_row is None else len(post_author_row)
        out = np.zeros((n, self.dim), dtype=np.float32)
        like = "like" if "like" in self.relations else self.relations[-1]
        m = min(n, self.n_posts)
        trained = np.zeros(n, dtype=bool)
        trained[:m] = self.post_trained[:m].numpy()
        out[trained] = (self.posts.weight[:m] + self.relation_vector(like)).numpy()[trained[:m]]
        if post_author_row is not None and "follow" in self.relations:
            a = np.asarray(post_author_row, dtype=np.int64)
            ok = ~trained & (a >= 0) & (a < self.n_users)
            ok[ok] = self.user_trained.numpy()[a[ok]]
            out[ok] = (self.users.weight[torch.from_numpy(a[ok])] + self.relation_vector("follow")).numpy()
        return out


def twhin_edges(h: History, relations: tuple[str, ...] = RELATIONS) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(user_ids, {relation: unique (lhs_row, rhs_row) int64 pairs}) known before `h.as_of`."""
    h = _require_history(h)
    g = follow_graph(h)
    user_ids = g.user_ids
    post_ids = np.sort(h.posts["post_id"].to_numpy())
    edges: dict[str, np.ndarray] = {}
    for rel in relations:
        if rel == "follow":
            a = g.adjacency.tocoo()
            pairs = np.stack([a.row.astype(np.int64), a.col.astype(np.int64)], 1)
        else:
            e = h.engagements.filter(pc.equal(h.engagements["kind"], pa.scalar(rel)))
            pairs = np.stack([rows_of(user_ids, e["user_id"].to_numpy(), "user"),
                              rows_of(post_ids, e["post_id"].to_numpy(), "post")], 1)
        edges[rel] = np.unique(pairs.reshape(-1, 2), axis=0)
    return user_ids, edges


def _batches(edges: dict[str, np.ndarray], batch_size: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    out = []
    for rel, pairs in edges.items():
        perm = rng.permutation(len(pairs))
        out += [(rel, pairs[perm[i:i + batch_size]]) for i in range(0, len(pairs), batch_size)
                if len(perm[i:i + batch_size]) >= 2]
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def train_twhin(h: History, *, dim: int = 64, epochs: int = 5, batch_size: int = 512, lr: float = 0.03,
                l2: float = 1e-3, relations: tuple[str, ...] = RELATIONS, seed: int = 0,
                progress: Progress | None = None) -> tuple[TwHIN, dict]:
    """Train TwHIN on the follow and engagement edges of a History (deterministic for a seed).

    Metrics: edges per relation, mean loss per epoch, seconds."""
    h = _require_history(h)
    t0 = time.perf_counter()
    user_ids, edges = twhin_edges(h, relations)
    n_users, n_posts = len(user_ids), h.posts.num_rows
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TwHIN(n_users, n_posts, dim, relations)
    for rel, pairs in edges.items():
        model.user_trained[torch.from_numpy(pairs[:, 0])] = True
        (model.user_trained if rel == "follow" else model.post_trained)[torch.from_numpy(pairs[:, 1])] = True
    sparse_opt = torch.optim.SparseAdam([model.users.weight, model.posts.weight], lr=lr)
    dense_opt = torch.optim.Adam([model.rel], lr=lr)
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    model.train()
    for epoch in range(epochs):
        batches = _batches(edges, batch_size, rng)
        total, count = 0.0, 0
        for i, (rel, pairs) in enumerate(batches):
            p = torch.from_numpy(pairs)
            loss = model.batch_loss(rel, p[:, 0], p[:, 1], l2)
            sparse_opt.zero_grad()
            dense_opt.zero_grad()
            loss.backward()
            sparse_opt.step()
            dense_opt.step()
            total += float(loss.detach()) * len(pairs)
            count += len(pairs)
            if progress is not None and i % 20 == 0:
                progress("twhin", (epoch + i / max(len(batches), 1)) / epochs)
        losses.append(total / max(count, 1))
    model.eval()
    if progress is not None:
        progress("twhin", 1.0)
    metrics = {"edges": {r: len(p) for r, p in edges.items()}, "epochs": epochs, "loss": losses,
               "users_trained": int(model.user_trained.sum()), "posts_trained": int(model.post_trained.sum()),
               "seconds": round(time.perf_counter() - t0, 3)}
    return model, metrics
