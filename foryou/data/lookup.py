"""Vectorised id lookups into sorted key arrays (the workhorse of every index build)."""

from __future__ import annotations

from typing import Literal

import numpy as np


def searchsorted_many(keys: np.ndarray, queries: np.ndarray, side: Literal["left", "right"] = "left") -> np.ndarray:
    """np.searchsorted with the queries sorted first.

    Random queries into a large array miss the cache on every probe; sorted queries walk it in
    order. Measured here: 2.4M random queries into 1.2M keys, 0.82 s plain vs 0.55 s including
    the sort (0.06 s when the queries are already sorted).
    """
    queries = np.asarray(queries)
    if len(queries) < 20_000:  # small batches (a request's candidates): the sort costs more than it saves
        return np.searchsorted(keys, queries, side=side)
    order = np.argsort(queries)
    out = np.empty(len(queries), dtype=np.int64)
    out[order] = np.searchsorted(keys, queries[order], side=side)
    return out


def member(sorted_keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is present, position) of each query in a sorted key array."""
    if len(sorted_keys) == 0:
        return np.zeros(len(queries), bool), np.zeros(len(queries), np.int64)
    pos = np.minimum(searchsorted_many(sorted_keys, queries), len(sorted_keys) - 1)
    return sorted_keys[pos] == queries, pos


def row_of(sorted_ids: np.ndarray, id_: int) -> int | None:
    """Row of one id in a sorted id array, None when absent (the request path's single lookup)."""
    r = int(np.searchsorted(sorted_ids, id_))
    return r if r < len(sorted_ids) and sorted_ids[r] == id_ else None


def rows_of(sorted_ids: np.ndarray, ids: np.ndarray, what: str = "id") -> np.ndarray:
    """Row of each id in a sorted id array; KeyError naming the first unknown ids."""
    ids = np.asarray(ids, dtype=np.int64)
    n = len(sorted_ids)
    if n and sorted_ids[-1] - sorted_ids[0] == n - 1:  # contiguous ids (worlds, most imports): O(1) each
        pos = ids - sorted_ids[0]
        found = (pos >= 0) & (pos < n)
    else:
        found, pos = member(sorted_ids, ids)
    if not found.all():
        raise KeyError(f"unknown {what}(s): {np.asarray(ids)[~found][:5].tolist()}")
    return pos


def values_at(keys: np.ndarray, values: np.ndarray, queries: np.ndarray, default: float = 0.0) -> np.ndarray:
    """values[i] where keys[i] == query (keys need not be sorted), else `default`; vectorised."""
    out = np.full(len(queries), default, dtype=np.result_type(values.dtype, np.asarray(default).dtype))
    if len(keys) == 0 or len(queries) == 0:
        return out
    order = np.argsort(keys, kind="stable")
    pos = np.minimum(np.searchsorted(keys[order], queries), len(keys) - 1)
    hit = keys[order][pos] == queries
    out[hit] = values[order][pos[hit]]
    return out
