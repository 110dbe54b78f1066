"""Drift and exposure of live traffic, for the service's /metrics.

Every served page is observed (its authors, in/out-of-network flags and each head's predicted
probability) into fixed-size windows; `publish()` — called when /metrics is scraped — sets the
`foryou_exposure{measure}` gauges over the latest window and the `foryou_prediction_psi/ks{head}`
gauges comparing the latest window of predictions with the first one this process served (its
reference; alerts are counted in `foryou_drift_alerts_total`). Feature drift against training rows
needs the training sample and stays with `foryou simulate`.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from foryou.monitoring.drift import DriftMonitor
from foryou.monitoring.exposure import ExposureMonitor


class LiveMonitor:
    def __init__(self, user_ids: np.ndarray, author_followers: np.ndarray, window: int = 10_000,
                 reference: int = 5_000):
        self.user_ids = np.asarray(user_ids)  # sorted: author id → row
        self.exposure = ExposureMonitor(author_followers)
        self.window, self.reference_size = window, reference
        self._authors = np.zeros(window, np.int64)
        self._in_network = np.zeros(window, bool)
        self._predictions: dict[str, np.ndarray] = {}
        self._reference: dict[str, list[np.ndarray]] = {}
        self._n = 0  # items observed in all
        self._lock = threading.Lock()  # pages are observed from request threads

    def observe(self, author_ids: np.ndarray, in_network: np.ndarray, predictions: dict[str, np.ndarray]) -> None:
        rows = np.searchsorted(self.user_ids, np.asarray(author_ids, np.int64))
        known = rows < len(self.user_ids)
        k = int(known.sum())
        if k == 0:
            return
        rows, flags = rows[known], np.asarray(in_network, bool)[known]
        with self._lock:
            at = (self._n + np.arange(k)) % self.window
            self._authors[at], self._in_network[at] = rows, flags
            for head, p in predictions.items():
                values = np.asarray(p, np.float64)[known]
                self._predictions.setdefault(head, np.full(self.window, np.nan))[at] = values
                ref = self._reference.setdefault(head, [])
                taken = sum(len(r) for r in ref)
                if taken < self.reference_size:
                    ref.append(values[:self.reference_size - taken])
            self._n += k

    def publish(self) -> dict[str, Any]:
        """Set the gauges from the latest window; returns what was set."""
        with self._lock:
            m = min(self._n, self.window)
            authors, in_net = self._authors[:m].copy(), self._in_network[:m].copy()
            live = {h: p[:m][np.isfinite(p[:m])] for h, p in self._predictions.items()}
            reference = {h: np.concatenate(r) for h, r in self._reference.items() if r}
            full = self._n >= self.reference_size + self.window // 2
        self.exposure.reset()
        self.exposure.observe(authors, in_net)
        out: dict[str, Any] = {"exposure": self.exposure.report(publish=True)}
        if full:  # drift once the window holds traffic served after the reference was taken
            out["predictions"] = DriftMonitor(reference, kind="prediction").check(live)
        return out
