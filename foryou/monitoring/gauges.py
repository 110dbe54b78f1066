"""Prometheus gauges in the default registry, created once per process (the service's /metrics
serves the default registry, so anything set here is scraped)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FEATURE_PSI = Gauge("foryou_feature_psi", "Population stability index of a ranking feature, live vs training",
                    ["feature"])
FEATURE_KS = Gauge("foryou_feature_ks", "Kolmogorov-Smirnov statistic of a ranking feature, live vs training",
                   ["feature"])
PREDICTION_PSI = Gauge("foryou_prediction_psi", "PSI of a heavy-ranker head's predictions, live vs reference",
                       ["head"])
PREDICTION_KS = Gauge("foryou_prediction_ks", "KS statistic of a heavy-ranker head's predictions", ["head"])
DRIFT_ALERTS = Counter("foryou_drift_alerts", "Drift alerts raised", ["kind", "name", "level"])
EXPOSURE = Gauge("foryou_exposure", "Exposure / bias measures of served impressions",
                 ["measure"])
