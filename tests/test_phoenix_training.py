"""Phoenix trained and served: point-in-time rows, a tiny-world fit that beats popularity, scores that do not
depend on the other candidates, live events that move the next page, and the ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from foryou.config import ForYouConfig, PhoenixConfig
from foryou.data.dataset import Dataset
from foryou.data.split import history
from foryou.features import FeatureStore
from foryou.training import phoenix as ph
from foryou.training.heavy_ranker import split_windows
from foryou.training.metrics import auc
from foryou.vocab import RANKER_HEADS

FAST = PhoenixConfig(epochs=6, batch_size=32, lr=3e-3, d_model=32, head_dim=16, ffn=64, width=16, history=31,
                     post_buckets=20_000, max_candidates=24, borrowed_negatives=8)


@pytest.fixture(scope="module")
def tiny(tiny_world_dir: Path) -> tuple[Dataset, FeatureStore]:
    d = Dataset.load(tiny_world_dir)
    return d, FeatureStore(history(d, d.manifest.time_range[1] + 1))


@pytest.fixture(scope="module")
def trained(tiny: tuple[Dataset, FeatureStore]) -> tuple[ph.PhoenixRanker, list[ph.PhoenixRows]]:
    d, store = tiny
    windows = split_windows(d)
    rows = [ph.build_rows(d, store, w, FAST, impressions=True, known_until=windows[0].end) for w in windows]
    model, fit = ph.train_phoenix(rows[0], rows[1], FAST)
    assert fit["epochs"] >= 1 and fit["train_rows"] == len(rows[0]) > 100
    assert 0 < fit["unknown_post_share"] < 1  # validation meets new posts: training drops post ids as often
    return model, rows


def test_posts_newer_than_the_training_window_are_unknown_ids(trained, tiny) -> None:
    from foryou.timeline.loading import TrainedPhoenix

    model, rows = trained
    d, store = tiny
    end = split_windows(d)[0].end
    assert int(model.known_until) == end
    assert TrainedPhoenix(model, store, "v0", FAST.history, ph.context_features(FAST), 86_400).known_until == end
    cand = rows[2].cand
    content = store.content_row[np.maximum(cand, 0)]
    new = store.created_at[content] >= end
    expected = np.where((cand >= 0) & ~new, store.post_id[content], -1)
    np.testing.assert_array_equal(rows[2].inputs.arrays["cand_post"], expected)
    assert ((cand >= 0) & new).any() and ((cand >= 0) & ~new).any()


def test_a_later_event_changes_no_training_row(tiny: tuple[Dataset, FeatureStore]) -> None:
    d, store = tiny
    train = split_windows(d)[0]
    before = ph.build_rows(d, store, train, FAST, impressions=True)
    e = d.engagements
    # the most active viewer likes a post they never saw, after the train window: nothing of train may move
    user = int(np.bincount(before.user_row).argmax())
    seen = set(before.cand[before.user_row == user].ravel().tolist())
    post = next(int(p) for p in range(len(store.post_id)) if p not in seen)
    late = pa.table({"user_id": [int(store.user_ids[user])], "post_id": [int(store.post_id[post])], "kind": ["like"],
                     "created_at": [int(train.end or 0) + 60], "value": pa.array([1.0], pa.float32())},
                    schema=e.schema)
    d2 = Dataset({**d.tables, "engagements": pa.concat_tables([e, late])}, d.manifest, d.path)
    store2 = FeatureStore(history(d2, d2.manifest.time_range[1] + 1))
    assert len(store2.sequences.post) == len(store.sequences.post) + 1  # the event is there...
    after = ph.build_rows(d2, store2, train, FAST, impressions=True)
    for name, a in before.inputs.arrays.items():  # ...and no training row reads it
        np.testing.assert_array_equal(a, after.inputs.arrays[name], err_msg=name)
    np.testing.assert_array_equal(before.y, after.y)
    # while a window after it does see it
    later = store2.sequences.window(np.array([user]), np.array([int(train.end or 0) + 61]), 4)[0]
    assert later[0, -1] == post


def test_history_windows_are_strictly_before_t_and_right_aligned(tiny: tuple[Dataset, FeatureStore]) -> None:
    _, store = tiny
    seq = store.sequences
    user = int(seq.user[len(seq.user) // 2])
    mine = seq.time[seq.user == user]
    t = int(mine[len(mine) // 2])
    post, _, _, time = seq.window(np.array([user]), np.array([t]), 8)
    valid = post[0] >= 0
    assert valid[-1] and (time[0][valid] < t).all() and np.all(np.diff(time[0][valid]) >= 0)
    assert (~valid).sum() == 0 or not valid[:(~valid).sum()].any()  # padding only on the left
    assert time[0][-1] == mine[mine < t].max()


def test_a_tiny_world_fit_beats_popularity(trained: tuple[ph.PhoenixRanker, list[ph.PhoenixRows]]) -> None:
    model, rows = trained
    test = rows[2]
    report = ph.evaluate(model, test)
    shown = test.shown
    like = RANKER_HEADS.index("like")
    popularity = test.inputs.arrays["cand_context"][..., ph.CONTEXT_FEATURES.index("post_positive_log")]
    baseline = auc(test.y[..., like][shown], popularity[shown])
    assert report["like"]["auc"] > baseline + 0.01, (report["like"], baseline)
    assert report["click"]["auc"] > 0.6


def test_a_score_does_not_depend_on_the_other_candidates(trained, tiny) -> None:
    from foryou.timeline.loading import TrainedPhoenix

    model, _ = trained
    _, store = tiny
    ranker = TrainedPhoenix(model, store, "v0", FAST.history, ph.context_features(FAST), 86_400)
    rng = np.random.default_rng(0)
    posts = rng.choice(len(store.post_id), 60, replace=False)
    viewers = np.repeat([3, 7, 11], 20)
    now = int(store.as_of)
    base = ranker.predict_many(viewers, {"post_row": posts}, now)
    order = rng.permutation(60)
    shuffled = ranker.predict_many(viewers[order], {"post_row": posts[order]}, now)
    keep = np.sort(rng.choice(60, 17, replace=False))
    fewer = ranker.predict_many(viewers[keep], {"post_row": posts[keep]}, now)
    extra = rng.choice(len(store.post_id), 40)
    more = ranker.predict_many(np.r_[viewers, np.full(40, 7)], {"post_row": np.r_[posts, extra]}, now)
    for head in ("like", "click", "negative_feedback"):
        np.testing.assert_allclose(shuffled[head], base[head][order], atol=1e-5)
        np.testing.assert_allclose(fewer[head], base[head][keep], atol=1e-5)
        np.testing.assert_allclose(more[head][:60], base[head], atol=1e-5)


def test_export_equals_eager(trained) -> None:
    pytest.importorskip("onnxruntime")
    import torch

    from foryou.models.export import OnnxPhoenix, phoenix_to_onnx

    model, rows = trained
    x = rows[2].inputs.tensors(slice(0, 5))
    runtime = OnnxPhoenix(phoenix_to_onnx(model, ph.INPUT_NAMES))
    with torch.no_grad():
        eager = model.probabilities(*x).numpy()
    other = rows[2].inputs.tensors(slice(5, 7))  # another batch size, history and candidate count
    np.testing.assert_allclose(runtime(*(t.numpy() for t in x)), eager, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(runtime(*(t.numpy() for t in other)), model.probabilities(*other).numpy(),
                                   atol=1e-5)


def test_served_in_the_heavy_ranker_slot_and_a_like_moves_the_next_page(tiny_world_dir: Path, tmp_path: Path) -> None:
    from foryou.timeline.engine import RecommendationEngine
    from foryou.training.pipeline import train_all

    state = tmp_path / "state"
    config = ForYouConfig().model_copy(update={"training": ForYouConfig().training.model_copy(
        update={"phoenix": FAST})})
    result = train_all(tiny_world_dir, config, only="phoenix", promote=True, state=state)
    assert result["phoenix"]["test"]["like"]["auc"] > 0.5
    engine = RecommendationEngine.open(tiny_world_dir, state=state, cache=False)
    try:
        assert engine.model_versions()["heavy_ranker"].startswith("phoenix v1")
        user = int(engine.state.index.user_ids[5])
        page = engine.recommend(user, n=10, explain=True)
        assert len(page.items) == 10
        masknet = engine.recommend(user, n=10, overrides={"timeline": {"ranking": {"model": "masknet"}}})
        assert [i.post_id for i in masknet.items] != [i.post_id for i in page.items]  # another ranker, another page
        ranker = engine.state.heavy_ranker()
        rows = engine.state.index.post_rows(np.array([i.post_id for i in page.items]))
        before = ranker.predict_many(np.full(len(rows), engine.state.index.user_row(user)), {"post_row": rows},
                                     engine.now)["like"]
        for item in page.items[:3]:
            engine.record_interaction(user, item.post_id, "like", engine.now - 1)
        after = ranker.predict_many(np.full(len(rows), engine.state.index.user_row(user)), {"post_row": rows},
                                    engine.now)["like"]
        assert np.abs(after - before).max() > 1e-4  # the history took the likes: new scores, same weights
    finally:
        engine.close()


def test_without_impressions_rows_are_engagements_and_sampled_negatives(tiny: tuple[Dataset, FeatureStore]) -> None:
    d, _ = tiny
    positives_only = Dataset({**d.tables, "impressions": d.impressions.slice(0, 0)}, d.manifest, d.path)
    store = FeatureStore(history(positives_only, d.manifest.time_range[1] + 1))
    windows = split_windows(positives_only)
    train, valid = (ph.build_rows(positives_only, store, w, FAST, impressions=False) for w in windows[:2])
    assert train.sampled and train.cand.shape[1] == FAST.sampled_negatives + 1
    assert (train.y[:, 0].sum(-1) > 0).all() and train.y[:, 1:].sum() == 0  # column 0: what the user engaged with
    n = len(store.post_id)
    seq = store.sequences
    before = seq.time < (windows[0].end or 0)
    engaged = set((seq.user * n + seq.post)[before].tolist())
    drawn = train.cand[:, 1:]
    keys = (train.user_row[:, None] * n + drawn)[drawn >= 0]
    assert not engaged & set(keys.tolist())  # never a post the user engaged with (before the window's end)
    assert np.isfinite(train.logq).all() and (train.cand[:, 1:] >= 0).mean() > 0.9
    _, fit = ph.train_phoenix(train, valid, FAST.model_copy(update={"epochs": 1}))
    assert np.isfinite(fit["valid_loss"]).all() and fit["recipe"].startswith("engagements")
