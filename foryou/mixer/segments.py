"""Segments: the candidates of many queries in one batch, one contiguous run of rows per query.

Serving many requests at once (an evaluation, a simulation round, a batch job) runs the expensive
steps — feature hydration, the heavy ranker — once over every query's candidates concatenated.
`Segments` keeps which rows belong to which query: query i owns rows `offsets[i]:offsets[i + 1]`.
Filters and selectors keep rows in order, so the runs stay contiguous through the whole pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from foryou.mixer.batch import CandidateBatch


class Segments:
    """Row offsets of the queries in a batch (len(self) + 1 of them, non-decreasing)."""

    __slots__ = ("_counts", "_ids", "_n", "offsets", "rows")

    def __init__(self, offsets: np.ndarray) -> None:
        self.offsets: np.ndarray = np.asarray(offsets, dtype=np.int64)
        self._n = len(self.offsets) - 1
        self.rows = int(self.offsets[-1])  # rows of all queries together
        self._ids: np.ndarray | None = None
        self._counts: list[int] | None = None

    @classmethod
    def of_lengths(cls, lengths: Sequence[int] | np.ndarray) -> Segments:
        return cls(np.concatenate(([0], np.cumsum(np.asarray(lengths, dtype=np.int64)))))

    @classmethod
    def single(cls, n: int) -> Segments:
        return cls(np.array([0, n], dtype=np.int64))

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"Segments({len(self)} queries, {self.rows} rows)"

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def counts(self) -> list[int]:
        """`lengths` as Python ints (per-step bookkeeping reads them for every query); computed once."""
        if self._counts is None:
            off = self.offsets.tolist()
            self._counts = [off[i + 1] - off[i] for i in range(len(off) - 1)]
        return self._counts

    @property
    def ids(self) -> np.ndarray:
        """The query (segment) index of every row; computed once."""
        if self._ids is None:
            self._ids = (np.zeros(self.rows, np.int64) if len(self) == 1
                         else np.repeat(np.arange(len(self), dtype=np.int64), self.lengths))
        return self._ids

    def bounds(self) -> Iterator[tuple[int, int, int]]:
        """(query, first row, end row) of every query that has rows."""
        off = self.offsets.tolist()
        for i, n in enumerate(self.counts):
            if n:
                yield i, off[i], off[i] + n

    def slice(self, batch: CandidateBatch, i: int) -> CandidateBatch:
        return batch.rows(int(self.offsets[i]), int(self.offsets[i + 1]))

    def after_mask(self, mask: np.ndarray) -> Segments:
        """The segments of `batch.filter(mask)`."""
        if len(self) == 1:
            return Segments.single(int(np.count_nonzero(mask)))
        return Segments.of_lengths(np.bincount(self.ids[mask], minlength=len(self)))

    def after_take(self, indices: np.ndarray) -> Segments:
        """The segments of `batch.take(indices)`; the indices must keep the queries in order."""
        if len(self) == 1:
            return Segments.single(len(indices))
        seg = self.ids[indices]
        if len(seg) > 1 and (np.diff(seg) < 0).any():
            raise ValueError("selected rows must stay grouped by query, in query order")
        return Segments.of_lengths(np.bincount(seg, minlength=len(self)))

    def per_row(self, values: np.ndarray) -> np.ndarray:
        """A per-query value broadcast to every row of that query."""
        out: np.ndarray = np.asarray(values)[self.ids]
        return out

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Σ of `values` over each query's rows (0 for a query without rows)."""
        return np.bincount(self.ids, weights=values, minlength=len(self))


def stack_per_query(arrays: Sequence[np.ndarray], segment_scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys, owners) of per-query arrays of non-negative ints, made unique across queries as
    `query * segment_scale + value` so one `np.isin` answers every query's membership at once."""
    lengths = np.fromiter((len(a) for a in arrays), np.int64, len(arrays))
    owners = np.repeat(np.arange(len(arrays), dtype=np.int64), lengths)
    values = np.concatenate([np.asarray(a, np.int64) for a in arrays]) if len(arrays) else np.empty(0, np.int64)
    return owners * segment_scale + values, owners


def _scale(probe: np.ndarray, arrays: Sequence[np.ndarray]) -> int:
    return int(max([int(probe.max(initial=0))] + [int(np.max(a, initial=0)) for a in arrays])) + 1


def isin_per_query(probe: np.ndarray, segments: Segments, sets: Sequence[np.ndarray]) -> np.ndarray:
    """For each row r of query i: probe[r] ∈ sets[i] (non-negative ints), in one `np.isin`."""
    if len(segments) == 1:
        return np.isin(probe, sets[0])
    scale = _scale(probe, sets)
    keys, _ = stack_per_query(sets, scale)
    return np.isin(segments.ids * scale + probe, keys)
