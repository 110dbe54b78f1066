from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY

from foryou.config import DriftThresholds, ForYouConfig, apply_overrides
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


def test_drift_thresholds_come_from_the_config_tree():
    rng = np.random.default_rng(1)
    ref, live = rng.normal(0, 1, 20_000), rng.normal(0.35, 1, 5000)
    assert ForYouConfig().monitoring.drift == DriftThresholds()  # the defaults: today's levels
    lenient = apply_overrides(ForYouConfig(), {"monitoring": {"drift": {"psi_warn": 0.5, "psi_alert": 0.9,
                                                                        "ks_stat": 0.5}}}).monitoring.drift
    assert DriftMonitor({"x": ref}).check({"x": live}, publish=False)["x"]["level"] != "ok"
    assert DriftMonitor({"x": ref}, thresholds=lenient).check({"x": live}, publish=False)["x"]["level"] == "ok"


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


def test_live_monitor_holds_a_bounded_window_and_a_fixed_reference():
    from foryou.monitoring.live import LiveMonitor

    rng = np.random.default_rng(0)
    users = np.arange(100, 600)
    m = LiveMonitor(users, rng.integers(0, 50, len(users)), window=300, reference=200)
    heads = ["like", "reply"]
    for k in range(3000):  # the first 40 pages are the reference; later ones drift upwards
        shift = 0.0 if k < 40 else 0.3
        m.observe(rng.choice(users, 10), rng.random(10) < 0.5, heads, rng.random((10, 2)) * 0.5 + shift)
    held = sum(len(p[0]) for p in m._pages)
    assert 300 <= held < 310 and sum(len(r) for r in m._reference) == 200  # bounded, however long it runs
    out = m.publish()
    assert out["exposure"]["impressions"] == 300
    assert all(v["level"] == "alert" and v["live_mean"] > v["reference_mean"] + 0.2
               for v in out["predictions"].values())
