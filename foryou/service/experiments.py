"""A/B experiments where they meet live traffic: the arms (and merged config overrides) a user is
served with, the exposures of the pages served, and the outcomes (engagements) of users in a
running experiment, all logged for `foryou experiments results`."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from foryou.experiments.assignment import assign
from foryou.experiments.runtime import ActiveExperiments
from foryou.experiments.store import ExperimentLog, ExperimentStore
from foryou.service.store import Event, GroupCommitStore


class ServedExperiments:
    """The dataset's running experiments, re-read when `experiments.json` changes (an experiment
    created or stopped through the CLI or /v1/experiments applies from the next request on); the
    experiment log is opened once there is something to log."""

    def __init__(self, dataset: Path, state: Path | None = None):
        self._store = ExperimentStore(dataset, state)
        self._stamp: tuple[int, int] | None = None
        self._active = ActiveExperiments([])
        self._log: ExperimentLog | None = None
        self._lock = threading.Lock()

    def active(self) -> ActiveExperiments:
        try:
            st = os.stat(self._store.definitions_path)
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    running = self._store.running() if stamp != (0, 0) else []
                    if running and self._log is None:
                        self._log = ExperimentLog(self._store.log_path)
                    self._active, self._stamp = ActiveExperiments(running, self._log), stamp
        return self._active

    def overrides_for(self, user_id: int) -> tuple[dict[str, Any], dict[str, str]]:
        active = self.active()
        return active.overrides_for(user_id) if active.experiments else ({}, {})

    def log_exposure(self, arms: dict[str, str], user_id: int, t: int, items: int, session: int | None) -> None:
        self.active().log_exposure(arms, user_id, t, items, session)

    def record(self, events: list[Event]) -> None:
        """Outcome events of users in a running experiment (one vectorised assignment per experiment)."""
        active = self.active()
        if not events or not active.experiments or active.log is None:
            return
        users = np.fromiter((e.user_id for e in events), np.int64, len(events))
        inside = np.zeros(len(events), bool)
        for experiment in active.experiments:
            inside |= assign(experiment, users) >= 0
        rows = [(e.user_id, e.post_id, e.kind, e.t, e.value, e.seq)
                for e, keep in zip(events, inside.tolist(), strict=True) if keep and e.post_id is not None]
        if rows:
            active.log.log_outcomes(rows)

    def backfill(self, store: GroupCommitStore, chunk: int = 50_000) -> int:
        """Log the outcomes of engagements stored after the newest logged one: `record` runs after the
        event store's commit, so a crash in between loses the row, never the event. Returns the events
        looked at (0 when no experiment runs or none of its outcomes was logged yet)."""
        active = self.active()
        last = active.log.last_outcome_seq() if active.experiments and active.log is not None else None
        if last is None:
            return 0
        seen, batch = 0, []
        for e in store.iter_since(int(last)):
            seen += 1
            if e.type == "engagement":
                batch.append(e)
            if len(batch) >= chunk:
                self.record(batch)
                batch = []
        self.record(batch)
        return seen

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
