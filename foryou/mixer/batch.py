"""Columnar candidate batches.

Candidates travel through a pipeline as a dict of equally long numpy columns, never as one
Python object per candidate: filters produce masks, scorers add columns, selectors return
indices, and all of that stays vectorised. Rows (dicts) are built only for the returned page.

Arrays are shared between batches derived from one another (no defensive copies, for speed):
treat every column as read-only and return new arrays from components.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def _fill_value(dtype: np.dtype) -> Any:
    """Typed default for a column that a batch lacks in `concat`."""
    kind = dtype.kind
    if kind in "fc":
        return np.nan
    if kind == "b":
        return False
    if kind in "iu":
        return 0
    if kind in "US":
        return ""
    if kind == "M":
        return np.datetime64("NaT")
    if kind == "m":
        return np.timedelta64("NaT")
    return None  # object and anything else


class CandidateBatch:
    """An immutable-by-convention table of candidates: named numpy columns of equal length.

    A column may be multi-dimensional (e.g. an embedding matrix); its first axis is the candidate
    axis. A batch without columns has length 0 unless `length` says otherwise.
    """

    __slots__ = ("_columns", "_n")

    def __init__(self, columns: Mapping[str, Any] | None = None, length: int | None = None) -> None:
        cols = {str(k): np.asarray(v) for k, v in (columns or {}).items()}
        n = length
        for name, arr in cols.items():
            if arr.ndim == 0:
                raise ValueError(f"column {name!r} is a scalar, expected an array")
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                raise ValueError(f"column {name!r} has length {arr.shape[0]}, expected {n}")
        self._columns: dict[str, np.ndarray] = cols
        self._n: int = 0 if n is None else int(n)

    @classmethod
    def _trusted(cls, cols: dict[str, np.ndarray], n: int) -> CandidateBatch:
        """Internal constructor that skips validation (columns derived from a valid batch)."""
        b = cls.__new__(cls)
        b._columns = cols
        b._n = n
        return b

    # -- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._columns[name]
        except KeyError:
            raise KeyError(f"no column {name!r}; have {sorted(self._columns)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def get(self, name: str, default: Any = None) -> Any:
        return self._columns.get(name, default)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(self._columns)

    @property
    def columns(self) -> Mapping[str, np.ndarray]:
        """The column dict itself (do not mutate; use `with_columns`)."""
        return self._columns

    def __repr__(self) -> str:
        return f"CandidateBatch(n={self._n}, columns={list(self._columns)})"

    # -- derivation ---------------------------------------------------------------------------
    def with_columns(self, **cols: Any) -> CandidateBatch:
        """New batch with `cols` added or replaced; lengths must match this batch."""
        new = CandidateBatch(cols, length=self._n)  # validates only the new columns
        if not self._columns:
            return new
        merged = dict(self._columns)
        merged.update(new._columns)
        return CandidateBatch._trusted(merged, self._n)

    def take(self, indices: Sequence[int] | np.ndarray) -> CandidateBatch:
        """New batch with the rows at `indices`, in that order (repeats allowed)."""
        idx = np.asarray(indices, dtype=np.intp)
        if idx.ndim != 1:
            raise ValueError("indices must be one-dimensional")
        return CandidateBatch._trusted({k: v[idx] for k, v in self._columns.items()}, idx.shape[0])

    def rows(self, start: int, stop: int) -> CandidateBatch:
        """Rows `start:stop` as views of this batch's columns (no copy)."""
        start, stop = max(0, start), min(self._n, stop)
        return CandidateBatch._trusted({k: v[start:stop] for k, v in self._columns.items()}, max(0, stop - start))

    def filter(self, mask: np.ndarray | Sequence[bool]) -> CandidateBatch:
        """Batch with the rows where `mask` is True (this very batch if the mask keeps all)."""
        m = np.asarray(mask)
        if m.dtype != np.bool_ or m.shape != (self._n,):
            raise ValueError(f"mask must be a bool array of shape ({self._n},), got {m.dtype} {m.shape}")
        n = int(np.count_nonzero(m))
        if n == self._n:
            return self  # nothing removed: share the columns, skip the copy
        return CandidateBatch._trusted({k: v[m] for k, v in self._columns.items()}, n)

    @classmethod
    def empty(cls) -> CandidateBatch:
        return cls({}, length=0)

    @classmethod
    def concat(cls, batches: Iterable[CandidateBatch]) -> CandidateBatch:
        """Stack batches row-wise over the union of their columns.

        A column missing from a batch is filled for that batch's rows with a default typed after
        the first batch that has the column: NaN for floats, 0 for integers, False for bools, ""
        for fixed-width strings, NaT for datetimes, None for object columns. numpy's usual type
        promotion then applies (e.g. int + float columns give float).
        """
        parts = [b for b in batches if len(b) or b.column_names]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        templates: dict[str, np.ndarray] = {}
        for b in parts:
            for name, arr in b._columns.items():
                templates.setdefault(name, arr)
        out: dict[str, np.ndarray] = {}
        for name, tmpl in templates.items():
            pieces = []
            for b in parts:
                have = b._columns.get(name)
                pieces.append(have if have is not None
                              else np.full((len(b), *tmpl.shape[1:]), _fill_value(tmpl.dtype), dtype=tmpl.dtype))
            out[name] = np.concatenate(pieces)
        return cls._trusted(out, sum(len(b) for b in parts))

    # -- presentation -------------------------------------------------------------------------
    def to_rows(self, columns: Sequence[str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Plain-Python rows for the returned page (slow path; never use inside a pipeline)."""
        names = list(self._columns) if columns is None else list(columns)
        n = self._n if limit is None else max(0, min(self._n, limit))
        lists = {name: self[name][:n].tolist() for name in names}
        return [{name: lists[name][i] for name in names} for i in range(n)]
