"""The service's files: the event store and the server lock in the dataset's state directory
(`data.state`), and in the dataset itself the marks of what `foryou compact` folded into its tables
(per event store) — compact is the one command that writes into a dataset."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import IO, Any

from foryou.data.state import events_file, state_dir
from foryou.service.store import GroupCommitStore, StoreError
from foryou.vocab import FOLLOW_RELATIONS

# Relations `foryou compact` folds into the dataset's follows table; the others (account-level blocks
# and mutes, which the dataset schema cannot hold) stay in the store and are always replayed.
FOLDED_RELATIONS = FOLLOW_RELATIONS

def store_path(dataset: str | Path, store: str | Path | None = None, state: str | Path | None = None) -> Path:
    """The event store a server on `dataset` uses: `store` (`--store`), else the state directory's."""
    return Path(store) if store is not None else events_file(state_dir(dataset, state))


def lock_path(dataset: str | Path) -> Path:
    """Servers hold a shared lock on it; `foryou compact` needs it exclusively. One per dataset (kept
    in its default state directory whatever `--state-dir` says: it guards the dataset's tables)."""
    return state_dir(dataset) / "service" / "server.lock"


def compacted_path(dataset: str | Path) -> Path:
    return Path(dataset) / ".service" / "compacted.json"


def compacted_marks(dataset: str | Path) -> dict[str, dict[str, Any]]:
    """What `foryou compact` folded into the dataset's tables, per event store: {store_id: {"seq",
    "event_id", "store"}} (the last folded seq, that event's id, the path it was folded from). Kept in
    the dataset, not in the store, because the dataset is what holds the folded events (the swap
    writes both at once) and one dataset may be served from several stores (`--store`)."""
    p = compacted_path(dataset)
    if not p.exists():
        return {}
    return dict(json.loads(p.read_text()).get("stores", {}))


def compacted_seq(dataset: str | Path, store: GroupCommitStore) -> int:
    """Events of `store` up to this seq are already in the dataset's Parquet tables, so replay skips
    them; 0 for a store never folded into this dataset (a fresh `--store`). Raises StoreError when
    `store` carries the folded store's id but not its history (an older copy, or a copy that went
    its own way): skipping its events could drop acknowledged writes, applying them could count
    folded ones twice."""
    mark = compacted_marks(dataset).get(store.store_id)
    if mark is None:
        mark = _legacy_mark(dataset, store)
        if mark is None:
            return 0
    seq = int(mark["seq"])
    stored = store.event(seq)
    if stored is None or (mark.get("event_id") is not None and stored.event_id != mark["event_id"]):
        raise StoreError(f"event store {store.path} is not the one compacted into {dataset} (its event {seq} "
                         f"{'is missing' if stored is None else 'differs'}); serve with the store that was "
                         "compacted, or a new one (--store)")
    return seq


def _legacy_mark(dataset: str | Path, store: GroupCommitStore) -> dict[str, Any] | None:
    """`compacted.json` written before marks were kept per store ({"seq": N}): it was always the
    default store that was folded, so it applies to that store only."""
    p = compacted_path(dataset)
    if not p.exists():
        return None
    data = json.loads(p.read_text())
    if "seq" not in data or not isinstance(store.path, Path) or store.path.resolve() != store_path(dataset).resolve():
        return None
    return {"seq": int(data["seq"])}


def server_lock(dataset: Path) -> IO[str]:
    """The shared server lock (held for the service's life). A read-only dataset can still be
    served from a writable `--store`: an existing lock file is then locked through a read-only handle."""
    p = lock_path(dataset)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        f = open(p, "a+")  # noqa: SIM115
    except OSError as exc:
        try:
            f = open(p)  # noqa: SIM115
        except OSError:
            raise StoreError(f"cannot create the server lock {p}: {exc.strerror}; "
                             "check the dataset directory's permissions") from None
    fcntl.flock(f, fcntl.LOCK_SH)
    return f
