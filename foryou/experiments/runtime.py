"""Experiments at serve time: assign a user to arms (one per running experiment they fall in),
serve the page with the arms' merged config overrides, and log the exposure."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from foryou.config import merge_trees
from foryou.experiments.assignment import assign
from foryou.experiments.definition import Experiment
from foryou.experiments.store import ExperimentLog, ExperimentStore


class ActiveExperiments:
    """The running experiments of a dataset plus the log exposures and outcomes go to."""

    def __init__(self, experiments: list[Experiment], log: ExperimentLog | None = None):
        self.experiments = [e for e in experiments if e.status == "running"]
        self.log = log
        self._sessions = itertools.count(1)

    @classmethod
    def open(cls, dataset_dir: str | Path, log_path: str | Path | None = None) -> ActiveExperiments:
        store = ExperimentStore(dataset_dir)
        return cls(store.running(), ExperimentLog(log_path or store.log_path))

    def assignments(self, user_id: int) -> dict[str, str]:
        """{experiment: arm} for every running experiment the user is in."""
        out = {}
        for e in self.experiments:
            a = int(assign(e, np.array([user_id]))[0])
            if a >= 0:
                out[e.name] = e.arms[a].name
        return out

    def overrides_for(self, user_id: int) -> tuple[dict[str, Any], dict[str, str]]:
        """(the merged config overrides to serve the user with, their assignments)."""
        chosen = self.assignments(user_id)
        trees = [e.arm(chosen[e.name]).overrides for e in self.experiments if e.name in chosen]
        return merge_trees(*trees), chosen

    def serve(self, engine: Any, user_id: int, n: int = 35, session_id: int | None = None, **kwargs: Any):
        """`engine.recommend` under the user's arms; the exposure is logged before the page is returned.
        Returns (TimelineResponse, {experiment: arm})."""
        overrides, chosen = self.overrides_for(user_id)
        page = engine.recommend(user_id, n=n, overrides=overrides or None, **kwargs)
        self.log_exposure(chosen, user_id, int(kwargs.get("now") or engine.now), len(page.items), session_id)
        return page, chosen

    def log_exposure(self, chosen: dict[str, str], user_id: int, t: int, items: int,
                     session_id: int | None = None) -> None:
        if chosen and self.log is not None:
            sid = next(self._sessions) if session_id is None else session_id
            self.log.log_exposures([(name, arm, int(user_id), int(t), int(sid), int(items))
                                    for name, arm in chosen.items()])

    def record(self, user_id: int, post_id: int, kind: str, t: int, value: float = 1.0) -> None:
        """An outcome event (impression or engagement) for the analysis."""
        if self.log is not None:
            self.log.log_events([(int(user_id), int(post_id), kind, int(t), float(value))])
