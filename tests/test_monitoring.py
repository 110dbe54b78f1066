from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY

from foryou.monitoring.drift import DriftMonitor, psi
from foryou.monitoring.exposure import ExposureMonitor, gini


def test_psi_and_ks_drift_levels():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 20_000)
    assert psi(ref, rng.normal(0, 1, 20_000)) < 0.01
    assert psi(ref, rng.normal(1, 1, 20_000)) > 0.25
    mon = DriftMonitor({"stable": ref, "shifted": ref, "slightly": ref}, kind="feature")
    out = mon.check({"stable": rng.normal(0, 1, 5000), "shifted": rng.normal(1.0, 1, 5000),
                     "slightly": rng.normal(0.35, 1, 5000)})
    assert out["stable"]["level"] == "ok" and out["shifted"]["level"] == "alert"
    assert out["slightly"]["level"] in ("warn", "alert") and out["slightly"]["psi"] > 0.1
    assert REGISTRY.get_sample_value("foryou_feature_psi", {"feature": "shifted"}) == pytest.approx(
        out["shifted"]["psi"])
    assert REGISTRY.get_sample_value("foryou_drift_alerts_total", {"kind": "feature", "name": "shifted",
                                                                   "level": "alert"}) >= 1


def test_gini_known_values():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.r_[np.zeros(99), 1.0]) == pytest.approx(0.99)
    assert gini(np.array([1, 2, 3, 4.0])) == pytest.approx(0.25)


def test_exposure_monitor_popular_and_network_shares():
    followers = np.r_[np.full(10, 1000), np.arange(990)]  # 1 % popular = the top 10
    mon = ExposureMonitor(followers)
    mon.observe(np.r_[np.zeros(50, int), np.arange(500, 550)], np.r_[np.ones(30, bool), np.zeros(70, bool)])
    r = mon.report(publish=True)
    assert r["popular_share"] == pytest.approx(0.5) and r["out_of_network_share"] == pytest.approx(0.7)
    assert r["authors_exposed"] == 51 and 0 < r["creator_gini"] < 1
    assert REGISTRY.get_sample_value("foryou_exposure", {"measure": "popular_share"}) == pytest.approx(0.5)
