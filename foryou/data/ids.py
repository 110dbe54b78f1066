"""External ids — the platform's own user and post ids (UUIDs, handles, any strings) — and the int ids
every table and serving structure uses.

    ids = IdMap.load(dataset_path)
    ids.users.one("alice")                      # internal int id, None when unknown
    found, internal = ids.posts.internal(["p1", "p2"])   # a batch, vectorised
    ids.posts.external(np.array([3, 4]))        # back: what responses show

- A dataset imported with `foryou import interactions` has `ids/users.parquet` (external_id → user_id) and
  `ids/items.parquet` (external_id → post_id): its ids are strings, and responses give those strings back.
- Any other dataset (synthetic worlds, the public importers) has int ids: the map is the identity (numeric
  strings accepted), an `is` check on the hot path.
- Inputs: a Python or numpy int is always an internal id; a string is an external id.
- Accounts without an external id (an import's catalog accounts) show as their int id's decimal string and
  are accepted back as such (only ids the map does not own, so "7" never means two accounts).
- Ids created at runtime (an agent's new post) are added with `add` once their internal id is known; the
  caller records the pair durably (the service's event store keeps it in the post event) and adds it again
  on replay, so the map survives restarts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from foryou.data.lookup import member

ID_FILES = {"users": Path("ids") / "users.parquet", "posts": Path("ids") / "items.parquet"}
ExternalId = int | str


class IdConflict(ValueError):
    """An external id that already names another post or user."""


class IdSpace:
    """One id space (users or posts): external strings ↔ internal int64 ids."""

    def __init__(self, what: str, external: np.ndarray | None = None, internal: np.ndarray | None = None):
        self.what = what
        self.mapped = external is not None
        ext = np.asarray(external if external is not None else [], dtype=str)
        ids = np.asarray(internal if internal is not None else [], dtype=np.int64)
        by_ext = np.argsort(ext, kind="stable")
        self._ext_sorted, self._int_by_ext = ext[by_ext], ids[by_ext]
        by_int = np.argsort(ids, kind="stable")
        self._int_sorted, self._ext_by_int = ids[by_int], ext[by_int].astype(object)
        self._added: dict[str, int] = {}  # created at runtime (few): plain dicts
        self._added_back: dict[int, str] = {}

    @property
    def identity(self) -> bool:
        """Int ids shown as they are: nothing to translate either way."""
        return not self.mapped and not self._added

    def __len__(self) -> int:
        return len(self._ext_sorted) + len(self._added)

    # -- external → internal --------------------------------------------------------------------------
    def one(self, value: Any) -> int | None:
        """The internal id of one id (an int passes through), None when unknown."""
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            return int(value)
        if not isinstance(value, str):
            return None
        found, ids = self._strings(np.array([value], dtype=str))
        return int(ids[0]) if found[0] else None

    def internal(self, values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found, internal id) per value: ints pass through, strings are looked up in one vectorised pass."""
        arr = values if isinstance(values, np.ndarray) else None
        if arr is None:
            types = {type(v) for v in values}
            if types <= {int}:
                arr = np.asarray(values, dtype=np.int64)
            elif types <= {str}:
                arr = np.asarray(values, dtype=str)
            else:  # mixed (np.asarray would turn 7 into "7"): ints pass, strings are looked up
                return self._mixed(list(values))
        if arr.dtype.kind in "iu":
            return np.ones(len(arr), bool), arr.astype(np.int64, copy=False)
        if arr.dtype.kind in "UO":
            return self._strings(arr.astype(str))
        return np.zeros(len(arr), bool), np.full(len(arr), -1, np.int64)

    def _mixed(self, values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        out, found = np.full(len(values), -1, np.int64), np.zeros(len(values), bool)
        ints = np.array([isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values], bool)
        strs = np.array([isinstance(v, str) for v in values], bool)
        at = np.flatnonzero(ints)
        out[at], found[at] = [int(values[i]) for i in at.tolist()], True
        at = np.flatnonzero(strs)
        if len(at):
            found[at], out[at] = self._strings(np.array([values[i] for i in at.tolist()], dtype=str))
        return found, out

    def _strings(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, found = np.full(len(s), -1, np.int64), np.zeros(len(s), bool)
        if self.mapped and len(self._ext_sorted):
            found, pos = member(self._ext_sorted, s)
            out[found] = self._int_by_ext[pos[found]]
        rest = ~found
        if rest.any() and self._added:
            got = np.array([self._added.get(x, -1) for x in s[rest].tolist()], np.int64)
            idx = np.flatnonzero(rest)
            out[idx], found[idx] = got, got >= 0
            rest = ~found
        if rest.any():  # decimal strings: int ids (identity), or ids the map does not own (catalog accounts)
            idx = np.flatnonzero(rest)
            digits = np.array([_decimal(x) for x in s[idx].tolist()], bool)  # only the few not found
            idx = idx[digits]
            if len(idx):
                nums = s[idx].astype(np.int64)
                owned = member(self._int_sorted, nums)[0] | np.isin(nums, list(self._added_back))
                idx, nums = idx[~owned], nums[~owned]
                out[idx], found[idx] = nums, True
        return found, out

    # -- internal → external --------------------------------------------------------------------------
    def external(self, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """What responses show for these internal ids: the int ids themselves (identity), else an object
        array of strings (external ids; an id without one as its decimal string)."""
        ids = np.asarray(ids, np.int64)
        if self.identity:
            return ids
        if not self.mapped:  # int ids plus a few created at runtime with string ids
            out = ids.astype(object)
            for i in np.flatnonzero(np.isin(ids, list(self._added_back))).tolist():
                out[i] = self._added_back[int(ids[i])]
            return out
        out = np.array([str(x) for x in ids.tolist()], dtype=object)
        found, pos = member(self._int_sorted, ids)
        out[found] = self._ext_by_int[pos[found]]
        if self._added:
            for i in np.flatnonzero(~found).tolist():
                out[i] = self._added_back.get(int(ids[i]), out[i])
        return out

    def json(self, ids: np.ndarray | Sequence[int]) -> list[ExternalId]:
        """`external` as a JSON-ready list (Python ints and strings)."""
        return list(self.external(ids).tolist())

    def show(self, internal: int) -> ExternalId:
        """One internal id as responses show it."""
        return self.json([internal])[0] if not self.identity else int(internal)

    # -- runtime ids ----------------------------------------------------------------------------------
    def is_new(self, value: str) -> bool:
        """Would `value` name a new id here (a string the map does not know and does not read as an int)?"""
        return self.one(value) is None

    def takes_as_is(self, value: Any) -> bool:
        """Is `value` an int id to use as the internal id itself (an int, or a decimal string on a dataset
        with int ids) rather than an external id to map?"""
        if isinstance(value, int | np.integer):
            return True
        return not self.mapped and isinstance(value, str) and _decimal(value)

    def add(self, external: str, internal: int) -> None:
        """Map a new external id to its internal id (idempotent for the same pair: replays add it again)."""
        known = self.one(external)
        if known is not None:
            if known == int(internal):
                return
            raise IdConflict(f"{self.what} {external} already exists")
        self._added[str(external)] = int(internal)
        self._added_back[int(internal)] = str(external)


def _decimal(s: str) -> bool:
    """An int id written as text ("²" and "٣" are digits to str.isdigit, not to int64)."""
    return s.isascii() and s.isdigit() and len(s) <= 18


class IdMap:
    """The dataset's id spaces: users (authors are users) and posts."""

    def __init__(self, users: IdSpace | None = None, posts: IdSpace | None = None):
        self.users = users or IdSpace("user")
        self.posts = posts or IdSpace("post")

    @property
    def mapped(self) -> bool:
        return self.users.mapped or self.posts.mapped

    @classmethod
    def load(cls, dataset: str | Path | None) -> IdMap:
        """The dataset's id files, read once (identity maps when it has none)."""
        if dataset is None:
            return cls()
        spaces = []
        for what, column in (("users", "user_id"), ("posts", "post_id")):
            path = Path(dataset) / ID_FILES[what]
            if not path.exists():
                spaces.append(IdSpace(what[:-1]))
                continue
            table = pq.read_table(path, columns=["external_id", column])
            spaces.append(IdSpace(what[:-1], table["external_id"].to_numpy(zero_copy_only=False).astype(str),
                                  table[column].to_numpy().astype(np.int64)))
        return cls(*spaces)
