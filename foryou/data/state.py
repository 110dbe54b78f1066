"""Where the files a dataset's users make live: trained models, serving snapshots, the service's event
store. Never inside the dataset directory unless asked, so a dataset can sit on read-only storage.

    state_dir(Path("runs/imports/movielens"))   # runs/state/movielens-1a2b3c4d (absolute)
    state_dir(ds, Path("/fast/ml-state"))       # --state-dir: exactly there

The default root is `runs/state` under the working directory, or `$FORYOU_STATE_DIR`; each dataset
gets its own folder there, named after it and keyed by its absolute path (two datasets called `tiny`
never share models)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

STATE_ROOT_ENV = "FORYOU_STATE_DIR"
DEFAULT_ROOT = Path("runs") / "state"


def state_dir(dataset: str | Path, override: str | Path | None = None) -> Path:
    """The state directory for `dataset`: `override` (`--state-dir`) if given, else a folder per dataset
    under `$FORYOU_STATE_DIR` or `runs/state`."""
    if override is not None:
        return Path(override).absolute()
    resolved = Path(dataset).resolve()
    key = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    root = Path(os.environ.get(STATE_ROOT_ENV) or DEFAULT_ROOT)
    return (root / f"{resolved.name}-{key}").absolute()


def models_dir(state: Path) -> Path:
    return state / "models"


def serving_dir(state: Path) -> Path:
    return state / "serving"


def events_file(state: Path) -> Path:
    return state / "service" / "events.sqlite"
