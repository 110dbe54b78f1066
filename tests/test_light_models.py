"""Logistic regression, the light ranker and the learned RealGraph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foryou.data.split import history
from foryou.features import FEATURE_NAMES, FeatureStore
from foryou.graph.realgraph import RealGraph
from foryou.models.logistic import LogisticRegression, logistic_from_tensors, predict_proba
from foryou.training.heavy_ranker import build_rows, split_windows
from foryou.training.light_models import (
    LIGHT_FEATURES,
    light_labels,
    realgraph_coefficients,
    train_light_ranker,
    train_realgraph,
)
from foryou.training.logistic import fit_logistic
from foryou.training.metrics import auc
from foryou.vocab import RANKER_HEADS

ENOUGH = 20  # positives needed before an AUC is asserted on the tiny world


@pytest.fixture(scope="module")
def setup(tiny_world):
    ds = tiny_world.dataset
    windows = split_windows(ds)
    store = FeatureStore(history(ds, ds.manifest.time_range[1] + 1))
    rows = [build_rows(ds, store, w) for w in windows]
    return ds, store, windows, rows


@pytest.fixture(scope="module")
def trained(setup):
    ds, store, windows, rows = setup
    return {**train_light_ranker(*rows, store), "realgraph": train_realgraph(ds, windows)}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _check_auc(m: dict) -> None:
    assert "auc" in m and "positives" in m
    if m["positives"] >= ENOUGH and m["rows"] - m["positives"] >= ENOUGH:
        assert m["auc"] > 0.55, m
    elif m["positives"] == 0:
        assert np.isnan(m["auc"])


def _check_fit(fit: dict, name: str) -> None:
    """The fit's record is real: it took time, saw rows, iterated, and moved the loss down from its
    all-zero start (p = 0.5 everywhere: BCE = log 2)."""
    assert isinstance(fit["seconds"], float) and fit["seconds"] > 0, (name, fit)
    assert fit["rows"] > 0 and fit["iterations"] >= 1 and fit["evaluations"] >= fit["iterations"], (name, fit)
    assert 0 < fit["loss"] < np.log(2), (name, fit)


def _entropy(p: float) -> float:
    """The training loss of the best constant prediction (the base rate p), in nats."""
    return float(-(p * np.log(p) + (1 - p) * np.log1p(-p)))


# -- the module ------------------------------------------------------------------------------------


def test_fit_logistic_learns_weights_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 4)).astype(np.float32) * [1, 10, 0.1, 1] + [0, 5, -2, 0]
    x[:, 3] = 1.0  # a constant column must not break standardisation
    z = 1.5 * x[:, 0] - 0.2 * x[:, 1] - 1.0
    y = (rng.random(5000) < 1 / (1 + np.exp(-z))).astype(np.float32)
    m1, info = fit_logistic(x, y, l2=0.0)
    m2, _ = fit_logistic(x, y, l2=0.0)
    assert _same(m1.state_dict(), m2.state_dict())
    assert info["rows"] == 5000 and info["iterations"] > 0
    w, b = m1.raw_coefficients()
    assert w[0, 0] == pytest.approx(1.5, abs=0.2) and w[0, 1] == pytest.approx(-0.2, abs=0.05)
    assert b[0] + 5 * w[0, 1] - 2 * w[0, 2] + w[0, 3] == pytest.approx(-1.0 + 5 * -0.2, abs=0.3)
    assert auc(y, predict_proba(m1, x)) > 0.75


def test_sample_weight_equals_duplicated_rows():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (rng.random(400) < 0.3).astype(np.float32)
    w = rng.integers(1, 4, size=400)
    weighted, _ = fit_logistic(x, y, w.astype(np.float32), l2=1e-3)
    dup, _ = fit_logistic(np.repeat(x, w, axis=0), np.repeat(y, w), l2=1e-3)
    # the standardisation differs (duplicates move mean/std); predictions must agree
    np.testing.assert_allclose(predict_proba(weighted, x), predict_proba(dup, x), atol=2e-3)


def test_empty_fit_and_round_trip():
    m, info = fit_logistic(np.empty((0, 3), np.float32), np.empty(0, np.float32))
    assert info["rows"] == 0 and predict_proba(m, np.zeros((2, 3), np.float32)).tolist() == [0.5, 0.5]
    m2 = LogisticRegression(3, 2)
    assert logistic_from_tensors(m2.state_dict()).n_outputs == 2


# -- labels -----------------------------------------------------------------------------------------


def test_light_labels_weighted_positive():
    y = np.zeros((4, len(RANKER_HEADS)), np.float32)
    y[1, RANKER_HEADS.index("click")] = 1
    y[2, RANKER_HEADS.index("click")] = y[2, RANKER_HEADS.index("reply")] = 1
    y[3, RANKER_HEADS.index("dwell")] = 1  # not a light-ranker head
    target, weight = light_labels(y)
    assert target.tolist() == [0, 1, 1, 0]
    assert weight.tolist() == pytest.approx([1, 0.3, 9, 1])


# -- trainers on the tiny world --------------------------------------------------------------------


def test_trainers_return_loadable_tensors_and_metrics(trained):
    assert set(trained) == {"light_ranker_in_network", "light_ranker_out_of_network", "realgraph"}
    for name, (tensors, config, metrics) in trained.items():
        module = LogisticRegression(len(config["features"]))
        module.load_state_dict(tensors)
        assert logistic_from_tensors(tensors).n_features == len(config["features"])
        m = metrics["test"]
        _check_auc(m)
        _check_fit(metrics["fit"], name)
    for name in ("light_ranker_in_network", "light_ranker_out_of_network"):
        cfg = trained[name][1]
        assert cfg["features"] == list(LIGHT_FEATURES) and set(cfg["features"]) <= set(FEATURE_NAMES)
        assert "in_network" not in cfg["features"]
    rg = trained["realgraph"][2]
    assert "heuristic_auc" in rg["test"] and rg["fit"]["rows"] == rg["train_pairs"]
    # An unweighted fit beats the best constant predictor on its own training rows: the model learned something.
    assert rg["fit"]["loss"] < _entropy(rg["train_positives"] / rg["fit"]["rows"]), rg


def test_trainers_are_deterministic(setup, trained):
    ds, store, windows, rows = setup
    again = {**train_light_ranker(*rows, store), "realgraph": train_realgraph(ds, windows)}
    for name, (tensors, _, _) in trained.items():
        assert _same(tensors, again[name][0]), name


def test_realgraph_coefficients_plug_into_realgraph(setup, trained):
    ds, _, windows, _ = setup
    tensors, config, _ = trained["realgraph"]
    t_end = windows[0].end
    coef = realgraph_coefficients(tensors)
    assert coef.model_dump() == pytest.approx(config["coefficients"])
    rg = RealGraph.build(history(ds, t_end), config["half_life_days"], coefficients=coef)
    user = int(np.argmax(np.diff(rg._f_indptr)))
    targets = rg.follows(user)
    expected = predict_proba(logistic_from_tensors(tensors), rg.features(user, targets, t_end).astype(np.float32))
    np.testing.assert_allclose(rg.weights(user, targets, t_end), expected, atol=1e-5)
