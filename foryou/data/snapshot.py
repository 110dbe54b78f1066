"""Snapshots of built serving structures: named numpy arrays as `.npy` files (memory-mapped on load)
plus JSON values, under a tag. No pickle and no class lookup: each structure writes its own arrays
(`to_arrays()`) and reads them back (`from_arrays()`); the caller, which knows the classes, composes:

    snapshot.save({"index": index, "features": store}, path, tag)   # objects with to_arrays(), or Arrays
    parts = snapshot.load(path, tag, compose={"index": ServingIndex.from_arrays,
                                              "features": FeatureStore.from_arrays})

A part is `Arrays`: a flat mapping of names to numpy arrays or JSON values (None, bool, int, float, str,
and lists / string-keyed dicts of them). `nest` / `unnest` prefix the names of a structure's members,
`csr_arrays` / `csr_from` carry a scipy CSR matrix. Writes are atomic (a temporary sibling directory
renamed into place), so a crash mid-write leaves no half snapshot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from scipy import sparse

META = "snapshot.json"
FORMAT = 2  # 2: named arrays per part (1 stored objects attribute by attribute)

Arrays = dict[str, Any]  # name → numpy array or JSON value
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # also a file name: no separators, no leading dot


class SnapshotError(Exception):
    """A snapshot is missing, from another format, or unreadable."""


class Snapshottable(Protocol):
    def to_arrays(self) -> Arrays: ...


# -- composing parts -------------------------------------------------------------------------------


def nest(prefix: str, arrays: Mapping[str, Any]) -> Arrays:
    """A member's arrays under `prefix.` (to merge into its owner's)."""
    return {f"{prefix}.{name}": value for name, value in arrays.items()}


def unnest(arrays: Mapping[str, Any], prefix: str) -> Arrays:
    """The arrays `nest(prefix, ...)` stored, with the prefix removed."""
    start = f"{prefix}."
    return {name[len(start):]: value for name, value in arrays.items() if name.startswith(start)}


def csr_arrays(m: sparse.csr_matrix) -> Arrays:
    return {"data": m.data, "indices": m.indices, "indptr": m.indptr, "shape": list(m.shape)}


def csr_from(arrays: Mapping[str, Any]) -> sparse.csr_matrix:
    return sparse.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=tuple(arrays["shape"]))


# -- disk --------------------------------------------------------------------------------------------


def _json_value(v: Any) -> bool:
    if v is None or isinstance(v, bool | int | float | str):
        return True
    if isinstance(v, list | tuple):
        return all(_json_value(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _json_value(x) for k, x in v.items())
    return False


def _write_part(root: Path, part: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    kind = None
    if not isinstance(value, Mapping):
        if not hasattr(value, "to_arrays"):
            raise TypeError(f"cannot snapshot {part!r}: {type(value).__name__} has no to_arrays()")
        kind, value = type(value).__name__, value.to_arrays()
    files, values = [], {}
    for name, v in value.items():
        if not _NAME.match(name):
            raise ValueError(f"snapshot name {part}.{name!r}: letters, digits, '_', '.', '-' only")
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, np.ndarray):
            if v.dtype == object:
                raise TypeError(f"{part}.{name}: object arrays cannot be snapshotted")
            np.save(root / f"{part}.{name}.npy", np.ascontiguousarray(v), allow_pickle=False)
            files.append(name)
        elif _json_value(v):
            values[name] = v
        else:
            raise TypeError(f"{part}.{name}: cannot snapshot a value of type {type(v).__name__}")
    return {"kind": kind, "arrays": files, "json": values}


def save(parts: Mapping[str, Snapshottable | Mapping[str, Any] | None], path: str | os.PathLike[str],
         tag: str) -> Path:
    """Save named parts atomically under `path`, labelled with `tag` (e.g. a dataset fingerprint).
    A part is an object with `to_arrays()`, an `Arrays` mapping, or None."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for part in parts:
            if not _NAME.match(part) or "." in part:
                raise ValueError(f"snapshot part {part!r}: letters, digits, '_', '-' only")
        meta = {"format": FORMAT, "tag": tag, "parts": {k: _write_part(tmp, k, v) for k, v in parts.items()}}
        (tmp / META).write_text(json.dumps(meta))
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _read_part(root: Path, part: str, entry: dict[str, Any], mode: Literal["c"] | None) -> Arrays:
    arrays: Arrays = dict(entry["json"])
    for name in entry["arrays"]:
        a = np.load(root / f"{part}.{name}.npy", mmap_mode=mode, allow_pickle=False)
        # A plain ndarray view of the mapping: np.memmap's Python-level __getitem__ costs ~15 µs
        # per indexing call, which added ~2.5 ms to every timeline request.
        arrays[name] = a.view(np.ndarray) if isinstance(a, np.memmap) else a
    return arrays


def load(path: str | os.PathLike[str], tag: str, mmap: bool = True,
         compose: Mapping[str, Callable[[Arrays], Any]] | None = None) -> dict[str, Any]:
    """Load a snapshot saved with the same `tag`; SnapshotError when absent, stale or unreadable.

    Each part comes back as its `Arrays`, or as `compose[part](arrays)` where `compose` names it."""
    path = Path(path)
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"{path}: no readable snapshot ({exc})") from exc
    if meta.get("format") != FORMAT or meta.get("tag") != tag:
        raise SnapshotError(f"{path}: snapshot is stale (format {meta.get('format')}, tag {meta.get('tag')!r})")
    mode: Literal["c"] | None = "c" if mmap else None  # copy-on-write: writable in memory, the file never changes
    out: dict[str, Any] = {}
    try:
        for part, entry in meta["parts"].items():
            if entry is None:
                out[part] = None
                continue
            arrays = _read_part(path, part, entry, mode)
            build = (compose or {}).get(part)
            out[part] = build(arrays) if build is not None else arrays
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise SnapshotError(f"{path}: unreadable snapshot: {exc}") from exc
    return out
