"""Data-parallel training's speed-up: the heavy ranker on one dataset's rows, fitted in this process (torch's
threads on every core), by one Ray Train worker and by N (one core each); seconds per epoch and test AUC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foryou.config import HeavyRankerConfig
from foryou.data.dataset import Dataset
from foryou.data.split import history
from foryou.features import FeatureStore
from foryou.training.distributed import fit_data_parallel
from foryou.training.heavy_ranker import build_rows, evaluate, fit_net, new_net, split_windows


def bench_ddp(dataset: Path, workers: int = 2, epochs: int = 2, max_rows: int = 500_000) -> dict[str, Any]:
    ds = Dataset.load(dataset)
    store = FeatureStore(history(ds, ds.manifest.time_range[1] + 1))
    train, valid, test = (build_rows(ds, store, w, max_rows=max_rows) for w in split_windows(ds))
    # a fixed number of epochs (no early stopping), so that every layout fits the same steps
    cfg = HeavyRankerConfig(epochs=epochs, patience=epochs)
    out: dict[str, Any] = {"train_rows": len(train), "epochs": epochs}
    for name, n in (("in_process", 0), ("ray_1_worker", 1), (f"ray_{workers}_workers", workers)):
        if n == 0:  # torch's threads on every core
            net = new_net(train, store.n_topics, cfg)
            fit = fit_net(net, train, valid, cfg)
        else:  # n Ray Train workers, one core each
            net, fit = fit_data_parallel(train, valid, store.n_topics, cfg, n)
        report = evaluate(net, test)  # uncalibrated: AUC does not depend on the (monotone) calibration
        out[name] = {"seconds_per_epoch": round(fit.seconds / max(len(fit.epochs), 1), 2),
                     "test_auc": {h: round(m["auc"], 4) for h, m in report.items() if m.get("auc") is not None}}
    base = out["ray_1_worker"]["seconds_per_epoch"]
    out["ratio_vs_1_worker"] = round(out[f"ray_{workers}_workers"]["seconds_per_epoch"] / max(base, 1e-9), 3)
    out["ratio_vs_in_process"] = round(out[f"ray_{workers}_workers"]["seconds_per_epoch"]
                                       / max(out["in_process"]["seconds_per_epoch"], 1e-9), 3)
    return out
