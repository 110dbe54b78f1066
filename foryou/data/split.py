"""Temporal split and leak-proof history.

Anything derived from data (a graph, counters, popularity, embeddings, models) must be built from
a `History`: the dataset as it was known strictly before one instant. The builders in this module
accept only a `History`, so code that evaluates at time t cannot accidentally read the future.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from foryou.data.dataset import Dataset
from foryou.data.lookup import row_of, rows_of
from foryou.data.snapshot import Arrays, csr_arrays, csr_from, nest, unnest
from foryou.vocab import POSITIVE

EVENT_TABLES = ("posts", "follows", "engagements", "impressions")


@dataclass(frozen=True)
class Window:
    """A half-open time window [start, end); None means unbounded."""

    name: str
    start: int | None
    end: int | None

    def mask(self, times: pa.Array | pa.ChunkedArray) -> pa.Array:
        keep = pa.array(np.ones(len(times), dtype=bool))
        if self.start is not None:
            keep = pc.and_(keep, pc.greater_equal(times, self.start))
        if self.end is not None:
            keep = pc.and_(keep, pc.less(times, self.end))
        return keep

    def rows(self, dataset: Dataset, table: str) -> pa.Table:
        """The rows of an event table whose created_at falls in the window."""
        t = dataset[table]
        return t.filter(self.mask(t["created_at"]))


@dataclass(frozen=True)
class TemporalSplit:
    train: Window
    valid: Window
    test: Window

    @classmethod
    def of(cls, dataset: Dataset) -> TemporalSplit:
        s = dataset.manifest.split
        return cls(Window("train", None, s.train_end), Window("valid", s.train_end, s.valid_end),
                   Window("test", s.valid_end, None))

    def __iter__(self):
        return iter((self.train, self.valid, self.test))


class History(Dataset):
    """A dataset cut at `as_of`: every event strictly before it, nothing at or after it."""

    def __init__(self, dataset: Dataset, as_of: int):
        cut = Window("history", None, as_of)
        tables = dict(dataset.tables)
        for name in EVENT_TABLES:
            tables[name] = cut.rows(dataset, name)
        super().__init__(tables, dataset.manifest, dataset.path)
        self.as_of = as_of


def history(dataset: Dataset, as_of: int) -> History:
    return History(dataset, as_of)


def _require_history(h: object) -> History:
    if not isinstance(h, History):
        raise TypeError("derived structures are built from a History (history(dataset, as_of)), "
                        "never from a whole dataset: that would leak the future")
    return h


@dataclass(frozen=True)
class FollowGraph:
    """Follow edges as CSR over user rows: row i = user_ids[i], columns = followed user rows."""

    user_ids: np.ndarray
    adjacency: sparse.csr_matrix

    def following(self, user_id: int) -> np.ndarray:
        row = row_of(self.user_ids, user_id)
        if row is None:
            return np.empty(0, dtype=np.int64)
        a = self.adjacency
        return self.user_ids[a.indices[a.indptr[row]:a.indptr[row + 1]]]

    def out_degree(self) -> np.ndarray:
        return np.diff(self.adjacency.indptr)

    def in_degree(self) -> np.ndarray:
        return np.bincount(self.adjacency.indices, minlength=len(self.user_ids))

    def to_arrays(self) -> Arrays:
        return {"user_ids": self.user_ids, **nest("adjacency", csr_arrays(self.adjacency))}

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> FollowGraph:
        return cls(arrays["user_ids"], csr_from(unnest(arrays, "adjacency")))


def follow_graph(h: History) -> FollowGraph:
    """The follow graph as known before `h.as_of`."""
    h = _require_history(h)
    ids = np.sort(h.users["user_id"].to_numpy())
    src = rows_of(ids, h.follows["src_id"].to_numpy(), "user")
    dst = rows_of(ids, h.follows["dst_id"].to_numpy(), "user")
    n = len(ids)
    adj = sparse.csr_matrix((np.ones(len(src), dtype=np.float32), (src, dst)), shape=(n, n))
    adj.sum_duplicates()
    return FollowGraph(ids, adj)


def engagement_counts(h: History, kinds: tuple[str, ...] = POSITIVE,
                      since: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(post_ids, counts) of engagements of the given kinds in [since, as_of), most engaged first."""
    h = _require_history(h)
    e = h.engagements
    keep = pc.is_in(e["kind"], pa.array(list(kinds)))
    if since is not None:
        keep = pc.and_(keep, pc.greater_equal(e["created_at"], since))
    posts = e.filter(keep)["post_id"].to_numpy()
    ids, counts = np.unique(posts, return_counts=True)
    order = np.lexsort((ids, -counts))
    return ids[order], counts[order]


def popular_posts(h: History, n: int, window_s: int = 48 * 3600) -> np.ndarray:
    """The n most engaged posts of the last `window_s` before `h.as_of` (the popularity baseline)."""
    ids, _ = engagement_counts(h, since=h.as_of - window_s)
    return ids[:n]
