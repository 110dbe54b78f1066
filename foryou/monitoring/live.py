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
from collections import deque
from typing import Any

import numpy as np

from foryou.config import MonitoringConfig
from foryou.monitoring.drift import DriftMonitor
from foryou.monitoring.exposure import ExposureMonitor


class LiveMonitor:
    """Pages are only appended on the request path (a few microseconds); the numbers are computed when
    `publish()` is called."""

    def __init__(self, user_ids: np.ndarray, author_followers: np.ndarray, window: int | None = None,
                 reference: int | None = None, config: MonitoringConfig | None = None):
        """`window` / `reference`: served posts held (default: the config's live_window / live_reference)."""
        self.config = cfg = config or MonitoringConfig()
        self.user_ids = np.asarray(user_ids)  # sorted: author id → row
        self.exposure = ExposureMonitor(author_followers, cfg.popular_top, cfg.tail_bottom)
        self.window = window or cfg.live_window
        self.reference_size = reference or cfg.live_reference
        self._pages: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque()  # the latest ≥ window posts
        self._in_window = 0
        self._reference: list[np.ndarray] = []  # the first ≥ reference posts' predictions
        self._in_reference = 0
        self.heads: list[str] = []
        self._lock = threading.Lock()  # pages are observed from request threads

    def observe(self, author_ids: np.ndarray, in_network: np.ndarray, heads: list[str],
                predictions: np.ndarray) -> None:
        """One served page: its authors, in-network flags and predictions (posts × heads)."""
        with self._lock:
            if heads != self.heads:  # another model's heads: start over
                self.heads = list(heads)
                self._pages.clear()
                self._reference, self._in_window, self._in_reference = [], 0, 0
            self._pages.append((author_ids, in_network, predictions))
            self._in_window += len(author_ids)
            while self._in_window - len(self._pages[0][0]) >= self.window:
                self._in_window -= len(self._pages.popleft()[0])
            if self._in_reference < self.reference_size:
                self._reference.append(predictions)
                self._in_reference += len(predictions)

    def publish(self) -> dict[str, Any]:
        """Set the gauges from the latest window; returns what was set."""
        with self._lock:
            pages, reference, heads = list(self._pages), list(self._reference), self.heads
            drift_ready = self._in_reference >= self.reference_size and len(pages) > len(reference)
        if not pages:
            return {}
        authors = np.concatenate([p[0] for p in pages])[-self.window:]
        in_net = np.concatenate([p[1] for p in pages])[-self.window:]
        rows = np.searchsorted(self.user_ids, authors)
        known = rows < len(self.user_ids)
        self.exposure.reset()
        self.exposure.observe(rows[known], in_net[known])
        out: dict[str, Any] = {"exposure": self.exposure.report(publish=True)}
        if drift_ready:  # once the window holds traffic served after the reference was taken
            live = np.concatenate([p[2] for p in pages])[-self.window:]
            ref = np.concatenate(reference)[:self.reference_size]
            monitor = DriftMonitor({h: ref[:, j] for j, h in enumerate(heads)}, kind="prediction",
                                   thresholds=self.config.drift)
            out["predictions"] = monitor.check({h: live[:, j] for j, h in enumerate(heads)})
        return out
