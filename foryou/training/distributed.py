"""Data-parallel training on Ray Train: the heavy ranker fitted by N worker processes (TorchTrainer,
PyTorch DistributedDataParallel over gloo on CPU), each on one core.

Every worker builds the same seeded net and walks the same seeded batches as one process would; each
computes the loss of its share of every batch and DDP averages the gradients, so all take one process's
steps (metrics agree with `--workers 1` up to floating point and the id-dropout draws — tested). Worker 0
hands the weights back through a Ray Train checkpoint; calibration and evaluation run here, as for one
process. A local Ray cluster is started when none is running (`ray.init`, or RAY_ADDRESS's cluster).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from foryou.config import HeavyRankerConfig
from foryou.models.heavy_ranker import HeavyRankerNet
from foryou.training.heavy_ranker import Rows, fit_net, new_net
from foryou.training.loop import FitResult

WEIGHTS, FIT = "model.pt", "fit.json"


class _Logits(nn.Module):
    """The net's uncalibrated logits as `forward`: what DistributedDataParallel wraps and calls."""

    def __init__(self, net: HeavyRankerNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, topic: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.net.logits(x, topic, ids)


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker's loop (`TorchTrainer` has set up the gloo process group)."""
    import ray.train

    torch.set_num_threads(1)  # one core per worker
    ctx = ray.train.get_context()
    rank, workers = ctx.get_world_rank(), ctx.get_world_size()
    cfg = HeavyRankerConfig(**config["cfg"])
    train, valid = config["train"], config["valid"]
    net = new_net(train, config["n_topics"], cfg)
    # one gradient bucket (the net is ~1 MB of gradients): one all-reduce per step instead of several
    ddp = nn.parallel.DistributedDataParallel(_Logits(net), bucket_cap_mb=64, gradient_as_bucket_view=True)
    result = fit_net(net, train, valid, cfg, logits=ddp, shard=(rank, workers))
    fit = {"epochs": result.epochs, "examples": result.examples, "steps": result.steps, "seconds": result.seconds,
           "best_valid_loss": result.best_valid_loss}
    if rank == 0:
        with tempfile.TemporaryDirectory() as d:
            torch.save(net.state_dict(), Path(d) / WEIGHTS)
            (Path(d) / FIT).write_text(json.dumps(fit))
            ray.train.report({"epochs": len(result.epochs)}, checkpoint=ray.train.Checkpoint.from_directory(d))
    else:
        ray.train.report({"epochs": len(result.epochs)})


def fit_data_parallel(train: Rows, valid: Rows, n_topics: int, cfg: HeavyRankerConfig,
                      workers: int) -> tuple[HeavyRankerNet, FitResult]:
    """The heavy ranker fitted by `workers` Ray Train workers: (the net with the best epoch's weights, the fit)."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=max(workers, len(os.sched_getaffinity(0))), include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="foryou-ray-train-") as storage:
            trainer = TorchTrainer(
                _worker, train_loop_config={"train": train, "valid": valid, "n_topics": n_topics,
                                            "cfg": cfg.model_dump()},
                scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
                torch_config=TorchConfig(backend="gloo"), run_config=RunConfig(storage_path=storage, name="ranker"))
            out = trainer.fit()
            if out.checkpoint is None:
                raise RuntimeError(f"data-parallel training returned no weights: {out.error}")
            with out.checkpoint.as_directory() as d:
                state = torch.load(Path(d) / WEIGHTS)
                fit = json.loads((Path(d) / FIT).read_text())
    finally:
        if started:
            ray.shutdown()
    net = new_net(train, n_topics, cfg)
    net.load_state_dict(state)
    return net, FitResult(epochs=fit["epochs"], best_valid_loss=fit["best_valid_loss"], examples=fit["examples"],
                          steps=fit["steps"], seconds=fit["seconds"])
