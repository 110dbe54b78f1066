"""Durable storage in the dataset's state directory (`STATE/experiments/`, see data.state): definitions
in `experiments.json` (written atomically), exposures and outcome events in an SQLite log (`log.sqlite`, WAL)."""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from foryou.data.state import state_dir
from foryou.errors import ForYouError
from foryou.experiments.definition import Experiment, override_keys

EXPERIMENTS_DIR = "experiments"
DEFINITIONS = "experiments.json"
LOG = "log.sqlite"


class ExperimentError(ForYouError, ValueError):
    """A mistake in an experiment request (unknown name, full layer, conflicting overrides)."""


class ExperimentStore:
    def __init__(self, dataset_dir: str | Path, state: str | Path | None = None):
        self.root = state_dir(dataset_dir, state) / EXPERIMENTS_DIR
        self._lock = threading.Lock()
        self._parsed: tuple[tuple[int, int, int], list[Experiment]] | None = None

    @property
    def definitions_path(self) -> Path:
        return self.root / DEFINITIONS

    @property
    def log_path(self) -> Path:
        return self.root / LOG

    def list(self) -> list[Experiment]:
        """The stored experiments, parsed again only when the file changed (validating every arm's overrides
        costs milliseconds per experiment, and every experiment request lists them)."""
        try:
            st = os.stat(self.definitions_path)
        except FileNotFoundError:
            return []
        key = (st.st_mtime_ns, st.st_size, st.st_ino)  # written atomically: a new file, a new inode
        if self._parsed is None or self._parsed[0] != key:
            raw = json.loads(self.definitions_path.read_text())
            self._parsed = (key, [Experiment.model_validate(e) for e in raw["experiments"]])
        return builtins.list(self._parsed[1])

    def get(self, name: str) -> Experiment:
        for e in self.list():
            if e.name == name:
                return e
        raise ExperimentError(f"no experiment named {name!r} (foryou experiments list)")

    def running(self) -> builtins.list[Experiment]:
        return [e for e in self.list() if e.status == "running"]

    def create(self, experiment: Experiment) -> Experiment:
        """Store a new experiment, placed after the others in its layer. Refused when the name exists,
        the layer has no room left, or a running experiment in another layer overrides the same keys
        (two overlapping experiments changing one parameter would confound each other)."""
        with self._lock:
            existing = self.list()
            if any(e.name == experiment.name for e in existing):
                raise ExperimentError(f"experiment {experiment.name!r} already exists")
            same_layer = [e for e in existing if e.layer == experiment.layer]
            offset = max((e.offset + e.traffic for e in same_layer), default=0.0)
            if offset + experiment.traffic > 1 + 1e-9 or offset >= 1:  # a full layer takes nothing more
                raise ExperimentError(f"layer {experiment.layer!r} has {max(1 - offset, 0):.0%} of traffic left; "
                                      f"lower --traffic or use another --layer")
            keys = set().union(*(override_keys(a.overrides) for a in experiment.arms))
            for other in existing:
                if other.layer == experiment.layer or other.status != "running":
                    continue
                clash = keys & set().union(*(override_keys(a.overrides) for a in other.arms))
                if clash:
                    raise ExperimentError(f"{', '.join(sorted(clash))} is also changed by running experiment "
                                          f"{other.name!r} in layer {other.layer!r}; put both in one layer")
            placed = experiment.model_copy(update={"offset": round(offset, 9)})
            self._write([*existing, placed])
            return placed

    def set_status(self, name: str, status: str) -> Experiment:
        with self._lock:
            existing = self.list()
            out = [e.model_copy(update={"status": status}) if e.name == name else e for e in existing]
            if out == existing and not any(e.name == name for e in existing):
                raise ExperimentError(f"no experiment named {name!r}")
            self._write([Experiment.model_validate(e.model_dump()) for e in out])
            return next(e for e in out if e.name == name)

    def _write(self, experiments: builtins.list[Experiment]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.definitions_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"experiments": [e.model_dump() for e in experiments]}, indent=2) + "\n")
        os.replace(tmp, self.definitions_path)


class ExperimentLog:
    """Exposures (who was served which arm, when, how many posts, in which session) and outcome
    events (impressions and engagements), the inputs of the analysis."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS exposures (experiment TEXT, arm TEXT, user_id INTEGER, t INTEGER,
                                                  session_id INTEGER, items INTEGER);
            CREATE INDEX IF NOT EXISTS exposures_experiment ON exposures (experiment, user_id);
            CREATE TABLE IF NOT EXISTS events (user_id INTEGER, post_id INTEGER, kind TEXT, t INTEGER, value REAL,
                                               seq INTEGER);
            CREATE INDEX IF NOT EXISTS events_user ON events (user_id, t);
        """)
        # seq = the service event store's sequence number of an outcome (NULL for simulated impressions):
        # unique, so outcomes re-derived from the event store after a crash are never counted twice.
        if "seq" not in {row[1] for row in self._db.execute("PRAGMA table_info(events)")}:
            self._db.execute("ALTER TABLE events ADD COLUMN seq INTEGER")  # a log from before the column
        self._db.execute("CREATE UNIQUE INDEX IF NOT EXISTS events_seq ON events (seq)")
        self._lock = threading.Lock()

    def log_exposures(self, rows: Iterable[tuple[str, str, int, int, int, int]]) -> None:
        """(experiment, arm, user_id, t, session_id, items) rows."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO exposures VALUES (?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")

    def log_events(self, rows: Iterable[tuple[int, int, str, int, float]]) -> None:
        """(user_id, post_id, kind, t, value) rows; kind is "impression" or an engagement kind."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO events (user_id, post_id, kind, t, value) VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")

    def log_outcomes(self, rows: Iterable[tuple[int, int, str, int, float, int]]) -> None:
        """(user_id, post_id, kind, t, value, seq) rows of stored service events; a seq already logged is skipped."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO events (user_id, post_id, kind, t, value, seq) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")

    def last_outcome_seq(self) -> int | None:
        """The newest event-store seq logged as an outcome (None: none yet)."""
        with self._lock:
            return self._db.execute("SELECT max(seq) FROM events").fetchone()[0]

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        self._db.close()
