"""BPR-MF (Rendle, Freudenthaler, Gantner & Schmidt-Thieme, UAI 2009), the way the paper defines it, in
numpy: maximise Σ ln σ(x̂_ui − x̂_uj) − λ‖Θ‖² by stochastic gradient ascent over triples (u, i, j) with
(u, i) a positive drawn uniformly and j drawn **uniformly** from the items u has not engaged with; x̂_ui =
p_u · q_i + b_i. Updates are applied in mini-batches of triples (vectorised; the gradients of a row drawn
twice in a batch are summed), one epoch = as many triples as positives.

Why not implicit's BPR: it draws the negative item as the item of a random interaction, i.e. in
proportion to its popularity, so the popular items — on MovieLens-class data the ones users rate next —
are the most frequent negatives and sink. Deterministic: one seeded generator, one thread.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.special import expit

BATCH = 8192  # triples per vectorised update


class BPR:
    def __init__(self, factors: int = 64, learning_rate: float = 0.05, regularization: float = 0.001,
                 iterations: int = 60, seed: int = 0, batch: int = BATCH):
        self.factors, self.learning_rate, self.regularization = factors, learning_rate, regularization
        self.iterations, self.seed, self.batch = iterations, seed, batch

    def fit(self, user_items: sparse.csr_matrix, show_progress: bool = False) -> BPR:
        m = sparse.csr_matrix(user_items)
        m.sum_duplicates()
        n_users, n_items = m.shape
        rng = np.random.default_rng(self.seed)
        rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(m.indptr))
        cols = m.indices.astype(np.int64)
        keys = np.sort(rows * n_items + cols)  # the positives, to reject a negative the user did engage with
        f = self.factors
        p = (rng.standard_normal((n_users, f)) * 0.1).astype(np.float32)
        q = (rng.standard_normal((n_items, f)) * 0.1).astype(np.float32)
        b = np.zeros(n_items, np.float32)
        lr, reg = np.float32(self.learning_rate), np.float32(self.regularization)
        nnz = len(rows)
        for _ in range(self.iterations if nnz else 0):
            order = rng.permutation(nnz)
            negatives = rng.integers(0, n_items, nnz)
            for lo in range(0, nnz, self.batch):
                s = order[lo:lo + self.batch]
                u, i, j = rows[s], cols[s], negatives[lo:lo + len(s)]
                k = u * n_items + j
                pos = np.searchsorted(keys, k)
                ok = keys[np.minimum(pos, len(keys) - 1)] != k  # skip a "negative" the user engaged with
                u, i, j = u[ok], i[ok], j[ok]
                pu, qi, qj = p[u], q[i], q[j]
                x = np.einsum("nf,nf->n", pu, qi - qj) + b[i] - b[j]
                g = expit(-x).astype(np.float32)[:, None]  # d ln σ(x) / dx
                _scatter_add(p, u, lr * (g * (qi - qj) - reg * pu))
                _scatter_add(q, np.r_[i, j], lr * np.vstack([g * pu - reg * qi, -g * pu - reg * qj]))
                _scatter_add(b, np.r_[i, j], lr * np.r_[g[:, 0] - reg * b[i], -g[:, 0] - reg * b[j]])
        # The bias rides as one more factor (1 on the user side), so scoring is one product.
        self.user_factors = np.hstack([p, np.ones((n_users, 1), np.float32)])
        self.item_factors = np.hstack([q, b[:, None]])
        return self


def _scatter_add(target: np.ndarray, idx: np.ndarray, delta: np.ndarray) -> None:
    """target[idx] += delta with repeated indices summed (a one-hot sparse product: far faster than np.add.at)."""
    rows, inv = np.unique(idx, return_inverse=True)
    if delta.ndim == 1:
        target[rows] += np.bincount(inv, weights=delta, minlength=len(rows)).astype(target.dtype)
        return
    onehot = sparse.csr_matrix((np.ones(len(idx), delta.dtype), (inv, np.arange(len(idx)))),
                               shape=(len(rows), len(idx)))
    target[rows] += onehot @ delta
