"""Fit a `foryou.models.logistic.LogisticRegression` (the light ranker, RealGraph) by full-batch L-BFGS.

L-BFGS (strong-Wolfe line search) on the weighted binary cross-entropy plus an L2 penalty on the weights
(not the bias), through the shared fit loop as one full batch. The parameters start at zero and the
batch is the whole data set, so a fit is deterministic on CPU for a given thread count. Inputs are
standardised once up front, so each L-BFGS function evaluation is one (rows × features) matmul forward
and backward.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from foryou.models.logistic import LogisticRegression
from foryou.training.loop import fit


def fit_logistic(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None, *, l2: float = 1e-4,
                 epochs: int = 100, seed: int = 0) -> tuple[LogisticRegression, dict[str, Any]]:
    """Fit σ(W·standardise(x) + b) to y ∈ [0, 1] (rows,) or (rows, outputs) by full-batch L-BFGS.

    Loss: Σ wᵢ·BCEᵢ / Σ wᵢ (averaged over outputs) + l2/2 · ‖W‖² on the standardised scale.
    `epochs` is the L-BFGS iteration budget (each iteration is one or a few full passes).
    Returns (module in eval mode, info: rows, iterations, evaluations, loss, seconds).
    """
    t0 = time.perf_counter()
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    y = y[:, None] if y.ndim == 1 else y
    n, d = x.shape
    module = LogisticRegression(d, y.shape[1])
    info: dict[str, Any] = {"rows": int(n), "iterations": 0, "evaluations": 0, "loss": float("nan")}
    if n == 0:
        module.eval()
        return module, {**info, "seconds": round(time.perf_counter() - t0, 3)}
    std = x.std(0, dtype=np.float64)
    module.mean.copy_(torch.from_numpy(x.mean(0, dtype=np.float64).astype(np.float32)))
    # constant columns: leave unscaled (their weight stays ~0)
    module.std.copy_(torch.from_numpy(np.where(std > 1e-8, std, 1.0).astype(np.float32)))
    xs = (torch.from_numpy(x) - module.mean) / module.std
    yt = torch.from_numpy(y)
    w = torch.ones(n) if sample_weight is None else torch.from_numpy(np.asarray(sample_weight, np.float32))
    w = (w / w.sum().clamp_min(1e-12))[:, None]
    lin = module.linear

    def objective() -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(lin(xs), yt, reduction="none")
        return (bce * w).sum() / y.shape[1] + 0.5 * l2 * (lin.weight ** 2).sum()

    def batch_loss(idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """The loop's one batch is every row: the full objective, counted (L-BFGS evaluates it several times)."""
        info["evaluations"] += 1
        return objective()

    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=epochs, history_size=20,
                            tolerance_grad=1e-7, tolerance_change=1e-10, line_search_fn="strong_wolfe")
    fit(module, [opt], batch_loss, n, epochs=1, seed=seed)
    with torch.no_grad():
        loss = float(objective())
    state = opt.state[next(iter(lin.parameters()))]
    info.update(iterations=int(state.get("n_iter", 0)), loss=round(loss, 6), seconds=round(time.perf_counter() - t0, 3))
    return module, info
