"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): the item-item weights
in closed form, B = I − P · diag(1 / diag(P)) with P = (XᵀX + λI)⁻¹ (so diag(B) = 0); a user's scores are
x_u · B. X is the binary users × items matrix of the history's non-negative engagements.

A big catalog is restricted to `max_items` items (default 8,000: the Gram matrix is 256 MB in float32
and its inverse takes seconds to a minute on 2 cores): the catalog's items first, most engaged first,
then the most engaged other items as inputs. Items outside get no score (they are never listed).
"""

from __future__ import annotations

import numpy as np

from foryou.eval.baselines import Baseline, Catalog, train_matrix
from foryou.eval.protocols import EvalSplit
from foryou.graph.related import ease_weights

MAX_ITEMS = 8_000


def choose_items(counts: np.ndarray, in_catalog: np.ndarray, max_items: int) -> np.ndarray:
    """Column indices EASE models: engaged items, catalog items first, then by engagements (sorted)."""
    engaged = np.flatnonzero(counts > 0)
    order = np.lexsort((engaged, -counts[engaged], ~in_catalog[engaged]))
    return np.sort(engaged[order[:max_items]])


class EASEBaseline(Baseline):
    name = "ease"

    def __init__(self, lam: float = 500.0, max_items: int = MAX_ITEMS):
        self.lam, self.max_items = lam, max_items

    def fit(self, split: EvalSplit, catalog: Catalog) -> None:
        from threadpoolctl import threadpool_limits

        super().fit(split, catalog)
        tm = train_matrix(split, catalog)
        x = tm.matrix.copy()
        x.data[:] = 1.0
        in_catalog = np.zeros(x.shape[1], bool)
        in_catalog[tm.item_cols] = True
        cols = choose_items(np.diff(x.tocsc().indptr), in_catalog, self.max_items)
        self.x = x[:, cols].tocsr()
        with threadpool_limits(1):  # one thread: identical sums run to run
            b = ease_weights(self.x, self.lam)
        found = np.isin(tm.item_cols, cols)
        self.catalog_cols = np.flatnonzero(found)  # catalog positions EASE scores
        self.b = np.ascontiguousarray(b[:, np.searchsorted(cols, tm.item_cols[found])])
        self.user_rows = tm.user_rows

    def scores(self, idx: np.ndarray) -> np.ndarray:
        out = np.full((len(idx), len(self.catalog)), -np.inf)
        out[:, self.catalog_cols] = np.asarray(self.x[self.user_rows[idx]] @ self.b)
        return out
