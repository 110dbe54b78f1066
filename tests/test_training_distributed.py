"""Data-parallel training on Ray Train (a local Ray cluster, gloo on CPU) takes one process's steps: the heavy
ranker trained by 2 workers has the single process's test metrics."""

from __future__ import annotations

import pytest

from foryou.config import HeavyRankerConfig
from foryou.data.dataset import Dataset
from foryou.data.split import history
from foryou.features import FeatureStore
from foryou.training.heavy_ranker import build_rows, evaluate, split_windows, train_heavy_ranker

pytestmark = pytest.mark.slow
pytest.importorskip("ray.train.torch", reason="Ray Train is not installed (pip install 'foryou[scale]')")


def test_two_ddp_workers_match_one_process(tiny_world_dir):
    ds = Dataset.load(tiny_world_dir)
    store = FeatureStore(history(ds, ds.manifest.time_range[1] + 1))
    train, valid, test = (build_rows(ds, store, w) for w in split_windows(ds))
    cfg = HeavyRankerConfig(epochs=3, batch_size=1024, id_dropout=0.0)  # no random draws: the same steps exactly
    one, fit_one = train_heavy_ranker(train, valid, store.n_topics, cfg)
    two, fit_two = train_heavy_ranker(train, valid, store.n_topics, cfg.model_copy(update={"workers": 2}))
    assert fit_two["workers"] == 2 and fit_two["epochs"] == fit_one["epochs"]
    assert fit_two["valid_loss"] == pytest.approx(fit_one["valid_loss"], abs=2e-4)
    a, b = evaluate(one, test), evaluate(two, test)
    for head in a:
        if a[head].get("auc") is not None and a[head].get("positives", 0) >= 20:
            assert abs(a[head]["auc"] - b[head]["auc"]) <= 0.005, head
