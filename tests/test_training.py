"""Training the heavy ranker, the registry round trip into the engine, fallbacks, and no skew."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from foryou.config import ForYouConfig, HeavyRankerConfig, PhoenixConfig, TrainingConfig, apply_overrides
from foryou.data.dataset import Dataset
from foryou.data.lookup import rows_of
from foryou.data.split import history
from foryou.data.state import models_dir, state_dir
from foryou.features import FEATURE_NAMES, FeatureStore
from foryou.timeline.engine import RecommendationEngine
from foryou.training.pipeline import train_all
from foryou.vocab import RANKER_HEADS

FAST = ForYouConfig(training=TrainingConfig(heavy_ranker=HeavyRankerConfig(epochs=2, batch_size=2048),
                                            phoenix=PhoenixConfig(epochs=2, d_model=32, head_dim=16, history=15)))


@pytest.fixture(scope="module")
def trained(tiny_world_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("trained") / "w"
    shutil.copytree(tiny_world_dir, path, ignore=shutil.ignore_patterns(".serving", "models"))
    results = train_all(path, FAST)
    return path, results


def test_training_registers_a_model_that_beats_chance(trained):
    path, results = trained
    assert set(results) == {"realgraph", "light_ranker_in_network", "light_ranker_out_of_network", "heavy_ranker",
                            "phoenix", "phoenix_retrieval", "two_tower"}
    r = results["heavy_ranker"]
    assert r["version"] == 1
    for head in ("like", "click", "dwell"):
        m = r["test"][head]
        assert m["auc"] > 0.6 and m["ceiling_auc"] >= m["auc"] - 0.1, (head, m)
    manifest = json.loads((models_dir(state_dir(path)) / "heavy_ranker" / "v1" / "manifest.json").read_text())
    assert manifest["schema"] and manifest["dataset_fingerprint"] and manifest["metrics"]["test"]


def test_same_seed_gives_the_same_metrics(trained, tmp_path):
    path, results = trained
    again = tmp_path / "w"
    shutil.copytree(path, again, ignore=shutil.ignore_patterns(".serving", "models"))
    second = train_all(again, FAST)
    for model in ("heavy_ranker", "phoenix"):
        first = results[model]["test"]
        for head in first:
            for key in ("auc", "rce", "pr_auc"):
                a, b = first[head][key], second[model]["test"][head][key]
                assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, abs=1e-6), (model, head, key)


def test_engine_serves_the_promoted_model(trained):
    path, _ = trained
    auto = RecommendationEngine.open(path)  # both promoted: the slot's default takes Phoenix
    assert auto.model_versions()["heavy_ranker"] == "phoenix v1 (promoted) (ONNX Runtime)"
    auto.close()
    engine = RecommendationEngine.open(path, apply_overrides(ForYouConfig(), {"timeline": {"ranking": {
        "model": "masknet"}}}))
    versions = engine.model_versions()
    assert versions["heavy_ranker"] == "v1 (promoted) (ONNX Runtime)"
    assert versions["phoenix"] == "v1 (promoted) (ONNX Runtime)"
    assert versions["embedding_ann"] == "v1 (promoted)" and "two_tower" in engine.state.models
    assert versions["realgraph"] == "v1 (promoted)"
    assert versions["light_ranker"] == "in-network v1 (promoted); out-of-network v1 (promoted)"
    # the learned RealGraph replaced the heuristic coefficients, with negative actions kept negative
    rg = engine.state.realgraph.coefficients
    assert rg != type(rg)() and rg.block <= 0 and rg.mute <= 0
    page = engine.recommend(7, explain=True)
    assert page.models["heavy_ranker"] == "v1 (promoted) (ONNX Runtime)" and len(page.items) > 0
    # ONNX Runtime serves the eager network's probabilities
    from foryou.mixer import CandidateBatch
    from foryou.timeline.query import TimelineQuery

    model = engine.state.models["heavy_ranker"]
    rows = np.arange(min(300, len(model.store.post_id)))
    query = TimelineQuery(user_id=7, user_row=engine.state.index.user_row(7), now=engine.now, n=35)
    served = model.predict(query, CandidateBatch({"post_row": rows}))
    model.runtime = None
    eager = model.predict(query, CandidateBatch({"post_row": rows}))
    for head in served:
        np.testing.assert_allclose(served[head], eager[head], atol=1e-5)
    engine.close()


@pytest.mark.parametrize("damage", ["corrupt", "schema"])
def test_a_damaged_model_falls_back_with_a_clear_message(trained, tmp_path, damage):
    path, _ = trained
    copy = tmp_path / "w"
    shutil.copytree(path, copy)
    shutil.copytree(models_dir(state_dir(path)), models_dir(state_dir(copy)))
    shutil.rmtree(models_dir(state_dir(copy)) / "phoenix")  # else Phoenix takes the slot (MaskNet's fallback here)
    v1 = models_dir(state_dir(copy)) / "heavy_ranker" / "v1"
    if damage == "corrupt":
        (v1 / "weights.safetensors").write_bytes(b"\x00" * 64)
        expected = "corrupt"
    else:
        manifest = json.loads((v1 / "manifest.json").read_text())
        manifest["schema"] = "0123456789abcdef"
        (v1 / "manifest.json").write_text(json.dumps(manifest))
        expected = "input schema"
    engine = RecommendationEngine.open(copy)
    status = engine.model_versions()["heavy_ranker"]
    assert status.startswith(("corrupt:", "incompatible:")) and expected in status
    assert status.endswith("serving the fallback (heuristic)")
    assert "heavy_ranker" not in engine.state.models
    assert len(engine.recommend(7).items) > 0  # served by the heuristic
    engine.close()


def test_served_features_equal_offline_features(tiny_world_dir):
    """No training/serving skew: a candidate served at t has the features a training row at t gets."""
    ds = Dataset.load(tiny_world_dir)
    t = ds.manifest.split.valid_end
    engine = RecommendationEngine(ds, as_of=t)
    captured = {}
    scorer = next(s for sp in engine.pipeline.scoring_pipelines for s in sp.scorers if s.name == "heavy_ranker")
    original = scorer.score

    def spy(query, batch):
        captured["user_row"], captured["rows"] = query.user_row, batch["post_row"].copy()
        captured["x"] = engine.state.features.compute(np.full(len(batch), query.user_row), batch["post_row"],
                                                       query.now)
        return original(query, batch)

    scorer.score = spy
    engine.recommend(7)
    offline = FeatureStore(history(ds, ds.manifest.time_range[1] + 1))  # built from everything, queried at t
    post_ids = engine.state.index.post_id[captured["rows"]]
    user_id = engine.state.index.user_ids[captured["user_row"]]
    x_off = offline.compute(np.full(len(post_ids), rows_of(offline.user_ids, [user_id])[0]),
                            rows_of(offline.post_id, post_ids), t)
    assert captured["x"].shape == (len(post_ids), len(FEATURE_NAMES)) and len(post_ids) > 50
    np.testing.assert_allclose(captured["x"], x_off, rtol=0, atol=1e-6)
    engine.close()


def test_onnx_export_matches_eager_heavy_ranker():
    """The ONNX Runtime export gives the eager network's calibrated probabilities at any batch size."""
    from foryou.models.export import OnnxHeavyRanker, to_onnx
    from foryou.models.heavy_ranker import HeavyRankerNet

    torch.manual_seed(0)
    net = HeavyRankerNet(12, 5, blocks=2, block_dim=16, mlp_dim=16, tower_dim=8,
                         id_vocab=np.arange(100, 120), id_dim=4).eval()
    runtime = OnnxHeavyRanker(to_onnx(net))
    for n in (1, 7, 500):
        x = torch.randn(n, 12)
        topic = torch.randint(-1, 5, (n,))
        ids = torch.from_numpy(net.vocab_index(np.random.default_rng(n).integers(95, 125, (n, 2))))
        with torch.no_grad():
            expected = net(x, topic, ids).numpy()
        np.testing.assert_allclose(runtime(x.numpy(), topic.numpy(), ids.numpy()), expected, atol=1e-5)


def test_id_vocabulary_maps_unknown_ids_to_the_default_row():
    from foryou.models.heavy_ranker import HeavyRankerNet

    net = HeavyRankerNet(3, 2, id_vocab=np.array([30, 10, 20]), id_dim=4)
    np.testing.assert_array_equal(net.vocab_index(np.array([[10, 20], [30, 99]])), [[1, 2], [3, 0]])
    assert net.vocab_index(np.array([5])).tolist() == [0]
    assert HeavyRankerNet(3, 2).vocab_index(np.array([10])).tolist() == [0]  # no id embeddings: all default


def test_a_feature_constant_in_training_does_not_move_predictions():
    """is_repost / is_reply never vary in a log without reposts or replies; at serving time a repost
    must be scored as what it shows, not pushed by a 1/ε-scaled input the net never saw."""
    from foryou.config import HeavyRankerConfig
    from foryou.features import FEATURE_NAMES
    from foryou.models.export import OnnxHeavyRanker, to_onnx
    from foryou.training.heavy_ranker import Rows, train_heavy_ranker

    rng = np.random.default_rng(0)
    n, d = 2_000, len(FEATURE_NAMES)

    def rows() -> Rows:
        x = rng.normal(size=(n, d)).astype(np.float32)
        x[:, FEATURE_NAMES.index("is_repost")] = 0.0
        y = (rng.random((n, len(RANKER_HEADS))) < 1 / (1 + np.exp(-x[:, :1] * 2))).astype(np.float32)
        return Rows(np.zeros(n, np.int64), np.arange(n), np.arange(n), x, rng.integers(-1, 3, n), y,
                    rng.integers(1, 50, (n, 2)))

    cfg = HeavyRankerConfig(epochs=1, blocks=1, block_dim=8, mlp_dim=8, tower_dim=4, id_dim=2, batch_size=512)
    net, _ = train_heavy_ranker(rows(), rows(), 3, cfg)
    x = torch.randn(64, d)
    topic, ids = torch.zeros(64, dtype=torch.int64), torch.zeros((64, 2), dtype=torch.int64)
    flagged = x.clone()
    flagged[:, FEATURE_NAMES.index("is_repost")] = 1.0
    with torch.no_grad():
        np.testing.assert_array_equal(net(flagged, topic, ids).numpy(), net(x, topic, ids).numpy())
    runtime = OnnxHeavyRanker(to_onnx(net.eval()))
    np.testing.assert_allclose(runtime(flagged.numpy(), topic.numpy(), ids.numpy()),
                               runtime(x.numpy(), topic.numpy(), ids.numpy()), atol=1e-6)
