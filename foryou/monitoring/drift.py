"""Drift between a reference sample (training data, or a reference window of live traffic) and live
traffic: the population stability index over the reference's deciles and the two-sample
Kolmogorov-Smirnov test (scipy), with thresholds. Alerts are logged (JSON lines) and counted, and the
values are set on prometheus gauges.

Rules of thumb (`monitoring.drift` in the config tree): PSI < 0.1 stable, 0.1–0.25 warn, ≥ 0.25 alert;
KS alerts when its statistic ≥ 0.1 with p < 0.01 (with thousands of rows any tiny shift is
"significant", so the statistic, not the p-value alone, decides).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy import stats

from foryou.config import DriftThresholds
from foryou.monitoring import gauges

log = logging.getLogger("foryou.monitoring")


def psi(reference: np.ndarray, live: np.ndarray, bins: int = 10, eps: float = 1e-4) -> float:
    """Σ (live% − ref%)·ln(live% / ref%) over the reference's quantile bins (ties merged)."""
    ref, cur = np.asarray(reference, np.float64), np.asarray(live, np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
    r, c = np.maximum(r, eps), np.maximum(c, eps)
    return float(np.sum((c - r) * np.log(c / r)))


class DriftMonitor:
    """Reference columns by name; `check(live)` compares each live column with its reference."""

    def __init__(self, reference: dict[str, np.ndarray], kind: str = "feature",
                 thresholds: DriftThresholds | None = None):
        self.reference = {k: np.asarray(v, np.float64) for k, v in reference.items()}
        self.kind = kind
        self.thresholds = thresholds or DriftThresholds()

    def check(self, live: dict[str, np.ndarray], publish: bool = True) -> dict[str, dict[str, Any]]:
        th = self.thresholds
        out: dict[str, dict[str, Any]] = {}
        for name, ref in self.reference.items():
            cur = np.asarray(live.get(name, ()), np.float64)
            if len(cur) == 0 or len(ref) == 0:
                continue
            p = psi(ref, cur)
            ks = stats.ks_2samp(ref, cur)
            level = "ok"
            if p >= th.psi_alert or (ks.statistic >= th.ks_stat and ks.pvalue < th.ks_p):
                level = "alert"
            elif p >= th.psi_warn:
                level = "warn"
            out[name] = {"psi": p, "ks": float(ks.statistic), "ks_p": float(ks.pvalue), "level": level,
                         "reference_mean": float(ref.mean()), "live_mean": float(cur.mean())}
            if publish:
                psi_g, ks_g = ((gauges.FEATURE_PSI, gauges.FEATURE_KS) if self.kind == "feature"
                               else (gauges.PREDICTION_PSI, gauges.PREDICTION_KS))
                label = {"feature": name} if self.kind == "feature" else {"head": name}
                psi_g.labels(**label).set(p)
                ks_g.labels(**label).set(float(ks.statistic))
            if level != "ok":
                gauges.DRIFT_ALERTS.labels(kind=self.kind, name=name, level=level).inc()
                log.warning("drift", extra={"kind": self.kind, "column": name, "level": level, "psi": round(p, 4),
                                            "ks": round(float(ks.statistic), 4)})
        return out
