"""The one fit loop every trainer uses: shuffled mini-batches, an optimizer step, per-epoch validation,
early stopping with the best epoch's weights restored, progress, and a seed.

A trainer supplies the model, its optimizers and a batch loss (example indices → mean loss); the loop
owns the order of the examples and every random draw while fitting: one numpy Generator (shuffles, and
handed to the batch loss for its own draws, e.g. dropped ids) and torch's generator, seeded inside a
forked RNG so that a fit never depends on what ran before it, nor changes what runs after.

Optimizers that re-evaluate the loss (L-BFGS) get it as a closure; `batch_size=None` is one full batch
per epoch, which is how the logistic models fit (one L-BFGS step over the whole data set).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from foryou.logs import Progress

BatchLoss = Callable[[np.ndarray, np.random.Generator], torch.Tensor]
PROGRESS_EVERY = 10  # batches between progress reports


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's generator seeded for the block and restored after it (for building a model's initial weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@dataclass
class FitResult:
    """What the loop did: one dict per epoch ({"epoch", "train_loss"[, "valid_loss"]}), the best epoch's
    validation loss (None without validation), examples trained on and seconds."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_valid_loss: float | None = None
    examples: int = 0
    steps: int = 0
    seconds: float = 0.0

    @property
    def valid_losses(self) -> list[float]:
        return [e["valid_loss"] for e in self.epochs if "valid_loss" in e]


def fit(model: nn.Module, optimizers: Sequence[torch.optim.Optimizer], batch_loss: BatchLoss,
        train: int | np.ndarray, *, epochs: int, batch_size: int | None = None, min_batch: int = 1,
        valid_loss: Callable[[], float] | None = None, patience: int | None = None, min_delta: float = 0.0,
        seed: int = 0, progress: Progress | None = None, stage: str = "fit",
        schedulers: Sequence[torch.optim.lr_scheduler.LRScheduler] = ()) -> FitResult:
    """Fit `model` on the examples `train` (a count n → indices 0..n−1, or an index array).

    Each epoch visits the examples in a fresh seeded order (in order when `batch_size` is None: one
    batch), skips batches smaller than `min_batch`, steps every optimizer, then (with `valid_loss`)
    evaluates in eval mode without gradients. Training stops once the validation loss has not improved
    by more than `min_delta` for more than `patience` epochs; the best epoch's weights are restored.
    `progress(stage, fraction)` is called during the epochs and once with 1.0 at the end; `schedulers` step
    after every optimizer step."""
    t0 = time.perf_counter()
    index = np.arange(train) if isinstance(train, int) else np.asarray(train)
    rng = np.random.default_rng(seed)
    result = FitResult()
    best_state: dict[str, torch.Tensor] | None = None
    best, stale = float("inf"), 0
    with seeded(seed):
        for epoch in range(epochs):
            model.train()
            train_loss = _epoch(model, optimizers, batch_loss, index, batch_size, min_batch, rng, result,
                                progress, stage, (epoch, epochs), schedulers)
            row: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss}
            model.eval()
            if valid_loss is not None:
                with torch.no_grad():
                    row["valid_loss"] = float(valid_loss())
                if row["valid_loss"] < best - min_delta:
                    best, stale = row["valid_loss"], 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    stale += 1
            result.epochs.append(row)
            if patience is not None and stale > patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
        result.best_valid_loss = best
    model.eval()
    _report(progress, stage, 1.0)
    result.seconds = time.perf_counter() - t0
    return result


def _epoch(model: nn.Module, optimizers: Sequence[torch.optim.Optimizer], batch_loss: BatchLoss,
           index: np.ndarray, batch_size: int | None, min_batch: int, rng: np.random.Generator,
           result: FitResult, progress: Progress | None, stage: str, at: tuple[int, int],
           schedulers: Sequence[torch.optim.lr_scheduler.LRScheduler] = ()) -> float:
    """One pass over `index` (epoch `at[0]` of `at[1]`); returns the example-weighted mean training loss."""
    if batch_size is None:
        batches = [index]
    else:
        order = index[rng.permutation(len(index))]
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    total, seen = 0.0, 0
    for i, idx in enumerate(batches):
        if len(idx) < min_batch:
            continue

        def closure(idx: np.ndarray = idx) -> torch.Tensor:
            for opt in optimizers:
                opt.zero_grad()
            loss = batch_loss(idx, rng)
            loss.backward()
            return loss

        # The first optimizer evaluates the loss (as often as it needs: L-BFGS); the others step on the
        # gradients that evaluation left (a sparse and a dense optimizer over one model).
        loss = cast(torch.Tensor, optimizers[0].step(cast(Callable[[], float], closure)))  # torch types it as float
        for opt in optimizers[1:]:
            opt.step()
        for schedule in schedulers:
            schedule.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
        result.steps += 1
        if i % PROGRESS_EVERY == 0:
            _report(progress, stage, (at[0] + i / len(batches)) / at[1])
    result.examples += seen
    return total / max(seen, 1)


def _report(progress: Progress | None, stage: str, fraction: float) -> None:
    if progress is not None:
        progress(stage, fraction)
