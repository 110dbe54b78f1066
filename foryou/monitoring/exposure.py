"""Who gets seen: creator-exposure inequality (Gini), popular vs long-tail authors, in-network vs
out-of-network share. Fed with served (or viewed) impressions; `report()` also sets the gauges."""

from __future__ import annotations

import numpy as np

from foryou.monitoring import gauges


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative amounts (0 = equal, → 1 = one holder has everything)."""
    v = np.sort(np.asarray(x, dtype=np.float64))
    n, total = len(v), v.sum()
    if n == 0 or total <= 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ v / (n * total))


class ExposureMonitor:
    """Impressions per author against the authors' popularity (followers).

    `popular` = the top 1 % of authors by followers, `long_tail` = the bottom 50 %; an unbiased feed
    would not push the popular share far above their share of eligible posts.
    """

    def __init__(self, author_followers: np.ndarray, popular_top: float = 0.01, tail_bottom: float = 0.5):
        f = np.asarray(author_followers, dtype=np.float64)
        self.n_authors = len(f)
        order = np.argsort(-f, kind="stable")
        rank = np.empty(len(f), dtype=np.int64)
        rank[order] = np.arange(len(f))
        self.popular = rank < max(int(len(f) * popular_top), 1)
        self.long_tail = rank >= int(len(f) * (1 - tail_bottom))
        self.reset()

    def reset(self) -> None:
        self.impressions = np.zeros(self.n_authors, dtype=np.int64)
        self.in_network = 0
        self.total = 0

    def observe(self, author_rows: np.ndarray, in_network: np.ndarray) -> None:
        a = np.asarray(author_rows, dtype=np.int64)
        self.impressions += np.bincount(a, minlength=self.n_authors)[:self.n_authors]
        self.in_network += int(np.count_nonzero(in_network))
        self.total += len(a)

    def report(self, eligible_authors: np.ndarray | None = None, publish: bool = False) -> dict[str, float]:
        """`eligible_authors`: rows of authors who had something to show (Gini over them, zeros included);
        all authors when omitted."""
        imp = self.impressions if eligible_authors is None else self.impressions[eligible_authors]
        total = max(self.total, 1)
        out = {"impressions": self.total, "creator_gini": gini(imp),
               "popular_share": float(self.impressions[self.popular].sum() / total),
               "long_tail_share": float(self.impressions[self.long_tail].sum() / total),
               "out_of_network_share": 1.0 - self.in_network / total if self.total else 0.0,
               "authors_exposed": int(np.count_nonzero(self.impressions))}
        if publish:
            for k, v in out.items():
                gauges.EXPOSURE.labels(measure=k).set(v)
        return out
