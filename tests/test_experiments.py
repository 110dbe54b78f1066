from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from foryou.experiments import (
    ActiveExperiments,
    Experiment,
    ExperimentError,
    ExperimentLog,
    ExperimentStore,
    assign,
    create_experiment,
    get_experiment_results,
)
from foryou.experiments.analysis import (
    UserTable,
    analyse,
    minimum_detectable_effect,
    sample_ratio,
    two_proportion,
    welch,
)

UCB = {"timeline": {"exploration": {"strategy": "ucb"}}}
USERS = np.arange(1, 40_001)


def _exp(name="e", **kw) -> Experiment:
    arms = kw.pop("arms", [{"name": "control"}, {"name": "ucb", "overrides": UCB}])
    return Experiment(name=name, arms=arms, **kw)


def test_assignment_is_deterministic_and_order_free():
    e = _exp()
    a = assign(e, USERS)
    assert np.array_equal(a, assign(e, USERS))
    perm = np.random.default_rng(0).permutation(len(USERS))
    assert np.array_equal(assign(e, USERS[perm]), a[perm])
    assert int(assign(e, 1234)[0]) == int(a[1233])
    assert not np.array_equal(a, assign(_exp(salt="other"), USERS))  # the salt reshuffles


@pytest.mark.parametrize("weights", [(1, 1), (1, 1, 1), (3, 1), (2, 1, 1)])
def test_assignment_is_balanced_chi_square(weights):
    e = _exp(arms=[{"name": f"a{i}", "weight": w} for i, w in enumerate(weights)])
    counts = np.bincount(assign(e, USERS), minlength=len(weights))
    expected = len(USERS) * np.array(weights) / sum(weights)
    assert stats.chisquare(counts, expected).pvalue > 0.001


def test_traffic_share_and_layers():
    a = _exp("a", traffic=0.3)
    b = _exp("b", traffic=0.5, offset=0.3)
    c = _exp("c", layer="ranking", arms=[{"name": "x"}, {"name": "y"}])
    ia, ib, ic = assign(a, USERS), assign(b, USERS), assign(c, USERS)
    assert abs((ia >= 0).mean() - 0.3) < 0.01 and abs((ib >= 0).mean() - 0.5) < 0.01
    assert not np.any((ia >= 0) & (ib >= 0))  # one layer: never the same user
    # Different layers are independent: c's arms are spread evenly over a's arms.
    inside = ia >= 0
    table = np.array([[np.sum((ia[inside] == i) & (ic[inside] == j)) for j in range(2)] for i in range(2)])
    assert stats.chi2_contingency(table).pvalue > 0.001
    assert np.all(assign(a.model_copy(update={"status": "stopped"}), USERS) == -1)


def test_srm_detected_when_injected():
    arm = assign(_exp(), USERS)
    ok = sample_ratio(np.bincount(arm), [1, 1])
    assert not ok["mismatch"]
    # Lose 5 % of the treatment's users (e.g. a logging bug on one arm only).
    drop = (arm == 1) & (np.random.default_rng(0).random(len(arm)) < 0.05)
    bad = sample_ratio(np.bincount(arm[~drop]), [1, 1])
    assert bad["mismatch"] and bad["p"] < 1e-6


def test_statistics_match_scipy():
    rng = np.random.default_rng(3)
    c, t = rng.normal(1.0, 1.0, 300), rng.normal(1.2, 2.0, 200)
    r = welch(c, t)
    ref = stats.ttest_ind(t, c, equal_var=False)
    assert r["p"] == pytest.approx(ref.pvalue, rel=1e-9) and r["t"] == pytest.approx(ref.statistic, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    z = two_proportion(120, 1000, 150, 1000)
    chi2, p, _, _ = stats.chi2_contingency([[120, 880], [150, 850]], correction=False)
    assert z["z"] ** 2 == pytest.approx(chi2, rel=1e-9) and z["p"] == pytest.approx(p, rel=1e-9)
    assert z["diff"] == pytest.approx(0.03)
    # MDE: the effect a z-test detects with 80 % power at α = 0.05.
    mde = minimum_detectable_effect(1.0, 400, 1.0, 400)
    se = np.sqrt(2 / 400)
    assert stats.norm.sf(stats.norm.ppf(0.975) - mde / se) == pytest.approx(0.8, abs=1e-6)


def test_analysis_detects_effect_and_not_noise():
    rng = np.random.default_rng(0)
    n = 4000
    arm = rng.integers(0, 2, n)
    imp = rng.poisson(30, n) + 1
    pos = rng.binomial(imp, np.where(arm == 1, 0.12, 0.10))
    table = UserTable(arm=arm, sessions=np.full(n, 3.0), impressions=imp.astype(float), positives=pos.astype(float),
                      negatives=np.zeros(n), realised_utility=pos * 1.0)
    r = analyse(_exp(primary_metric="engagement_rate"), table)
    primary = next(c for c in r["comparisons"] if c["primary"])
    assert primary["significant"] and primary["lift"] == pytest.approx(0.2, abs=0.05)
    assert primary["ci_low"] > 0 and r["decision"] == {"ucb": "better"}
    aa = analyse(_exp(primary_metric="engagement_rate"), UserTable(
        arm=arm, sessions=table.sessions, impressions=table.impressions,
        positives=rng.binomial(imp, 0.1).astype(float), negatives=table.negatives,
        realised_utility=table.realised_utility))
    assert not next(c for c in aa["comparisons"] if c["primary"])["significant"]


def test_store_rules(tmp_path):
    store = ExperimentStore(tmp_path)
    first = store.create(_exp("a", traffic=0.6))
    second = store.create(_exp("b", traffic=0.4, arms=[{"name": "x"}, {"name": "y", "overrides": UCB}]))
    assert (first.offset, second.offset) == (0.0, 0.6)
    with pytest.raises(ExperimentError, match="already exists"):
        store.create(_exp("a"))
    with pytest.raises(ExperimentError, match="left"):
        store.create(_exp("c", traffic=0.1))
    with pytest.raises(ExperimentError, match="left"):  # a full layer takes not even a sliver (the fuzzer found it)
        store.create(_exp("c", traffic=1e-12))
    with pytest.raises(ExperimentError, match=r"timeline\.exploration\.strategy"):
        store.create(_exp("d", layer="other"))  # overlapping experiments may not change the same key
    with pytest.raises(ValueError, match="extra"):
        _exp("e", arms=[{"name": "x"}, {"name": "y", "overrides": {"timeline": {"nope": 1}}}])
    age = {"timeline": {"heuristics": {"light_ranker": {"age": False}}}}  # a number written as a boolean (the fuzzer)
    with pytest.raises(ValueError, match="age is a number, not false"):
        _exp("f", arms=[{"name": "x"}, {"name": "y", "overrides": age}])
    assert [e.name for e in ExperimentStore(tmp_path).list()] == ["a", "b"]
    store.set_status("a", "stopped")
    assert [e.name for e in store.running()] == ["b"]  # the parsed list follows the file: a write is seen at once
    assert [e.status for e in ExperimentStore(tmp_path).list()] == ["stopped", "running"]


class _FakeEngine:
    now = 1000

    def __init__(self):
        self.calls = []

    def recommend(self, user_id, n=35, overrides=None, **kw):
        self.calls.append(overrides)

        class Page:
            items = [object()] * 3
        return Page()


def test_exposure_logged_at_serve_time_and_results(tmp_path):
    create_experiment(tmp_path, {"name": "x", "arms": [{"name": "control"}, {"name": "ucb", "overrides": UCB}]})
    active = ActiveExperiments.open(tmp_path)
    engine = _FakeEngine()
    for u in range(1, 201):
        _, chosen = active.serve(engine, u, session_id=u)
        assert engine.calls[-1] == (UCB if chosen["x"] == "ucb" else None)
        for p in range(3):
            active.record(u, p, "impression", 1001)
        if chosen["x"] == "ucb":
            active.record(u, 0, "reply", 1002)
    r = get_experiment_results(tmp_path, "x")
    assert r["users"] == 200 and r["arms"][0]["impressions"] == 3 * r["arms"][0]["users"]
    util = next(c for c in r["comparisons"] if c["metric"] == "utility")
    assert util["treatment"] == pytest.approx(13.5 / 3) and util["control"] == 0.0
    log = ExperimentLog(ExperimentStore(tmp_path).log_path)
    assert log.query("SELECT COUNT(*) FROM exposures")[0][0] == 200


def test_http_router(tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from foryou.service.routes.experiments import router

    app = FastAPI()
    app.state.dataset = tmp_path
    app.include_router(router)
    client = TestClient(app)
    body = {"name": "h", "arms": {"a": {}, "b": {"overrides": UCB}}}
    created = client.post("/v1/experiments", json=body)
    assert created.status_code == 200
    assert [(a["name"], a["overrides"]) for a in created.json()["arms"]] == [("a", {}), ("b", UCB)]
    assert client.post("/v1/experiments", json=body).status_code == 409
    assert client.post("/v1/experiments", json={"name": "bad", "arms": {"a": {}}}).status_code == 422
    bad_key = {"name": "k", "arms": {"a": {}, "b": {"overrides": {"timeline": {"nope": 1}}}}}
    assert client.post("/v1/experiments", json=bad_key).status_code == 422
    assert [e["name"] for e in client.get("/v1/experiments").json()] == ["h"]
    a = client.get("/v1/experiments/assignments/7").json()
    assert a["assignments"]["h"] in ("a", "b")
    assert client.get("/v1/experiments/h/results").status_code == 404  # no log yet
    assert client.post("/v1/experiments/h/stop").json()["status"] == "stopped"
