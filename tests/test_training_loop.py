"""The one fit loop (foryou.training.loop): seeded, early stopping with the best weights restored, progress."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from foryou.training.loop import fit, seeded


def _problem(seed: int = 0) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(600, 5, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1 * torch.randn(600, generator=g)
    with seeded(seed):
        model = nn.Linear(5, 1)
    return model, x, y


def _train(seed: int, **kw):
    model, x, y = _problem()

    def batch_loss(idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        keep = torch.rand(len(idx)) > 0.1  # torch draws inside a fit are seeded too
        i = torch.from_numpy(idx)[keep]
        return nn.functional.mse_loss(model(x[i])[:, 0], y[i])

    def valid_loss() -> float:
        return float(nn.functional.mse_loss(model(x[500:])[:, 0], y[500:]))

    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    result = fit(model, [opt], batch_loss, np.arange(500), epochs=kw.pop("epochs", 5), batch_size=64,
                 valid_loss=valid_loss, seed=seed, **kw)
    return model, result


def test_same_seed_same_fit_and_other_seed_differs():
    a, ra = _train(0)
    torch.manual_seed(99)  # the global generator before a fit does not matter
    b, rb = _train(0)
    c, _ = _train(1)
    assert torch.equal(a.weight, b.weight) and ra.epochs == rb.epochs
    assert not torch.equal(a.weight, c.weight)
    assert ra.epochs[-1]["train_loss"] < ra.epochs[0]["train_loss"] and ra.examples > 0 and ra.steps == 5 * 8


def test_early_stopping_restores_the_best_epoch():
    model, x, y = _problem()
    losses = iter([1.0, 0.5, 0.7, 0.6, 0.4])
    best_weight: list[torch.Tensor] = []

    def valid_loss() -> float:
        v = next(losses)
        if v == 0.5:
            best_weight.append(model.weight.detach().clone())
        return v

    def batch_loss(idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        i = torch.from_numpy(idx)
        return nn.functional.mse_loss(model(x[i])[:, 0], y[i])

    seen: list[tuple[str, float]] = []
    result = fit(model, [torch.optim.SGD(model.parameters(), lr=0.05)], batch_loss, 500, epochs=5, batch_size=100,
                 valid_loss=valid_loss, patience=1, seed=0, progress=lambda s, f: seen.append((s, f)), stage="lin")
    assert [e["valid_loss"] for e in result.epochs] == [1.0, 0.5, 0.7, 0.6]  # two epochs without improvement
    assert result.best_valid_loss == 0.5 and torch.equal(model.weight, best_weight[0])
    assert seen[-1] == ("lin", 1.0) and [f for _, f in seen] == sorted(f for _, f in seen)
    assert all(s == "lin" and 0 <= f <= 1 for s, f in seen) and not model.training


def test_small_batches_are_skipped_and_full_batch_runs_once():
    model, x, y = _problem()
    sizes: list[int] = []

    def batch_loss(idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        sizes.append(len(idx))
        i = torch.from_numpy(idx)
        return nn.functional.mse_loss(model(x[i])[:, 0], y[i])

    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    fit(model, [opt], batch_loss, 201, epochs=1, batch_size=100, min_batch=2)
    assert sorted(sizes) == [100, 100]  # the batch of one is skipped
    sizes.clear()
    result = fit(model, [torch.optim.LBFGS(model.parameters(), max_iter=5)], batch_loss, 500, epochs=1)
    assert set(sizes) == {500} and len(sizes) > 1 and result.steps == 1  # L-BFGS re-evaluates its one batch
