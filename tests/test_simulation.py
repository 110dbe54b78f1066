"""A small closed-loop simulation on the tiny world: arms served side by side, actions from the
ground truth, new posts, the report, the experiment log and the feedback dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foryou.config import ForYouConfig, apply_overrides, parse_overrides
from foryou.data.manifest import read_manifest
from foryou.data.state import models_dir, state_dir
from foryou.data.world import GroundTruth
from foryou.experiments import Experiment, ExperimentLog
from foryou.experiments.analysis import analyse, user_table
from foryou.simulation import Simulation, SimulationConfig
from foryou.simulation.arrivals import draw_arrivals, extend_truth
from foryou.simulation.report import write_json, write_report
from foryou.simulation.runner import settings

RANDOM = {"timeline": {"exploration": {"strategy": "random"}}}


def test_arrivals_are_known_to_the_extended_truth(tiny_world_dir):
    truth = GroundTruth.load(tiny_world_dir)
    start = read_manifest(tiny_world_dir).time_range[1] + 1
    a = draw_arrivals(tiny_world_dir, truth, start, 2, seed=0)
    per_day = read_manifest(tiny_world_dir).counts["posts"] / 7
    assert 0.3 * per_day < len(a) / 2 < 1.5 * per_day and np.all(np.diff(a.created_at) >= 0)
    assert a.post_id[0] == truth.posts.post_id.max() + 1
    ext = extend_truth(truth, a)
    u = np.zeros(len(a), np.int64)
    p = ext.post_rows(a.post_id)
    assert np.all(ext.probabilities_rows(u, p, a.created_at - 1)["like"] == 0)  # not yet created
    assert np.all(ext.probabilities_rows(u, p, a.created_at + 60)["like"] > 0)


def test_simulation_settings_come_from_the_config_tree():
    """`--set simulation.…` reaches the loop; the fields the caller sets (the CLI's options) win."""
    tree = apply_overrides(ForYouConfig(), parse_overrides([
        "simulation.behaviour.stop_base=0.3", "simulation.regret_share=0.5", "simulation.days=9",
        "simulation.page_size=20", "monitoring.drift.psi_alert=0.4"]))
    s = settings(SimulationConfig(days=2, seed=4), tree)
    assert (s.days, s.seed, s.regret_share, s.page_size) == (2, 4, 0.5, 20)
    assert s.behaviour.stop_base == 0.3 and s.behaviour.stop_engaged == 0.04  # a sub-tree merges
    assert settings(None, tree) == tree.simulation
    assert settings(SimulationConfig(), ForYouConfig()) == SimulationConfig()  # defaults: today's behaviour
    assert tree.monitoring.drift.psi_alert == 0.4 and ForYouConfig().monitoring.drift.psi_alert == 0.25
    with pytest.raises(ValueError, match="stop_base"):
        apply_overrides(ForYouConfig(), parse_overrides(["simulation.behaviour.stop_base=2"]))


@pytest.mark.slow
def test_simulation_on_the_tiny_world(tiny_world_dir, tmp_path):
    exp = Experiment(name="bad", arms=[{"name": "control"}, {"name": "random", "overrides": RANDOM}])
    sim = Simulation(tiny_world_dir, SimulationConfig(days=2, seed=1, regret_share=1.0), experiment=exp,
                     out=tmp_path / "sim")
    r = sim.run()
    assert r.arms == ["control", "random"] and r.summary["new_posts"] > 0
    for arm in r.arms:
        d = r.daily[arm]
        assert len(d["expected_utility"]) == len(d["realised_utility"]) == 2 and min(d["sessions"]) > 0
        assert "utility" not in d  # two utilities, named apart (they can move in opposite directions)
        assert min(d["regret"]) >= 0 and 0 <= min(d["creator_gini"]) <= max(d["creator_gini"]) <= 1
        assert max(d["new_post_share"]) > 0  # new posts are served
    # The random arm is worse against the oracle.
    assert np.mean(r.daily["random"]["regret"]) > np.mean(r.daily["control"]["regret"])
    for arm in r.arms:  # cumulative regret with intervals from resampling users
        for name in ("regret", "new_post_regret"):
            c = r.regret["arms"][arm][name]
            assert c["low"] <= c["cumulative"] <= c["high"] and c["slots"] > 0
        assert r.regret["arms"][arm]["regret"]["cumulative"] == pytest.approx(r.daily[arm]["cumulative_regret"][-1],
                                                                              abs=1e-4)
    assert r.regret["vs_control"]["random"]["regret"]["low"] > 0  # random ranking loses, beyond the noise
    assert r.experiment["srm"]["p"] > 0.001
    assert {c["metric"] for c in r.experiment["comparisons"]} == {"utility", "engagement_rate", "negative_rate",
                                                                   "session_depth"}
    assert r.drift[-1]["features"] and r.drift[-1]["predictions"]
    # The same analysis from the durable log.
    log = ExperimentLog(tmp_path / "sim" / "experiment_log.sqlite")
    logged = analyse(exp, user_table(log, exp))
    assert logged["users"] == r.experiment["users"]
    assert logged["arms"][0]["impressions"] == r.experiment["arms"][0]["impressions"]
    html = write_report(r, tmp_path / "report.html").read_text()
    assert "data:image/png;base64" in html and "significance" in html
    assert "<th>expected_utility</th><th>realised_utility</th>" in html  # the per-arm table names both
    assert "<td>utility</td>" not in html and "<td>realised_utility</td>" in html  # the experiment's is realised
    saved = json.loads(write_json(r, tmp_path / "results.json").read_text())
    assert {"expected_utility", "realised_utility"} <= set(saved["daily"]["control"])
    # Feedback → a valid dataset that training can read.
    from foryou.data.validate import validate_dir

    out = sim.write_feedback(tmp_path / "feedback")
    assert validate_dir(out) == []
    m = read_manifest(out)
    assert m.counts["impressions"] > read_manifest(tiny_world_dir).counts["impressions"]
    assert m.counts["posts"] == read_manifest(tiny_world_dir).counts["posts"] + sim._published


@pytest.mark.slow
def test_nightly_retraining_serves_the_retrained_heavy_ranker(tiny_world_dir, tmp_path):
    sim = Simulation(tiny_world_dir, SimulationConfig(days=2, seed=2, user_share=0.3, retrain=True),
                     out=tmp_path / "sim")
    assert "heavy_ranker" not in sim.engine.state.models  # the tiny world has no trained models
    r = sim.run()
    assert [n["day"] for n in r.summary["retrained"]] == [1]
    assert r.summary["engine_models"]["heavy_ranker"].endswith("retrained after day 1")
    assert (models_dir(state_dir(tmp_path / "sim" / "feedback")) / "heavy_ranker").is_dir()
    model = sim.engine.state.models["heavy_ranker"]
    page = sim.engine.recommend(int(sim.users[sim.sim_rows[0]]), now=r.start + 2 * 86_400)
    assert model.version.endswith("v1") and page.items
    assert page.models["heavy_ranker"] == r.summary["engine_models"]["heavy_ranker"]
    # Dwell events reach the engine (they used to be held back): the overlay counted every one.
    dwell = [p for _, p, k, _, _ in sim.engagements if k == "dwell"]
    assert dwell and sim.engine.state.overlay.counts["dwell"].sum() >= len(dwell)
